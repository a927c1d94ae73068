"""Importers for the registry: the sourced incident CSV and the hack seed-address CSV.

Both read and validate the whole file first and raise :class:`InputFileError`
(file, line, field) before anything is written; the writes are then one
transaction (seeds: one for the registry rows, one for their tags).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, InputFileError
from ..store import Ledger
from .model import Incident
from .registry import (
    CURRENCY_CHAIN,
    SCHEMA,
    FieldProblem,
    ImportResult,
    ensure_schema,
    list_incidents,
    parse_amount,
    parse_date,
    validate,
    write_incidents,
)

if TYPE_CHECKING:
    from ..tags.importers import TagColumns

INCIDENT_COLUMNS = (
    "incident_id", "date", "victim", "victim_type", "country", "amount_usd", "assets", "chains",
    "attack_vector", "attributed_to", "attribution_source", "attribution_confidence", "source_urls", "notes",
)  # fmt: skip
SEED_COLUMNS = ("hack", "date", "chain", "address", "role", "source")


def _rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    from ..tags.importers import _read_csv  # one CSV reader (BOM, line numbers, extra fields)

    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        return list(_read_csv(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(str(path), None, f"cannot read: {exc}") from None


def _check_header(path: Path, rows: list[tuple[int, dict[str, str]]], columns: tuple[str, ...]) -> None:
    if not rows:
        raise InputFileError(str(path), 1, "no rows")
    missing = [c for c in columns if c not in rows[0][1]]
    if missing:
        raise InputFileError(str(path), 1, f"header lacks the column(s) {', '.join(missing)}")


def _split(text: str, sep: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(sep) if p.strip())


def parse_incidents(path: Path) -> list[Incident]:
    """Every row of a registry CSV as a validated :class:`Incident`; InputFileError on the first bad one."""
    rows = _rows(path)
    _check_header(path, rows, INCIDENT_COLUMNS)
    out: list[Incident] = []
    seen: dict[str, int] = {}
    for line, r in rows:
        try:
            day, precision = parse_date(r["date"])
            inc = validate(Incident(
                incident_id=r["incident_id"], date=day, date_precision=precision, victim=r["victim"],
                victim_type=r["victim_type"], country=r["country"] or None,
                amount_usd=parse_amount(r["amount_usd"]), assets=_split(r["assets"], ";"),
                chains=tuple(c.lower() for c in _split(r["chains"], ";")), attack_vector=r["attack_vector"],
                attributed_to=r["attributed_to"], attribution_source=r["attribution_source"],
                confidence=r["attribution_confidence"], source_urls=_split(r["source_urls"], None),
                notes=r["notes"], origin=f"{path.name}:{line}",
            ))  # fmt: skip
        except FieldProblem as p:
            raise InputFileError(str(path), line, f"field {p.name!r}: {p.message}") from None
        if inc.incident_id in seen:
            raise InputFileError(str(path), line, f"field 'incident_id': {inc.incident_id!r} repeats line {seen[inc.incident_id]}")
        seen[inc.incident_id] = line
        out.append(inc)
    return out


def import_incidents(ledger: Ledger, path: str | Path) -> ImportResult:
    """Load a registry CSV (the ``dprk_incidents.csv`` format); re-import replaces by incident_id."""
    p = Path(path)
    return _write_registry(ledger, p, parse_incidents(p))


def import_registry(ledger: Ledger, path: str | Path, seeds: str | Path | None) -> tuple[ImportResult, ImportResult | None]:
    """The registry CSV and (unless ``seeds`` is None) its seed CSV, both read and validated
    before either is written: a bad seed row leaves the registry as it was too. The seeds
    are mapped against the registry as it will be (stored incidents, replaced by the new rows)."""
    p = Path(path)
    incidents = parse_incidents(p)
    parsed = None
    if seeds is not None:
        merged = {i.incident_id: i for i in list_incidents(ledger)} | {i.incident_id: i for i in incidents}
        parsed = parse_incident_seeds(seeds, list(merged.values()))
    result = _write_registry(ledger, p, incidents)
    return result, (_write_seeds(ledger, parsed) if parsed is not None else None)


def _write_registry(ledger: Ledger, p: Path, incidents: list[Incident]) -> ImportResult:
    ensure_schema(ledger)
    ids = [i.incident_id for i in incidents]
    ph = ",".join("?" * len(ids))
    row = ledger.con.execute(f"SELECT count(*) FROM {SCHEMA}.incidents WHERE incident_id IN ({ph})", ids).fetchone()
    write_incidents(ledger, incidents)
    return ImportResult(str(p), incidents=len(incidents), replaced=int(row[0]) if row else 0)


# --------------------------------------------------------------------------- seeds

# Hack names of dprk_hack_seed_addresses.csv -> how the registry names the victim. Each
# seed is mapped to the incident of that victim with the latest date not after the
# seed's date (a seed dated after the theft is a laundering step of it); the explicit
# table keeps a renamed or new hack from being attached by a loose text match.
SEED_HACK_VICTIM = {
    "Bybit": "Bybit",
    "Ronin Bridge": "Ronin Network bridge",
    "Harmony Horizon Bridge": "Harmony Horizon bridge",
    "Stake.com": "Stake.com",
    "CoinEx": "CoinEx",
}
# A seed more than this long after its incident is not mapped (Harmony's laundering
# addresses are dated seven months after the theft).
SEED_MAX_LAG = dt.timedelta(days=400)


def map_seed_incident(incidents: list[Incident], hack: str, seed_date: dt.date) -> Incident | None:
    """The incident a seed row's ``hack`` and date belong to, or None."""
    victim = SEED_HACK_VICTIM.get(hack)
    if victim is None:
        return None
    cands = [i for i in incidents if i.victim.lower().startswith(victim.lower())
             and i.date <= seed_date <= i.date + SEED_MAX_LAG]  # fmt: skip
    return max(cands, key=lambda i: i.date) if cands else None


def import_incident_seeds(ledger: Ledger, path: str | Path) -> ImportResult:
    """Load ``dprk_hack_seed_addresses.csv``: each row mapped to its incident, stored in
    ``incidents.incident_seeds`` and written as tags (the ``dprk-seeds`` source: attacker
    -> ``service_hack``, cash-out/laundering -> ``money_laundering``, victim -> ``victim``)
    with the incident id in the tag context. Re-import replaces both."""
    return _write_seeds(ledger, parse_incident_seeds(path, list_incidents(ledger)))


@dataclass
class ParsedSeeds:
    """A validated seed CSV: its incident_seeds rows and its dprk-seeds tag rows."""

    path: Path
    seeds: list[list[Any]]
    tags: TagColumns
    warnings: list[str]


def parse_incident_seeds(path: str | Path, incidents: list[Incident]) -> ParsedSeeds:
    """Read and validate a seed CSV against ``incidents`` (nothing written);
    InputFileError (file, line, field) on the first bad row."""
    from ..tags.importers import _import_dprk_seeds
    from ..tags.normalize import normalize_address

    p = Path(path)
    f = p / "dprk_hack_seed_addresses.csv" if p.is_dir() else p
    rows = _rows(f)
    _check_header(f, rows, SEED_COLUMNS[:5])
    if not incidents:
        raise ConfigError("the incident registry is empty: import the incidents first (chainsleuth incidents import)")
    seeds: list[list[Any]] = []
    for line, r in rows:
        for name in SEED_COLUMNS[:5]:
            if not r.get(name):
                raise InputFileError(str(f), line, f"field {name!r}: missing")
        try:
            seed_date, _ = parse_date(r["date"])
        except FieldProblem as prob:
            raise InputFileError(str(f), line, f"field 'date': {prob.message}") from None
        inc = map_seed_incident(incidents, r["hack"], seed_date)
        if inc is None:
            known = ", ".join(SEED_HACK_VICTIM)
            raise InputFileError(str(f), line, f"field 'hack': {r['hack']!r} on {r['date']} matches no incident "
                                 f"in the registry (mapped hacks: {known})")  # fmt: skip
        currency = r["chain"].strip().upper()
        chain = CURRENCY_CHAIN.get(currency)
        if chain is None:
            raise InputFileError(str(f), line, f"field 'chain': unknown chain code {r['chain']!r}; "
                                 f"known: {', '.join(CURRENCY_CHAIN)}")  # fmt: skip
        role_kind = r["role"].split(":", 1)[0].split("(", 1)[0].strip().lower()
        seeds.append([inc.incident_id, chain, currency, normalize_address(r["address"], currency).address,
                      r["role"], role_kind, r["hack"], seed_date, r.get("source", ""), f"{f.name}:{line}"])  # fmt: skip
    # the tag rows: the dprk-seeds importer's own rows (role -> concept, actor, source), plus the incident
    tags, warnings = _import_dprk_seeds(f)
    for ctx, seed in zip(tags.cols["context"], seeds, strict=True):
        ctx["incident_id"] = seed[0]
    return ParsedSeeds(f, seeds, tags, list(warnings))


def _write_seeds(ledger: Ledger, parsed: ParsedSeeds) -> ImportResult:
    from ..tags.store import write_import

    f, seeds, tags, warnings = parsed.path, parsed.seeds, parsed.tags, parsed.warnings
    ensure_schema(ledger)
    con = ledger.con
    mine = f"{f.name}:%"
    previous = con.execute(f"SELECT * FROM {SCHEMA}.incident_seeds WHERE origin LIKE ?", [mine]).fetchall()

    def replace_seeds(rows: list[Any]) -> None:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"DELETE FROM {SCHEMA}.incident_seeds WHERE origin LIKE ?", [mine])
            if rows:
                con.executemany(f"INSERT INTO {SCHEMA}.incident_seeds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    # Two transactions (the tag store commits its own); if the tag write fails the
    # previous seed rows are put back, so neither half of the import stays applied.
    replace_seeds(seeds)
    try:
        write_import(ledger, "dprk-seeds", f, tags, warnings=warnings)
    except BaseException:
        replace_seeds([list(r) for r in previous])
        raise
    per: dict[str, int] = {}
    for s in seeds:
        per[s[0]] = per.get(s[0], 0) + 1
    return ImportResult(str(f), seeds=len(seeds), tags=len(tags), per_incident=per)
