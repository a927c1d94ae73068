"""Totals over incident records, and published aggregates put beside the registry's own.

Plain functions over :class:`~chainsleuth.incidents.model.Incident` lists; no ledger.
USD amounts are whole-dollar ints; an incident without an amount is counted and listed
as unvalued, never summed as 0.

The published figures (UN Panel of Experts, Group-IB, FireEye, DOJ/FBI, MSMT,
Chainalysis, Elliptic, TRM, tayvano) are a machine-readable table,
``published_aggregates.yaml`` next to this module, transcribed from the registry
README. :func:`compare_figure` computes, from the records, why the registry's sum
for the same filter differs: named incidents missing or without an amount,
incidents the figure does not count, contested attribution, valuation choices
(notes that give other values) and attempted-versus-realised amounts.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..incidents.model import VICTIM_TYPES, Incident, IncidentFilter

CRYPTO_TYPES = tuple(t for t in VICTIM_TYPES if t != "bank")


@dataclasses.dataclass(frozen=True)
class PublishedFigure:
    """One published aggregate and the registry filter it corresponds to."""

    id: str
    publisher: str
    document: str
    figure: str
    value_usd: int
    scope: str
    source_urls: tuple[str, ...]
    qualifier: str = ""
    count: int | None = None
    countries: int | None = None
    since: date | None = None
    until: date | None = None
    victim_types: tuple[str, ...] = ()
    actor: str | None = None
    incidents: tuple[str, ...] = ()
    by_ids: bool = False
    attempted: bool = False
    readme_note: str = ""

    def period(self) -> str:
        return f"{self.since or '...'} to {self.until or '...'}"


def load_published(path: str | Path | None = None) -> list[PublishedFigure]:
    """The published figures (default: the packaged table); ConfigError names a bad entry."""
    if path is None:
        text = resources.files("chainsleuth.report").joinpath("published_aggregates.yaml").read_text("utf-8")
        where = "published_aggregates.yaml"
    else:
        p = Path(path)
        try:
            text = p.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read: {exc}") from None
        where = str(p)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from None
    figures = doc.get("figures") if isinstance(doc, dict) else None
    if not isinstance(figures, list):
        raise ConfigError(f"{where}: expected a top-level 'figures' list")
    out: list[PublishedFigure] = []
    known = {f.name for f in dataclasses.fields(PublishedFigure)}
    for k, raw in enumerate(figures):
        fid = raw.get("id", f"#{k + 1}") if isinstance(raw, dict) else f"#{k + 1}"
        try:
            if not isinstance(raw, dict):
                raise ValueError("not a mapping")
            extra = set(raw) - known
            if extra:
                raise ValueError(f"unknown field(s) {', '.join(sorted(extra))}")
            value = raw["value_usd"]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError("value_usd must be a non-negative whole number of dollars")
            types = tuple(str(t) for t in raw.get("victim_types") or ())
            bad = [t for t in types if t not in VICTIM_TYPES]
            if bad:
                raise ValueError(f"unknown victim type(s) {', '.join(bad)}")
            for d in ("since", "until"):
                if raw.get(d) is not None and not isinstance(raw[d], date):
                    raise ValueError(f"{d} must be an ISO date")
            out.append(PublishedFigure(
                id=str(raw["id"]), publisher=str(raw["publisher"]), document=str(raw["document"]),
                figure=str(raw["figure"]), value_usd=value, scope=str(raw["scope"]),
                source_urls=tuple(str(u) for u in raw.get("source_urls") or ()),
                qualifier=str(raw.get("qualifier") or ""), count=raw.get("count"), countries=raw.get("countries"),
                since=raw.get("since"), until=raw.get("until"), victim_types=types, actor=raw.get("actor"),
                incidents=tuple(str(i) for i in raw.get("incidents") or ()), by_ids=bool(raw.get("by_ids")),
                attempted=bool(raw.get("attempted")), readme_note=str(raw.get("readme_note") or ""),
            ))  # fmt: skip
        except (KeyError, ValueError, TypeError) as exc:
            what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ConfigError(f"{where}: figure {fid}: {what}") from None
    return out


# -- totals ---------------------------------------------------------------------------------


def usd_total(incidents: Iterable[Incident]) -> int:
    """Sum of the reported USD amounts (rows without one are not in it: see :func:`unvalued`)."""
    return sum(i.amount_usd for i in incidents if i.amount_usd is not None)


def unvalued(incidents: Iterable[Incident]) -> list[Incident]:
    return [i for i in incidents if i.amount_usd is None]


def group_totals(
    incidents: Sequence[Incident], key: Callable[[Incident], Iterable[str]], *, order: str = "total"
) -> list[dict[str, Any]]:
    """Count, USD total and unvalued count per key (an incident with several keys counts in each).
    ``order``: ``total`` (largest first) or ``key``."""
    groups: dict[str, list[Incident]] = defaultdict(list)
    for i in incidents:
        for k in key(i) or ("(none)",):
            groups[k].append(i)
    rows: list[dict[str, Any]] = [{"key": k, "count": len(v), "total_usd": usd_total(v), "unvalued": len(unvalued(v)),
             "incidents": [i.incident_id for i in v]} for k, v in groups.items()]  # fmt: skip
    if order == "key":
        rows.sort(key=lambda r: r["key"])
    else:
        rows.sort(key=lambda r: (-r["total_usd"], -r["count"], r["key"]))
    return rows


# -- published figures ----------------------------------------------------------------------


def figure_matches(fig: PublishedFigure, filt: IncidentFilter) -> bool:
    """Whether a published figure is about what the report shows: its period overlaps the
    report's and its victim-type scope shares a type with the report's (open sides match)."""
    if filt.ids:
        return False
    if fig.by_ids:
        return not (filt.since or filt.until or filt.victim_types)
    if filt.until is not None and fig.since is not None and fig.since > filt.until:
        return False
    if filt.since is not None and fig.until is not None and fig.until < filt.since:
        return False
    return not (filt.victim_types and fig.victim_types and not set(filt.victim_types) & set(fig.victim_types))


def figure_filter(fig: PublishedFigure, report: IncidentFilter) -> IncidentFilter:
    """The registry filter for a figure: its period, scope and named actor (or its named
    incidents), combined with the report's attribute filters (actor, confidence, country, chain)."""
    actor = report.actor or fig.actor
    if fig.by_ids:
        return IncidentFilter(ids=fig.incidents, actor=actor, confidences=report.confidences,
                              countries=report.countries, chains=report.chains)  # fmt: skip
    return IncidentFilter(since=fig.since, until=fig.until, victim_types=fig.victim_types, actor=actor,
                          confidences=report.confidences, countries=report.countries, chains=report.chains)  # fmt: skip


_DOLLARS = re.compile(r"\$\s?\d")
_RANGE_WORDS = re.compile(r"\b(range|estimates?|vs\.?)\b", re.IGNORECASE)


def valuation_notes(incidents: Iterable[Incident]) -> list[dict[str, str]]:
    """Incidents whose notes give other values than the chosen one (ranges, other sources' figures)."""
    return [{"incident_id": i.incident_id, "victim": i.victim, "note": i.notes}
            for i in incidents if i.notes and (len(_DOLLARS.findall(i.notes)) >= 2 or _RANGE_WORDS.search(i.notes))]  # fmt: skip


def musd(v: int) -> str:
    """Dollars as "$568.49M" (exact to the dollar when not a round ten-thousand)."""
    sign = "-" if v < 0 else ""
    v = abs(v)
    if v >= 1_000_000 and v % 10_000 == 0:
        s = f"{v / 1_000_000:,.2f}".rstrip("0").rstrip(".")
        return f"{sign}${s}M"
    return f"{sign}${v:,}"


def compare_figure(
    fig: PublishedFigure,
    matched: Sequence[Incident],
    registry: Mapping[str, Incident],
    filt: IncidentFilter,
) -> dict[str, Any]:
    """A published figure beside the registry's aggregate for the same filter, with the
    difference explained from the records.

    ``matched``: the registry incidents of :func:`figure_filter`; ``registry``: every
    incident by id (to tell a named incident that the filter excludes from one that is absent)."""
    total = usd_total(matched)
    contested = [i for i in matched if i.confidence == "contested"]
    ids = {i.incident_id for i in matched}
    reasons: list[dict[str, Any]] = []

    def reason(kind: str, text: str, usd: int | None = None, incidents: Iterable[str] = ()) -> None:
        reasons.append({"kind": kind, "usd": usd, "incidents": list(incidents), "text": text})

    named_sum = None
    if fig.incidents:
        named_in = [registry[n] for n in fig.incidents if n in ids]
        named_sum = usd_total(named_in)
        for n in fig.incidents:
            inc = registry.get(n)
            if inc is None:
                reason("missing_incident", f"{n}, named by the source, is not in the registry", None, [n])
            elif n not in ids:
                amt = musd(inc.amount_usd) if inc.amount_usd is not None else "no amount"
                reason("missing_incident", f"{inc.victim} ({n}, {amt}) is named by the source but excluded by this "
                       f"filter (attributed to {inc.attributed_to!r}, confidence {inc.confidence})", inc.amount_usd, [n])  # fmt: skip
        for i in unvalued(named_in):
            reason("missing_amount", f"{i.victim} ({i.incident_id}) is counted by the source but has no amount in the "
                   f"registry: {i.notes or 'not disclosed'}", None, [i.incident_id])  # fmt: skip
        extra = [i for i in matched if i.incident_id not in set(fig.incidents)]
        if extra:
            reason("extra_incident", f"{len(extra)} registry incident(s) in the same filter that the source does not "
                   f"count, {musd(usd_total(extra))}: " + "; ".join(
                       f"{i.victim} {musd(i.amount_usd) if i.amount_usd is not None else '(no amount)'}" for i in extra),
                   usd_total(extra), [i.incident_id for i in extra])  # fmt: skip
        residual = fig.value_usd - named_sum
        extra_sum = usd_total(extra)
        reason("reconciliation", f"registry {musd(total)} = {musd(named_sum)} for the {len(named_in)} named incident(s) "
               f"found by this filter + {musd(extra_sum)} for {len(extra)} incident(s) the source does not count; "
               f"published {musd(fig.value_usd)} = the same {musd(named_sum)} + {musd(residual)} (below)",
               fig.value_usd - total, [i.incident_id for i in named_in])  # fmt: skip
        if residual:
            notes = valuation_notes(named_in)
            why = " and the valuation of " + ", ".join(f"{n['victim']} ({n['note']})" for n in notes) if notes else ""
            gaps = [i.victim for i in unvalued(named_in)]
            gap = f"the named incident(s) without an amount here ({', '.join(gaps)})" if gaps else ""
            reason("valuation", f"published {musd(fig.value_usd)} minus the registry's {musd(named_sum)} for the named "
                   f"incidents = {musd(residual)}: " + (" plus ".join(x for x in (gap, why.removeprefix(' and ')) if x)
                                                        or "a different valuation at the time"), residual,
                   [n["incident_id"] for n in notes])  # fmt: skip
    else:
        if fig.count is not None and fig.count != len(matched):
            kind = "missing_incident" if fig.count > len(matched) else "extra_incident"
            reason(kind, f"the source counts {fig.count} incident(s); the registry has {len(matched)} for this filter"
                   + (" (it lists only incidents attributed by a government, the UN or a major firm; see the "
                      "registry README's excluded candidates)" if fig.count > len(matched) else ""))  # fmt: skip
        for i in unvalued(matched):
            reason("missing_amount", f"{i.victim} ({i.incident_id}) has no amount in the registry: "
                   f"{i.notes or 'not disclosed'}", None, [i.incident_id])  # fmt: skip
        notes = valuation_notes(matched)
        if notes:
            reason("valuation", "values differ by source for: " + "; ".join(f"{n['victim']}: {n['note'].rstrip('. ')}" for n in notes),
                   None, [n["incident_id"] for n in notes])  # fmt: skip
    if contested:
        reason("contested", f"{len(contested)} incident(s) with contested attribution, {musd(usd_total(contested))}: "
               + "; ".join(f"{i.victim} {musd(i.amount_usd) if i.amount_usd is not None else '(no amount)'}" for i in contested)
               + f"; without them the registry sum is {musd(total - usd_total(contested))}",
               usd_total(contested), [i.incident_id for i in contested])  # fmt: skip
    if fig.attempted:
        reason("attempted", "the published figure includes attempted amounts; the registry records realised gross losses")
    if fig.countries is not None:
        have = len({i.country for i in matched if i.country})
        if have != fig.countries:
            reason("countries", f"the source counts {fig.countries} countries; the registry's incidents name {have} "
                   f"({sum(1 for i in matched if not i.country)} without a stated country)")  # fmt: skip
    order = ("reconciliation", "missing_incident", "missing_amount", "extra_incident", "valuation", "contested",
             "attempted", "countries")  # fmt: skip
    reasons.sort(key=lambda r: order.index(r["kind"]))
    return {
        "id": fig.id, "publisher": fig.publisher, "document": fig.document, "figure": fig.figure,
        "value_usd": fig.value_usd, "qualifier": fig.qualifier, "count": fig.count, "countries": fig.countries,
        "since": fig.since.isoformat() if fig.since else None, "until": fig.until.isoformat() if fig.until else None,
        "scope": fig.scope, "victim_types": list(fig.victim_types), "named_incidents": list(fig.incidents),
        "attempted": fig.attempted, "source_urls": list(fig.source_urls), "readme_note": fig.readme_note,
        "filter": filter_json(figure_filter(fig, filt)),
        "registry": {"count": len(matched), "valued": len(matched) - len(unvalued(matched)), "total_usd": total,
                     "total_usd_excluding_contested": total - usd_total(contested),
                     "named_total_usd": named_sum, "incidents": sorted(ids),
                     "unvalued": [i.incident_id for i in unvalued(matched)]},
        "difference_usd": fig.value_usd - total,
        "explanation": reasons,
    }  # fmt: skip


def filter_json(f: IncidentFilter) -> dict[str, Any]:
    """The filter as JSON (dates ISO, tuples as lists, empty parts left out)."""
    out: dict[str, Any] = {}
    for k, v in dataclasses.asdict(f).items():
        if v in (None, (), []):
            continue
        out[k] = v.isoformat() if isinstance(v, date) else list(v) if isinstance(v, tuple) else v
    return out
