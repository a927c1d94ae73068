"""The incident registry: schema ``incidents`` in the ledger file.

Tables:

* ``incidents.incidents``: one row per incident (:class:`~.model.Incident`);
* ``incidents.incident_actors``: the tag-store actors an incident's ``attributed_to``
  text resolves to (:func:`link_actors`);
* ``incidents.incident_seeds``: seed addresses (chain, address, role) per incident;
* ``incidents.incident_traces``: trace runs attached to an incident
  (:func:`record_trace`), with exact per-asset amounts as decimal strings.

Every write is one transaction; readers never see half an import.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..store import Ledger
from .model import CONFIDENCES, VICTIM_TYPES, Incident, IncidentFilter, IncidentTrace

if TYPE_CHECKING:
    from ..flows.trace import TraceResult

SCHEMA = "incidents"

DDL = [
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.incidents (
        incident_id VARCHAR PRIMARY KEY, date DATE NOT NULL, date_precision VARCHAR NOT NULL,
        victim VARCHAR NOT NULL, victim_type VARCHAR NOT NULL, country VARCHAR,
        amount_usd HUGEINT, assets VARCHAR[], chains VARCHAR[], attack_vector VARCHAR,
        attributed_to VARCHAR, attribution_source VARCHAR, confidence VARCHAR NOT NULL,
        source_urls VARCHAR[], notes VARCHAR, origin VARCHAR,
        imported_at TIMESTAMP DEFAULT current_timestamp)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.incident_actors (
        incident_id VARCHAR NOT NULL, actor_id VARCHAR NOT NULL, matched VARCHAR,
        link VARCHAR NOT NULL, most_specific BOOLEAN NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.incident_seeds (
        incident_id VARCHAR NOT NULL, chain VARCHAR NOT NULL, currency VARCHAR NOT NULL,
        address VARCHAR NOT NULL, role VARCHAR NOT NULL, role_kind VARCHAR NOT NULL,
        hack VARCHAR, seed_date DATE, source VARCHAR, origin VARCHAR)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.incident_traces (
        trace_id BIGINT PRIMARY KEY, incident_id VARCHAR NOT NULL, run_at TIMESTAMP NOT NULL,
        chain VARCHAR NOT NULL, model VARCHAR NOT NULL, direction VARCHAR NOT NULL,
        params JSON, seeds VARCHAR[], seed_value JSON, accounted JSON, accounted_share JSON,
        endpoints JSON, holdings JSON, result JSON)""",
]

# Seed file currency codes -> the lower-case chain names the registry's ``chains`` use.
CURRENCY_CHAIN = {
    "BTC": "bitcoin", "ETH": "ethereum", "BSC": "bsc", "MATIC": "polygon", "TRX": "tron",
    "FTM": "fantom", "ETC": "ethereum-classic", "XRP": "xrp", "SOL": "solana", "OP": "optimism",
    "LTC": "litecoin", "DOGE": "dogecoin", "BCH": "bitcoin-cash", "AVAX": "avalanche",
    "ARB": "arbitrum",
}  # fmt: skip
# Seed roles that carry stolen value (a trace starts there); victims' addresses do not.
TRACE_ROLES = ("attacker", "cash-out")


def chain_name(text: str) -> str:
    """A chain as the registry names it: ``bitcoin`` from ``Bitcoin``, ``BTC`` or ``btc``
    (the currency codes of :data:`CURRENCY_CHAIN`)."""
    t = text.strip()
    return CURRENCY_CHAIN.get(t.upper(), t.lower())


def ensure_schema(ledger: Ledger) -> None:
    for stmt in DDL:
        ledger.con.execute(stmt)


def _in_transaction(ledger: Ledger, work: Any) -> None:
    con = ledger.con
    con.execute("BEGIN TRANSACTION")
    try:
        work(con)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


# --------------------------------------------------------------------------- validation


@dataclass
class FieldProblem(Exception):
    """A field of a record failed validation (the importer adds file and line)."""

    name: str
    message: str


def parse_date(text: str) -> tuple[date, str]:
    """``YYYY-MM-DD`` -> (date, 'day'); ``YYYY-MM`` -> (first of month, 'month')."""
    t = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}", t):
            return date.fromisoformat(t + "-01"), "month"
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", t):
            return date.fromisoformat(t), "day"
    except ValueError:
        pass
    raise FieldProblem("date", f"not a date (YYYY-MM-DD or YYYY-MM): {text!r}")


def parse_amount(text: str) -> int | None:
    """Whole US dollars (digits only, optional thousands commas); empty -> None."""
    t = text.strip().replace("_", "")
    if not t:
        return None
    if t.startswith("-"):
        raise FieldProblem("amount_usd", f"negative amount: {text!r}")
    # commas only as thousands separators: "1,5" (a decimal comma) is not read as 15
    if not re.fullmatch(r"\d+|\d{1,3}(,\d{3})+", t) or not t.isascii():
        raise FieldProblem("amount_usd", f"not a whole number of dollars: {text!r}")
    return int(t.replace(",", ""))


def validate(incident: Incident) -> Incident:
    """The incident if every field is valid; FieldProblem naming the first bad field."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]*", incident.incident_id or ""):
        raise FieldProblem("incident_id", f"missing or not an id (letters, digits, - _ . :): {incident.incident_id!r}")
    if not incident.victim.strip():
        raise FieldProblem("victim", "missing")
    if incident.victim_type not in VICTIM_TYPES:
        raise FieldProblem("victim_type", f"unknown victim type {incident.victim_type!r}; allowed: {', '.join(VICTIM_TYPES)}")
    if incident.confidence not in CONFIDENCES:
        raise FieldProblem("attribution_confidence",
                           f"unknown confidence {incident.confidence!r}; allowed: {', '.join(CONFIDENCES)}")  # fmt: skip
    if incident.date_precision not in ("day", "month"):
        raise FieldProblem("date", f"date precision must be day or month, not {incident.date_precision!r}")
    if incident.country is not None and not re.fullmatch(r"[A-Z]{2}", incident.country):
        raise FieldProblem("country", f"not an ISO-3166 alpha-2 code: {incident.country!r}")
    if incident.amount_usd is not None and incident.amount_usd < 0:
        raise FieldProblem("amount_usd", f"negative amount: {incident.amount_usd}")
    if not incident.attributed_to.strip():
        raise FieldProblem("attributed_to", "missing")
    for url in incident.source_urls:
        if not re.match(r"https?://", url):
            raise FieldProblem("source_urls", f"not an http(s) address: {url!r}")
    return incident


# --------------------------------------------------------------------------- actors


def _actor_aliases(ledger: Ledger) -> list[tuple[str, str]]:
    """(alias, actor id) of the DPRK hierarchy (builtin, below ``rgb``), longest alias first."""
    from ..tags import actor_descendants, ensure_builtin_actors

    ensure_builtin_actors(ledger)
    ids = actor_descendants(ledger, ["rgb"])
    ph = ",".join("?" * len(ids))
    rows = ledger.con.execute(
        f"SELECT DISTINCT alias, actor_id FROM tags.actor_aliases WHERE actor_id IN ({ph})", ids
    ).fetchall()
    return sorted(((str(a), str(i)) for a, i in rows), key=lambda r: (-len(r[0]), r[0]))


def _parents(ledger: Ledger) -> dict[str, str | None]:
    return {str(a): (str(p) if p else None) for a, p in ledger.con.execute(
        "SELECT DISTINCT actor_id, parent_id FROM tags.actors").fetchall()}  # fmt: skip


# Text naming only the state ("DPRK cyber actors", "North Korea") links to the RGB, the
# DPRK agency over every named group (US Treasury sm774). False-positive risk: a
# state-level attribution is not evidence for any one group, so these rows match
# ``--actor RGB`` but not ``--actor Lazarus``; the link is marked ``state-level``.
_STATE_WORDS = re.compile(r"\b(DPRK|North Korea(n)?|N\. Korea)\b", re.IGNORECASE)


def link_actors(ledger: Ledger, attributed_to: str) -> list[tuple[str, str, str, bool]]:
    """Actor links for an attribution text: ``(actor_id, matched text, link, most_specific)``.

    Every alias of the DPRK actor hierarchy found in the text as a whole word (case-
    insensitive) links its actor (``link='alias'``); an actor whose descendant is also
    named is kept but not ``most_specific`` ("Lazarus Group / APT38" -> apt38 most
    specific, lazarusgroup too). No alias but the state named -> ``rgb``, ``state-level``.
    """
    found: dict[str, str] = {}
    taken: list[tuple[int, int]] = []
    for alias, actor in _actor_aliases(ledger):
        for m in re.finditer(rf"(?<![\w-]){re.escape(alias)}(?![\w-])", attributed_to, re.IGNORECASE):
            if any(s < m.end() and m.start() < e for s, e in taken):
                continue  # inside a longer alias already matched ("Lazarus" in "Lazarus Group")
            taken.append((m.start(), m.end()))
            found.setdefault(actor, m.group(0))
    if not found:
        state = _STATE_WORDS.search(attributed_to)
        return [("rgb", state.group(0), "state-level", True)] if state else []
    parents = _parents(ledger)

    def ancestors(a: str) -> set[str]:
        out: set[str] = set()
        p = parents.get(a)
        while p and p not in out:
            out.add(p)
            p = parents.get(p)
        return out

    covered = set().union(*(ancestors(a) for a in found))
    return [(a, found[a], "alias", a not in covered) for a in sorted(found)]


def actor_filter_ids(ledger: Ledger, name: str) -> list[str]:
    """The actor ids an ``--actor`` value selects: the actors it names and their sub-actors."""
    from ..tags import actor_descendants, ensure_builtin_actors, resolve_actor

    ensure_builtin_actors(ledger)
    ids = resolve_actor(ledger, name)
    if not ids:
        raise ConfigError(f"unknown actor {name!r}: no actor id, label or alias in the tag store")
    return actor_descendants(ledger, ids)


# --------------------------------------------------------------------------- writing


def _incident_row(i: Incident) -> list[Any]:
    return [i.incident_id, i.date, i.date_precision, i.victim, i.victim_type, i.country, i.amount_usd,
            list(i.assets), list(i.chains), i.attack_vector, i.attributed_to, i.attribution_source,
            i.confidence, list(i.source_urls), i.notes, i.origin]  # fmt: skip


def write_incidents(ledger: Ledger, incidents: Sequence[Incident]) -> None:
    """Insert or replace (by incident_id) ``incidents`` and their actor links, in one transaction."""
    ensure_schema(ledger)
    links = {i.incident_id: link_actors(ledger, i.attributed_to) for i in incidents}

    def work(con: Any) -> None:
        ids = [i.incident_id for i in incidents]
        if ids:
            ph = ",".join("?" * len(ids))
            con.execute(f"DELETE FROM {SCHEMA}.incident_actors WHERE incident_id IN ({ph})", ids)
            con.execute(f"DELETE FROM {SCHEMA}.incidents WHERE incident_id IN ({ph})", ids)
        con.executemany(
            f"INSERT INTO {SCHEMA}.incidents (incident_id, date, date_precision, victim, victim_type, country, "
            "amount_usd, assets, chains, attack_vector, attributed_to, attribution_source, confidence, "
            "source_urls, notes, origin) VALUES (" + ",".join("?" * 16) + ")",
            [_incident_row(i) for i in incidents],
        )
        actor_rows = [[iid, a, m, link, spec] for iid, ls in links.items() for a, m, link, spec in ls]
        if actor_rows:
            con.executemany(f"INSERT INTO {SCHEMA}.incident_actors VALUES (?, ?, ?, ?, ?)", actor_rows)

    _in_transaction(ledger, work)


def add_incident(ledger: Ledger, incident: Incident, *, replace_existing: bool = False) -> Incident:
    """Add one validated incident (``origin`` defaults to 'manual'); ConfigError on a bad
    field or an id already present (unless ``replace_existing``)."""
    if not incident.origin:
        incident = replace(incident, origin="manual")
    try:
        validate(incident)
    except FieldProblem as p:
        raise ConfigError(f"incident {incident.incident_id!r}: field {p.name!r}: {p.message}") from None
    ensure_schema(ledger)
    if not replace_existing and get_incident(ledger, incident.incident_id, missing_ok=True) is not None:
        raise ConfigError(f"incident {incident.incident_id!r} already exists (choose another id)")
    write_incidents(ledger, [incident])
    got = get_incident(ledger, incident.incident_id)
    assert got is not None
    return got


# --------------------------------------------------------------------------- reading


def _has_schema(ledger: Ledger) -> bool:
    return ledger.has_table(SCHEMA, "incidents")


_COLS = ("incident_id, date, date_precision, victim, victim_type, country, amount_usd, assets, chains, "
         "attack_vector, attributed_to, attribution_source, confidence, source_urls, notes, origin")  # fmt: skip


def list_incidents(ledger: Ledger, filt: IncidentFilter | None = None) -> list[Incident]:
    """Incidents matching ``filt`` (all when None), by date then id."""
    if not _has_schema(ledger):
        return []
    f = filt or IncidentFilter()
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    if f.since is not None:
        where.append("date >= ?")
        params.append(f.since)
    if f.until is not None:
        where.append("date <= ?")
        params.append(f.until)
    for col, values in (("victim_type", f.victim_types), ("confidence", f.confidences), ("incident_id", f.ids)):
        if values:
            where.append(f"{col} IN ({','.join('?' * len(values))})")
            params += list(values)
    if f.countries:
        where.append(f"upper(country) IN ({','.join('?' * len(f.countries))})")
        params += [c.upper() for c in f.countries]
    if f.chains:
        where.append(f"list_has_any(chains, [{','.join('?' * len(f.chains))}]::VARCHAR[])")
        params += [chain_name(c) for c in f.chains]
    if f.actor:
        ids = actor_filter_ids(ledger, f.actor)
        where.append(f"incident_id IN (SELECT incident_id FROM {SCHEMA}.incident_actors "
                     f"WHERE actor_id IN ({','.join('?' * len(ids))}))")  # fmt: skip
        params += ids
    rows = ledger.con.execute(
        f"SELECT {_COLS} FROM {SCHEMA}.incidents WHERE {' AND '.join(where)} ORDER BY date, incident_id", params
    ).fetchall()
    return _hydrate(ledger, rows)


def _hydrate(ledger: Ledger, rows: list[tuple[Any, ...]]) -> list[Incident]:
    if not rows:
        return []
    ids = [r[0] for r in rows]
    ph = ",".join("?" * len(ids))
    actors: dict[str, list[str]] = {}
    for iid, aid in ledger.con.execute(
        f"SELECT incident_id, actor_id FROM {SCHEMA}.incident_actors WHERE incident_id IN ({ph}) "
        "AND most_specific ORDER BY actor_id", ids).fetchall():  # fmt: skip
        actors.setdefault(iid, []).append(aid)
    seeds: dict[str, list[tuple[str, str, str]]] = {}
    for iid, chain, addr, role in ledger.con.execute(
        f"SELECT incident_id, chain, address, role FROM {SCHEMA}.incident_seeds WHERE incident_id IN ({ph}) "
        "ORDER BY chain, role_kind, address", ids).fetchall():  # fmt: skip
        seeds.setdefault(iid, []).append((chain, addr, role))
    out = []
    for r in rows:
        out.append(Incident(
            incident_id=r[0], date=r[1], date_precision=r[2], victim=r[3], victim_type=r[4], country=r[5],
            amount_usd=int(r[6]) if r[6] is not None else None, assets=tuple(r[7] or ()),
            chains=tuple(r[8] or ()), attack_vector=r[9] or "", attributed_to=r[10] or "",
            attribution_source=r[11] or "", confidence=r[12], source_urls=tuple(r[13] or ()),
            notes=r[14] or "", actor_ids=tuple(actors.get(r[0], ())),
            seed_addresses=tuple(seeds.get(r[0], ())), origin=r[15] or "",
        ))  # fmt: skip
    return out


def get_incident(ledger: Ledger, incident_id: str, *, missing_ok: bool = False) -> Incident | None:
    """One incident by id; ConfigError when absent (None with ``missing_ok``)."""
    got = list_incidents(ledger, IncidentFilter(ids=(incident_id,)))
    if got:
        return got[0]
    if missing_ok:
        return None
    raise ConfigError(f"no incident {incident_id!r} in the registry (run `chainsleuth incidents import`)")


@dataclass(frozen=True)
class SeedRow:
    incident_id: str
    chain: str
    currency: str
    address: str
    role: str
    role_kind: str
    hack: str = ""
    seed_date: date | None = None
    source: str = ""
    origin: str = ""


def incident_seeds(ledger: Ledger, incident_id: str, *, chain: str | None = None,
                   roles: Iterable[str] | None = None) -> list[SeedRow]:  # fmt: skip
    """Seed rows of an incident, optionally only one chain name and role kinds."""
    if not _has_schema(ledger):
        return []
    where, params = ["incident_id = ?"], [incident_id]
    if chain:
        where.append("chain = ?")
        params.append(chain)
    rl = list(roles or [])
    if rl:
        where.append(f"role_kind IN ({','.join('?' * len(rl))})")
        params += rl
    rows = ledger.con.execute(
        "SELECT incident_id, chain, currency, address, role, role_kind, hack, seed_date, source, origin "
        f"FROM {SCHEMA}.incident_seeds WHERE {' AND '.join(where)} ORDER BY chain, role_kind, address", params,
    ).fetchall()
    return [SeedRow(incident_id=r[0], chain=r[1], currency=r[2], address=r[3], role=r[4], role_kind=r[5],
                    hack=r[6] or "", seed_date=r[7], source=r[8] or "", origin=r[9] or "") for r in rows]  # fmt: skip


def incident_actor_links(ledger: Ledger, incident_id: str) -> list[dict[str, Any]]:
    """Every actor link of an incident with the matched text and link kind."""
    if not _has_schema(ledger):
        return []
    cur = ledger.con.execute(
        f"SELECT a.actor_id, t.label, a.matched, a.link, a.most_specific FROM {SCHEMA}.incident_actors a "
        "LEFT JOIN (SELECT actor_id, any_value(label) AS label FROM tags.actors GROUP BY actor_id) t "
        "USING (actor_id) WHERE a.incident_id = ? ORDER BY a.actor_id", [incident_id])  # fmt: skip
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# --------------------------------------------------------------------------- traces


def record_trace(ledger: Ledger, incident_id: str, result: TraceResult, *,
                 run_at: datetime | None = None, params: dict[str, Any] | None = None) -> int:  # fmt: skip
    """Attach a trace run to an incident; returns its trace_id. Amounts are kept exact
    (decimal strings), the accounted share as an exact fraction ``"n/d"``."""
    get_incident(ledger, incident_id)
    ensure_schema(ledger)
    when = run_at or datetime.now(UTC)
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    doc = result.to_json()
    assets = list(doc["accounted"])
    shares = {a: str(result.accounted_share(a)) for a in assets}
    holder: dict[str, int] = {}

    def work(con: Any) -> None:
        row = con.execute(f"SELECT coalesce(max(trace_id), 0) + 1 FROM {SCHEMA}.incident_traces").fetchone()
        tid = int(row[0])
        con.execute(
            f"INSERT INTO {SCHEMA}.incident_traces VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [tid, incident_id, when, result.chain, result.model, doc["direction"],
             json.dumps(params or {}, sort_keys=True, default=str), list(result.seeds),
             json.dumps(doc["seed_value"]), json.dumps(doc["accounted"]), json.dumps(shares),
             json.dumps(doc["endpoints"], default=str), json.dumps(doc["holdings"], default=str),
             json.dumps(doc, default=str)],
        )  # fmt: skip
        holder["id"] = tid

    _in_transaction(ledger, work)
    return holder["id"]


def _ints(d: dict[str, str]) -> dict[str, int]:
    return {k: int(v) for k, v in d.items()}


def _rows_int(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    return tuple({**r, "value": int(r["value"])} for r in rows)


def incident_traces(ledger: Ledger, incident_id: str) -> list[IncidentTrace]:
    """The traces attached to an incident, oldest first, amounts back as exact ints."""
    if not _has_schema(ledger):
        return []
    rows = ledger.con.execute(
        f"SELECT trace_id, incident_id, run_at, chain, model, direction, params, seeds, seed_value, accounted, "
        f"accounted_share, result FROM {SCHEMA}.incident_traces WHERE incident_id = ? ORDER BY trace_id",
        [incident_id],
    ).fetchall()
    out = []
    for r in rows:
        doc = json.loads(r[11])
        out.append(IncidentTrace(
            trace_id=int(r[0]), incident_id=r[1], run_at=r[2].replace(tzinfo=UTC), chain=r[3], model=r[4],
            direction=r[5], params=json.loads(r[6] or "{}"), seeds=tuple(r[7] or ()),
            seed_value=_ints(json.loads(r[8])), accounted=_ints(json.loads(r[9])),
            accounted_share={a: Fraction(s) for a, s in json.loads(r[10]).items()},
            endpoints=_rows_int(doc["endpoints"]), holdings=_rows_int(doc["holdings"]), result=doc,
        ))  # fmt: skip
    return out


@dataclass
class ImportResult:
    """What an incident or seed import did."""

    path: str
    incidents: int = 0
    seeds: int = 0
    tags: int = 0
    replaced: int = 0
    per_incident: dict[str, int] = field(default_factory=dict)
