"""Exchange formats: STIX 2.1 bundles (``stix2``) and FollowTheMoney entities (``followthemoney``).

STIX 2.1 mapping:

* each actor of the DPRK hierarchy -> a ``threat-actor`` (``nation-state``) and, below
  the RGB, an ``intrusion-set`` with its aliases; an intrusion-set is ``attributed-to``
  its own threat-actor and its parent's (APT38 -> Lazarus Group -> RGB);
* each non-victim seed address -> an ``indicator`` with the pattern
  ``[cryptocurrency-wallet:address = '...']`` (STIX 2.1 has no core cryptocurrency
  object; ``cryptocurrency-wallet`` with ``address`` is the community extension SCO of
  muchdogesec/stix2extensions; the pattern is valid STIX patterning) that ``indicates``
  the incident's actors;
* each incident -> an ``identity`` for the victim, ``targets`` relationships, and a
  ``report`` (published on the incident date) referencing all of them, with the
  source URLs as external references.

Ids are UUIDv5 of stable keys, so an export is reproducible and re-exports update.

FollowTheMoney mapping: actors -> ``Organization`` (country KP, topics crime.cyber /
crime.theft), the hierarchy as ``Membership``; seed addresses -> ``CryptoWallet`` with
``holder`` = the incident's actor organisation; an address or actor on the OFAC SDN
list (tag category ``sanction``) -> a ``Sanction`` entity pointing at it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from ..store import Ledger
from .model import Incident

NAMESPACE = uuid.UUID("6f1c1d1e-6a8e-5c55-9b7a-2f0d3c1e4b11")  # chainsleuth's STIX/FtM id namespace
INDICATOR_ROLES = ("attacker", "cash-out", "laundering")
OFAC_SDN_URL = "https://sanctionslist.ofac.treas.gov/Home/SdnList"


def _id(kind: str, key: str) -> str:
    return f"{kind}--{uuid.uuid5(NAMESPACE, f'{kind}:{key}')}"


def actors_for(ledger: Ledger, incidents: Iterable[Incident]) -> dict[str, dict[str, Any]]:
    """The actors the incidents link to, with their ancestors: id -> {label, parent_id,
    aliases, uri, jurisdictions, sources}."""
    from ..tags import ensure_builtin_actors

    ensure_builtin_actors(ledger)
    rows = {str(r[0]): r for r in ledger.con.execute(
        "SELECT actor_id, any_value(label), any_value(parent_id), any_value(uri), any_value(jurisdictions), "
        "any_value(context) FROM tags.actors GROUP BY actor_id").fetchall()}  # fmt: skip
    aliases: dict[str, list[str]] = {}
    for a, alias in ledger.con.execute("SELECT DISTINCT actor_id, alias FROM tags.actor_aliases ORDER BY 1, 2").fetchall():
        aliases.setdefault(str(a), []).append(str(alias))
    want: set[str] = set()
    for inc in incidents:
        for a in inc.actor_ids:
            while a and a in rows and a not in want:
                want.add(a)
                a = rows[a][2]
    out: dict[str, dict[str, Any]] = {}
    for a in sorted(want):
        _, label, parent, uri, juris, ctx = rows[a]
        context = json.loads(ctx) if isinstance(ctx, str) else (ctx or {})
        out[a] = {"label": label or a, "parent_id": parent, "uri": uri, "jurisdictions": list(juris or []),
                  "aliases": aliases.get(a, []), "sources": list(context.get("sources") or [])}  # fmt: skip
    return out


def sanctioned_addresses(ledger: Ledger) -> dict[str, dict[str, Any]]:
    """Addresses tagged ``sanction`` in the tag store (OFAC lists): lower-case address ->
    {label, program, source, source_url, actor}."""
    from ..tags.store import table_exists

    if not table_exists(ledger, "tags", "tags"):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for addr, label, source, url, actor, ctx in ledger.con.execute(
        "SELECT address, label, source, source_url, actor, context FROM tags.tags WHERE category = 'sanction' "
        "ORDER BY tag_id").fetchall():  # fmt: skip
        context = json.loads(ctx) if isinstance(ctx, str) else (ctx or {})
        out.setdefault(str(addr).lower(), {"label": label, "program": context.get("program"), "source": source,
                                           "source_url": url, "actor": actor})  # fmt: skip
    return out


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _role_kind(role: str) -> str:
    return role.split(":", 1)[0].split("(", 1)[0].strip().lower()


def _stix_str(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def export_stix(incidents: Sequence[Incident], actors: Mapping[str, Mapping[str, Any]], *,
                created: datetime | None = None) -> Any:  # fmt: skip
    """A ``stix2.Bundle`` for the incidents (see the module docstring for the mapping)."""
    import stix2

    when = created or datetime(2000, 1, 1, tzinfo=UTC)  # fixed: the same export twice is identical
    common = {"created": when, "modified": when, "allow_custom": False}
    objects: dict[str, Any] = {}

    def add(obj: Any) -> Any:
        objects.setdefault(obj.id, obj)
        return obj

    def rel(src: str, kind: str, dst: str) -> Any:
        return add(stix2.Relationship(id=_id("relationship", f"{src}|{kind}|{dst}"), source_ref=src,
                                      relationship_type=kind, target_ref=dst, **common))  # fmt: skip

    ta: dict[str, str] = {}
    iset: dict[str, str] = {}
    for a, info in actors.items():
        refs = [stix2.ExternalReference(source_name="chainsleuth actor hierarchy", url=u)
                for u in [info.get("uri"), *info.get("sources", [])] if u]  # fmt: skip
        aliases = sorted({x for x in info.get("aliases", []) if x.lower() != str(info["label"]).lower()})
        t = add(stix2.ThreatActor(id=_id("threat-actor", a), name=info["label"], threat_actor_types=["nation-state"],
                                  aliases=aliases or None, external_references=refs or None, **common))  # fmt: skip
        ta[a] = t.id
        if info.get("parent_id"):
            s = add(stix2.IntrusionSet(id=_id("intrusion-set", a), name=info["label"], aliases=aliases or None,
                                       external_references=refs or None, **common))  # fmt: skip
            iset[a] = s.id
    for a in iset:
        rel(iset[a], "attributed-to", ta[a])
        parent = actors[a].get("parent_id")
        if parent in ta:
            rel(iset[a], "attributed-to", ta[str(parent)])
    for inc in incidents:
        refs_in_report: list[str] = []
        victim = add(stix2.Identity(id=_id("identity", f"victim:{inc.victim}"), name=inc.victim,
                                    identity_class="organization", **common))  # fmt: skip
        refs_in_report.append(victim.id)
        actor_refs = [iset.get(a) or ta[a] for a in inc.actor_ids if a in ta]
        for a in inc.actor_ids:
            if a in ta:
                refs_in_report += [ta[a], rel(ta[a], "targets", victim.id).id]
                if a in iset:
                    refs_in_report.append(iset[a])
        for chain, address, role in inc.seed_addresses:
            if _role_kind(role) not in INDICATOR_ROLES:
                continue
            ind = add(stix2.Indicator(
                id=_id("indicator", f"{chain}:{address}"), name=f"{chain} address {address}",
                description=f"{inc.victim} ({inc.incident_id}): {role}", indicator_types=["malicious-activity"],
                pattern=f"[cryptocurrency-wallet:address = '{_stix_str(address)}']", pattern_type="stix",
                pattern_version="2.1", valid_from=_midnight(inc.date), **common))  # fmt: skip
            refs_in_report.append(ind.id)
            for ref in actor_refs:
                refs_in_report.append(rel(ind.id, "indicates", ref).id)
        amount = "not reported" if inc.amount_usd is None else f"USD {inc.amount_usd:,} (reported, at the time)"
        desc = (f"{inc.victim} ({inc.victim_type}{', ' + inc.country if inc.country else ''}), "
                f"{inc.date.isoformat()[: 7 if inc.date_precision == 'month' else 10]}: {amount}. "
                f"Attack vector: {inc.attack_vector}. Attributed to {inc.attributed_to} by {inc.attribution_source} "
                f"(confidence: {inc.confidence}). {inc.notes}").strip()  # fmt: skip
        ext = [stix2.ExternalReference(source_name="chainsleuth incident", external_id=inc.incident_id)]
        ext += [stix2.ExternalReference(source_name="source", url=u) for u in inc.source_urls]
        add(stix2.Report(id=_id("report", inc.incident_id), name=f"{inc.incident_id}: {inc.victim}",
                         description=desc, report_types=["threat-report"], published=_midnight(inc.date),
                         object_refs=list(dict.fromkeys(refs_in_report)), external_references=ext,
                         labels=[f"confidence:{inc.confidence}", f"victim-type:{inc.victim_type}"], **common))  # fmt: skip
    return stix2.Bundle(objects=list(objects.values()), id=_id("bundle", "|".join(i.incident_id for i in incidents)),
                        allow_custom=False)  # fmt: skip


def export_ftm(incidents: Sequence[Incident], actors: Mapping[str, Mapping[str, Any]], *,
               sanctioned: Mapping[str, Mapping[str, Any]] | None = None) -> list[Any]:  # fmt: skip
    """FollowTheMoney entity proxies for the incidents' actors and seed wallets
    (see the module docstring); every value is cleaned by FtM's own property types."""
    from followthemoney import model

    sanctioned = sanctioned or {}
    out: dict[str, Any] = {}

    def make(schema: str, key: str) -> Any:
        ent = model.make_entity(schema)
        ent.id = f"cs-{uuid.uuid5(NAMESPACE, f'{schema}:{key}')}"
        return out.setdefault(ent.id, ent)

    def sanction(target: Any, info: Mapping[str, Any], key: str) -> None:
        s = make("Sanction", key)
        s.add("entity", target.id)
        s.add("authority", "US Treasury OFAC")
        s.add("country", "us")
        if info.get("program"):
            s.add("program", info["program"])
        s.add("sourceUrl", info.get("source_url") or OFAC_SDN_URL)
        s.add("reason", info.get("label"))

    orgs: dict[str, Any] = {}
    for a, info in actors.items():
        o = make("Organization", a)
        o.add("name", info["label"])
        o.add("alias", [x for x in info.get("aliases", []) if x.lower() != str(info["label"]).lower()])
        o.add("country", [j.lower() for j in info.get("jurisdictions") or []] or ["kp"])
        o.add("topics", ["crime.cyber", "crime.theft"])
        o.add("sourceUrl", [u for u in [info.get("uri"), *info.get("sources", [])] if u])
        orgs[a] = o
    for a, o in orgs.items():
        parent = actors[a].get("parent_id")
        if parent in orgs:
            m = make("Membership", f"{a}|{parent}")
            m.add("member", o.id)
            m.add("organization", orgs[str(parent)].id)
    sanctioned_actors = {str(v["actor"]): v for v in sanctioned.values() if v.get("actor")}
    for a, o in orgs.items():
        if a in sanctioned_actors:
            sanction(o, sanctioned_actors[a], f"actor:{a}")
    for inc in incidents:
        holders = [orgs[a] for a in inc.actor_ids if a in orgs]
        for chain, address, role in inc.seed_addresses:
            if _role_kind(role) not in INDICATOR_ROLES:
                continue
            w = make("CryptoWallet", f"{chain}:{address}")
            w.add("publicKey", address)
            w.add("blockchain", chain)
            w.add("holder", [h.id for h in holders])
            w.add("topics", "crime.theft")
            w.add("description", f"{inc.incident_id} {inc.victim}: {role}")
            w.add("sourceUrl", list(inc.source_urls))
            if address.lower() in sanctioned:
                sanction(w, sanctioned[address.lower()], f"wallet:{chain}:{address}")
    return list(out.values())
