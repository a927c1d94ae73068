"""Shared CLI state: the ledger path and the consoles."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from ..config import db_path
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..incidents.model import IncidentFilter

# Piped output (CI logs, files) gets a readable width instead of Rich's 80 columns.
_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 140
console = Console(width=_WIDTH)
err_console = Console(stderr=True)


@dataclass
class State:
    db: Path
    quiet: bool = False


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if isinstance(obj, State):
        return obj
    return State(db=db_path(None))


def default_chain(ledger: Any, chain: str | None) -> str:
    """``--chain`` if given, else the ledger's only chain; a clear error otherwise."""
    if chain:
        return chain
    names = [c["name"] for c in ledger.chains()]
    if len(names) == 1:
        return str(names[0])
    if not names:
        raise ConfigError("the ledger holds no chains yet: ingest something first")
    raise ConfigError(f"several chains in the ledger ({', '.join(names)}): pass --chain")


def date_option(value: str | None, name: str) -> date | None:
    """A ``YYYY-MM-DD`` option value; a one-line error naming the option otherwise."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{name}: not a date (YYYY-MM-DD): {value!r}") from None


def list_option(values: list[str] | None) -> tuple[str, ...]:
    """A repeatable option whose values may also be comma lists: ``-x a,b -x c`` -> (a, b, c)."""
    return tuple(v.strip() for x in values or [] for v in x.split(",") if v.strip())


def incident_filter(
    *,
    since: str | None = None,
    until: str | None = None,
    actor: str | None = None,
    victim_type: list[str] | None = None,
    country: list[str] | None = None,
    chain: list[str] | None = None,
    confidence: list[str] | None = None,
) -> IncidentFilter:
    """The registry filter from the options shared by ``incidents list|export`` and
    ``report incidents``, each value checked (one-line errors, exit 2)."""
    from ..incidents.model import CONFIDENCES, VICTIM_TYPES, IncidentFilter
    from ..incidents.registry import chain_name

    types, confs = list_option(victim_type), list_option(confidence)
    for v in types:
        if v not in VICTIM_TYPES:
            raise ConfigError(f"unknown --victim-type {v!r}; allowed: {', '.join(VICTIM_TYPES)}")
    for c in confs:
        if c not in CONFIDENCES:
            raise ConfigError(f"unknown --confidence {c!r}; allowed: {', '.join(CONFIDENCES)}")
    filt = IncidentFilter(since=date_option(since, "--since"), until=date_option(until, "--until"), actor=actor,
                          victim_types=types, countries=tuple(c.upper() for c in list_option(country)),
                          chains=tuple(chain_name(c) for c in list_option(chain)), confidences=confs)  # fmt: skip
    for c in filt.countries:
        if len(c) != 2 or not c.isascii() or not c.isalpha():
            raise ConfigError(f"--country {c!r}: not an ISO-3166 alpha-2 code (e.g. KR, JP)")
    if filt.since and filt.until and filt.since > filt.until:
        raise ConfigError(f"--since {filt.since} is after --until {filt.until}")
    return filt
