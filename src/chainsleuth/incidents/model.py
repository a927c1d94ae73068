"""The incident record and the filter over the registry (shared by registry and reports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from fractions import Fraction
from typing import Any

VICTIM_TYPES = ("exchange", "bridge", "wallet", "bank", "defi", "gambling", "payment_processor", "other")
CONFIDENCES = ("official", "industry", "contested")


@dataclass(frozen=True)
class Incident:
    """One attributed heist. ``date`` keeps the precision the source gave
    (``date_precision`` is ``day`` or ``month``; a month-only date is stored as its first day).
    ``amount_usd`` is the reported loss in USD at the time, whole dollars, None when not reported."""

    incident_id: str
    date: date
    date_precision: str
    victim: str
    victim_type: str
    country: str | None
    amount_usd: int | None
    assets: tuple[str, ...]
    chains: tuple[str, ...]
    attack_vector: str
    attributed_to: str
    attribution_source: str
    confidence: str
    source_urls: tuple[str, ...]
    notes: str = ""
    actor_ids: tuple[str, ...] = ()  # tag-store actor ids the attribution resolves to
    seed_addresses: tuple[tuple[str, str, str], ...] = ()  # (chain, address, role)
    origin: str = ""  # file:line the record came from, or "manual"


@dataclass(frozen=True)
class IncidentFilter:
    """Registry filter; every field is optional and they combine with AND.
    ``actor`` matches any alias in the tag store's actor hierarchy, sub-actors included
    (``Lazarus`` matches rows attributed to APT38, TraderTraitor, ...)."""

    since: date | None = None
    until: date | None = None
    actor: str | None = None
    victim_types: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    chains: tuple[str, ...] = ()
    confidences: tuple[str, ...] = ()
    ids: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class IncidentTrace:
    """One trace run attached to an incident (``chainsleuth trace --incident ID``).
    Amounts are exact integers in base units per asset; ``result`` is the full
    :meth:`TraceResult.to_json` document (amounts as decimal strings, edges included)."""

    trace_id: int
    incident_id: str
    run_at: datetime
    chain: str
    model: str
    direction: str
    params: dict[str, Any]
    seeds: tuple[str, ...]
    seed_value: dict[str, int]
    accounted: dict[str, int]
    accounted_share: dict[str, Fraction]
    endpoints: tuple[dict[str, Any], ...]  # address, asset, value (int), category, labels, ...
    holdings: tuple[dict[str, Any], ...]  # address, asset, value (int)
    result: dict[str, Any]
