"""Tag search, per-address lookup, propagation to entities, conflicts and TagPack export."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..store import Ledger
from .importers import ensure_builtin_actors
from .normalize import normalize_address
from .store import SCHEMA, ensure_schema, table_exists
from .taxonomy import CONCEPTS, is_abuse_concept

_COLS = (
    "tag_id, currency, address, label, category, confidence, confidence_level, actor, source, "
    "source_url, valid_from, is_abuse, context, import_id, abuse, concepts, is_cluster_definer, lastmod"
)
# Token currencies whose 0x addresses are Ethereum-network accounts.
ETH_NETWORK = ("ETH", "USDT", "USDC", "DAI", "WETH")
# Categories that say nothing specific about what an entity is.
GENERIC = {"user", "organization", "entity", "service", "concept", "abuse", "perpetrator"}


def _rows(ledger: Ledger, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = ledger.con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def actor_descendants(ledger: Ledger, actor_ids: Iterable[str]) -> list[str]:
    """The actors and every actor below them in the hierarchy."""
    seen = set(actor_ids)
    frontier = set(seen)
    while frontier:
        ph = ",".join("?" * len(frontier))
        kids = {
            r[0]
            for r in ledger.con.execute(
                f"SELECT DISTINCT actor_id FROM {SCHEMA}.actors WHERE parent_id IN ({ph})",
                list(frontier),
            ).fetchall()
        }
        frontier = kids - seen
        seen |= kids
    return sorted(seen)


def resolve_actor(ledger: Ledger, name: str) -> list[str]:
    """Actor ids whose id, label or alias equals ``name`` (case-insensitive)."""
    q = name.strip().lower()
    return [
        r[0]
        for r in ledger.con.execute(
            f"SELECT DISTINCT actor_id FROM {SCHEMA}.actor_aliases WHERE alias = ? "
            f"UNION SELECT DISTINCT actor_id FROM {SCHEMA}.actors WHERE lower(actor_id) = ?",
            [q, q],
        ).fetchall()
    ]


def search(ledger: Ledger, query: str, *, limit: int = 1000) -> list[dict[str, Any]]:
    """Tags matching ``query`` as an address (any spelling), an actor alias, or label text.

    Each row carries ``match``: ``address``, ``address-case-insensitive`` (a base58 address
    typed in the wrong case), ``actor`` (the alias names the actor or an ancestor) or ``label``.
    """
    ensure_builtin_actors(ledger)
    out: dict[int, dict[str, Any]] = {}

    def add(rows: list[dict[str, Any]], match: str) -> None:
        for r in rows:
            out.setdefault(r["tag_id"], {**r, "match": match})

    norm = normalize_address(query)
    add(
        _rows(
            ledger,
            f"SELECT {_COLS} FROM {SCHEMA}.tags WHERE address = ? LIMIT {limit}",
            [norm.address],
        ),
        "address",
    )
    if not out and len(norm.address) >= 25 and " " not in query.strip():
        add(
            _rows(ledger, f"SELECT {_COLS} FROM {SCHEMA}.tags WHERE lower(address) = ? LIMIT {limit}",
                  [norm.address.lower()]),
            "address-case-insensitive",
        )  # fmt: skip
    actors = resolve_actor(ledger, query)
    if actors:
        ids = actor_descendants(ledger, actors)
        ph = ",".join("?" * len(ids))
        add(
            _rows(
                ledger,
                f"SELECT {_COLS} FROM {SCHEMA}.tags WHERE actor IN ({ph}) ORDER BY tag_id LIMIT {limit}",
                ids,
            ),
            "actor",
        )
    text = query.strip()
    # an address that matched is not also looked up as label text
    if len(text) >= 3 and not any(r["match"].startswith("address") for r in out.values()):
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        add(
            _rows(ledger, f"SELECT {_COLS} FROM {SCHEMA}.tags WHERE label ILIKE ? ESCAPE '\\' "
                  f"ORDER BY tag_id LIMIT {limit}", [pattern]),
            "label",
        )  # fmt: skip
    return list(out.values())[:limit]


def _currency_clause(currency: str) -> tuple[str, list[Any]]:
    cur = currency.upper()
    if cur == "ETH":
        return f"currency IN ({','.join('?' * len(ETH_NETWORK))})", list(ETH_NETWORK)
    return "currency = ?", [cur]


def tags_for_addresses(
    ledger: Ledger, currency: str, addresses: Iterable[str]
) -> list[dict[str, Any]]:
    """All tags of these addresses (any spelling) in ``currency`` (ETH includes its tokens)."""
    ensure_schema(ledger)
    keys = sorted({normalize_address(a, currency).address for a in addresses})
    if not keys:
        return []
    clause, params = _currency_clause(currency)
    ledger.con.execute("CREATE OR REPLACE TEMP TABLE _tag_keys (address VARCHAR)")
    ledger.con.executemany("INSERT INTO _tag_keys VALUES (?)", [[k] for k in keys])
    return _rows(
        ledger,
        f"SELECT {_COLS} FROM {SCHEMA}.tags WHERE {clause} AND address IN (SELECT address FROM _tag_keys) "
        "ORDER BY address, confidence_level DESC, tag_id",
        params,
    )


def _chain_currency(ledger: Ledger, chain: str) -> str:
    for c in ledger.chains():
        if c["name"] == chain:
            return str(c["native_asset"])
    raise ConfigError(f"unknown chain {chain!r}")


def _entity_source(ledger: Ledger) -> str:
    """SQL yielding (cluster_id, address) for every tagged address of the chain (param: chain)."""
    if table_exists(ledger, "entities", "address_clusters"):
        return "SELECT cluster_id::VARCHAR AS entity, address FROM entities.address_clusters WHERE chain = ?"
    return f"SELECT DISTINCT address AS entity, address FROM {SCHEMA}.tags WHERE ? IS NOT NULL"


def entity_tags(ledger: Ledger, chain: str, cluster_id: int | str) -> list[dict[str, Any]]:
    """Tags of every address of the entity (cluster). Without clustering, an address is its own entity."""
    ensure_schema(ledger)
    clause, params = _currency_clause(_chain_currency(ledger, chain))
    if table_exists(ledger, "entities", "address_clusters"):
        if isinstance(cluster_id, str) and not cluster_id.isdigit():
            row = ledger.con.execute(
                "SELECT cluster_id FROM entities.address_clusters WHERE chain = ? AND address = ?",
                [chain, normalize_address(cluster_id).address],
            ).fetchone()
            if row is None:
                return tags_for_addresses(ledger, _chain_currency(ledger, chain), [cluster_id])
            cluster_id = int(row[0])
        return _rows(
            ledger,
            f"SELECT {_COLS} FROM {SCHEMA}.tags WHERE {clause} AND address IN "
            "(SELECT address FROM entities.address_clusters WHERE chain = ? AND cluster_id = ?) "
            "ORDER BY address, confidence_level DESC, tag_id",
            [*params, chain, int(cluster_id)],
        )
    return tags_for_addresses(ledger, _chain_currency(ledger, chain), [str(cluster_id)])


def _lineage(concept: str) -> set[str]:
    out = set()
    c: str | None = concept
    while c is not None and c not in out:
        out.add(c)
        c = CONCEPTS.get(c)
    return out


# Wallet kinds describe how keys are used, not who owns them: compatible with any entity type.
_WALLET_KINDS = {"hot_wallet", "cold_wallet", "warm_wallet", "white_usage", "gray_usage"}
_MIXING = {"mixing", "mixing_service", "coinjoin"}


def _role(category: str) -> str | None:
    """What a category says the entity *is*: None (no claim), 'abuse', 'mixing' or the category."""
    if category in GENERIC or category in _WALLET_KINDS:
        return None
    if is_abuse_concept(category):
        return "abuse"
    return "mixing" if category in _MIXING else category


def _category_conflicts(categories: list[str]) -> list[tuple[str, str]]:
    """Pairs of categories that cannot both describe one owner.

    Several abuse kinds on one entity are normal (a scammer phishes and launders) and a
    sanctioned exchange is still an exchange, so abuse concepts only conflict with 'victim'.
    Two entity types conflict unless one is narrower than the other (defi_dex within defi).
    """
    pairs = []
    for i, a in enumerate(categories):
        for b in categories[i + 1 :]:
            ra, rb = _role(a), _role(b)
            if ra is None or rb is None or ra == rb:
                continue
            if "abuse" in (ra, rb) or "victim" in (ra, rb):
                # a bridge or an exchange can be robbed; only victim + abuse contradicts
                if {ra, rb} == {"abuse", "victim"}:
                    pairs.append((a, b))
                continue
            if a not in _lineage(b) and b not in _lineage(a):
                pairs.append((a, b))
    return pairs


def tag_conflicts(ledger: Ledger, chain: str, entity: int | str | None = None) -> list[dict[str, Any]]:
    """Entities whose tags disagree: two entity types that cannot both hold (exchange +
    mixing_service, victim + service_hack), or two actors neither of which contains the
    other. Reported for a human to judge; nothing is resolved or dropped. ``entity``
    limits the check to one entity (a cluster id, or an address without clustering)."""
    ensure_builtin_actors(ledger)
    clause, params = _currency_clause(_chain_currency(ledger, chain))
    only = "" if entity is None else " AND e.entity = ?"
    rows = ledger.con.execute(
        f"WITH e AS ({_entity_source(ledger)}) "
        f"SELECT e.entity, list(DISTINCT t.category) FILTER (WHERE t.category IS NOT NULL), "
        "list(DISTINCT t.actor) FILTER (WHERE t.actor IS NOT NULL), count(*), count(DISTINCT t.address) "
        f"FROM e JOIN {SCHEMA}.tags t ON t.address = e.address WHERE {clause}{only} "
        "GROUP BY e.entity HAVING count(DISTINCT t.category) > 1 OR count(DISTINCT t.actor) > 1 "
        "ORDER BY e.entity",
        [chain, *params, *([] if entity is None else [str(entity)])],
    ).fetchall()
    out = []
    family: dict[str, set[str]] = {}
    for entity, cats, actors, n_tags, n_addr in rows:
        categories = sorted(cats or [])
        cat_conflict = _category_conflicts(categories)
        actor_list = sorted(actors or [])
        for a in actor_list:
            if a not in family:
                family[a] = set(actor_descendants(ledger, [a]))
        actor_conflict = [
            (a, b) for i, a in enumerate(actor_list) for b in actor_list[i + 1 :]
            if a not in family[b] and b not in family[a]
        ]  # fmt: skip
        if cat_conflict or actor_conflict:
            out.append({
                "entity": entity, "categories": categories, "actors": actor_list,
                "category_conflicts": cat_conflict, "actor_conflicts": actor_conflict,
                "tags": n_tags, "addresses": n_addr,
            })  # fmt: skip
    return out


def export_tagpack(
    ledger: Ledger,
    path: str | Path,
    *,
    source: str | None = None,
    category: str | None = None,
    actor: str | None = None,
    currency: str | None = None,
    title: str = "chainsleuth tag export",
    creator: str = "chainsleuth",
) -> int:
    """Write the (filtered) tags as one GraphSense TagPack YAML file; returns the tag count.

    Fields GraphSense has no slot for (valid_from, chainsleuth source name) travel in the
    tag's JSON ``context`` and are restored on import, so export + import is lossless.
    """
    ensure_builtin_actors(ledger)
    where, params = ["1=1"], []
    if source:
        where.append("(source ILIKE ? OR source_url ILIKE ?)")
        params += [f"%{source}%", f"%{source}%"]
    if category:
        where.append("category = ?")
        params.append(category)
    if actor:
        ids = actor_descendants(ledger, resolve_actor(ledger, actor) or [actor])
        where.append(f"actor IN ({','.join('?' * len(ids))})")
        params += ids
    if currency:
        where.append("currency = ?")
        params.append(currency.upper())
    rows = _rows(
        ledger,
        f"SELECT {_COLS} FROM {SCHEMA}.tags WHERE {' AND '.join(where)} ORDER BY tag_id",
        params,
    )
    tags = []
    for r in rows:
        ctx = json.loads(r["context"]) if r["context"] else {}
        ctx["chainsleuth_source"] = r["source"]
        if r["valid_from"]:
            ctx["chainsleuth_valid_from"] = r["valid_from"].isoformat()
        tag: dict[str, Any] = {"address": r["address"], "currency": r["currency"], "label": r["label"],
                               "source": r["source_url"] or r["source"], "confidence": r["confidence"]}  # fmt: skip
        if r["category"] and r["category"] != r["abuse"]:
            tag["category"] = r["category"]
        for name in ("abuse", "actor", "is_cluster_definer"):
            if r[name] is not None:
                tag[name] = r[name]
        if r["concepts"]:
            tag["concepts"] = list(r["concepts"])
        if r["lastmod"]:
            tag["lastmod"] = r["lastmod"]
        tag["context"] = json.dumps(ctx, sort_keys=True, default=str)
        tags.append(tag)
    doc = {
        "title": title,
        "creator": creator,
        "description": f"Exported by chainsleuth ({len(tags)} tags)",
        "tags": tags,
    }  # fmt: skip  (no header lastmod: tags would inherit it)
    Path(path).write_text(
        yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True), "utf-8"
    )
    return len(tags)
