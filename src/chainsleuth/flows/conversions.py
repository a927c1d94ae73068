"""Conversions: swaps and bridge hops, the edges where value changes asset or chain.

A trace follows an asset on one chain through the ``transfers`` view. Two kinds
of movement change what is followed, and both are decoded here into tables of
the ``flows`` schema:

* ``flows.swaps``: DEX swaps (Uniswap V2 and V3 ``Swap`` events and every fork
  with the same event), one row per swap event: ``amount_in`` of ``token_in``
  went into ``pool`` from ``trader`` and ``amount_out`` of ``token_out`` came
  out to ``recipient``. A trace converts taint in ``token_in`` into taint in
  ``token_out`` in proportion (:func:`swap_conversion_edges`, :func:`convert_amount`);
* ``flows.bridge_transfers``: a lock/burn on one chain matched to the
  mint/release on another (:func:`match_bridges`); the trace continues on the
  destination chain from ``(dst_transaction_hash, dst_position)``.

``flows.pools`` is the pool registry (pool -> token0/token1 from the factories'
``PairCreated``/``PoolCreated`` logs in the ledger) that swap decoding prefers
over inferring tokens from Transfer logs.

Each decoder is one small module registered in :mod:`chainsleuth.flows.decoders`.
Amounts are exact integers: HUGEINT columns, with the decimal digits in the
``*_overflow`` text column when a uint256 does not fit (the amount column is then
NULL; a trace treats such a row as untraceable and reports it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pyarrow as pa

from ..errors import ConfigError
from ..store import Ledger
from ..store.schema import Columns, split_amount, table_ddl
from .decoders import BRIDGES, SWAP_DECODERS
from .decoders.base import TRANSFER_TOPIC, EvmLog, PoolTokens, Swap, SwapDecoder
from .decoders.bridges import BridgeDefinition, BridgeLeg, BridgeMatch, match_legs
from .decoders.wrapped_native import PROTOCOL as WRAPPED_NATIVE

SCHEMA = "flows"

SWAPS_COLUMNS: Columns = [
    ("chain", "VARCHAR NOT NULL"),
    ("transaction_hash", "VARCHAR NOT NULL"),
    ("log_index", "BIGINT NOT NULL"),
    ("pool", "VARCHAR"),
    ("trader", "VARCHAR"),
    ("recipient", "VARCHAR"),
    ("token_in", "VARCHAR"),
    ("amount_in", "HUGEINT"),
    ("token_out", "VARCHAR"),
    ("amount_out", "HUGEINT"),
    ("block_number", "BIGINT NOT NULL"),
    ("block_timestamp", "TIMESTAMP"),
    ("protocol", "VARCHAR NOT NULL"),
    # additions: the event's sender (router), how the tokens were resolved, overflow digits
    ("sender", "VARCHAR"),
    ("tokens_from", "VARCHAR"),
    ("transaction_index", "BIGINT"),
    ("amount_in_overflow", "VARCHAR"),
    ("amount_out_overflow", "VARCHAR"),
]

POOLS_COLUMNS: Columns = [
    ("chain", "VARCHAR NOT NULL"),
    ("pool", "VARCHAR NOT NULL"),
    ("protocol", "VARCHAR NOT NULL"),
    ("token0", "VARCHAR NOT NULL"),
    ("token1", "VARCHAR NOT NULL"),
    ("fee", "BIGINT"),
    ("factory", "VARCHAR"),
    ("transaction_hash", "VARCHAR"),
    ("block_number", "BIGINT"),
]

BRIDGE_COLUMNS: Columns = [
    ("bridge", "VARCHAR NOT NULL"),
    ("src_chain", "VARCHAR NOT NULL"),
    ("src_transaction_hash", "VARCHAR NOT NULL"),
    ("src_address", "VARCHAR"),
    ("src_asset", "VARCHAR"),
    ("src_amount", "HUGEINT"),
    ("dst_chain", "VARCHAR NOT NULL"),
    ("dst_transaction_hash", "VARCHAR"),
    ("dst_address", "VARCHAR"),
    ("dst_asset", "VARCHAR"),
    ("dst_amount", "HUGEINT"),
    ("match_key", "VARCHAR NOT NULL"),
    ("confidence", "DOUBLE NOT NULL"),
    # additions: where each leg sits (log index / output index), times, overflow digits
    ("src_position", "BIGINT"),
    ("src_block_timestamp", "TIMESTAMP"),
    ("src_deposit_id", "VARCHAR"),
    ("src_recipient", "VARCHAR"),
    ("dst_position", "BIGINT"),
    ("dst_block_timestamp", "TIMESTAMP"),
    ("src_amount_overflow", "VARCHAR"),
    ("dst_amount_overflow", "VARCHAR"),
]

TABLES: dict[str, Columns] = {
    "swaps": SWAPS_COLUMNS,
    "pools": POOLS_COLUMNS,
    "bridge_transfers": BRIDGE_COLUMNS,
}


def ensure_schema(ledger: Ledger) -> None:
    ledger.con.execute(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"')
    for table, cols in TABLES.items():
        ledger.con.execute(table_ddl(SCHEMA, table, cols))


# -- swaps ---------------------------------------------------------------------------------
@dataclass
class DecodeResult:
    chain: str
    swaps: int = 0
    pools: int = 0
    unresolved: int = 0  # swaps whose tokens could not be told: stored, not convertible
    overflow: int = 0  # swaps with an amount beyond HUGEINT (kept as text)
    by_protocol: dict[str, int] = field(default_factory=dict)


def _rows_to_logs(rel: Any) -> list[EvmLog]:
    """A DuckDB result of ``_LOG_COLUMNS`` -> logs (through Arrow: much faster than fetchall)."""
    cols = rel.fetch_arrow_table().to_pydict()
    return [
        EvmLog(tx, idx, bn, addr, tuple(topics or ()), data or "0x", txi, ts)
        for tx, idx, bn, addr, topics, data, txi, ts in zip(
            cols["transaction_hash"], cols["log_index"], cols["block_number"], cols["address"],
            cols["topics"], cols["data"], cols["transaction_index"], cols["ts"], strict=True)
    ]


# topics lower-cased here so that decoders compare hex with ==
_LOG_COLUMNS = """l.transaction_hash, l.log_index, l.block_number, lower(l.address) AS address,
                  list_transform(l.topics, t -> lower(t)) AS topics, l.data,
                  l.transaction_index, CAST(epoch(b.timestamp) AS BIGINT) AS ts"""


def decode_swaps(
    chain: str, logs: Sequence[EvmLog], pools: Mapping[str, PoolTokens] | None = None,
    decoders: Sequence[SwapDecoder] | None = None,
) -> list[Swap]:
    """Pure decoding: the logs of some transactions (swap and Transfer logs at least)
    -> their swaps, in log order. ``pools`` is the pool registry (pool -> tokens)."""
    decoders = SWAP_DECODERS if decoders is None else decoders
    by_topic = {t: d for d in decoders for t in d.swap_topics}
    pools = pools or {}
    by_tx: dict[str, list[EvmLog]] = defaultdict(list)
    for log in logs:
        by_tx[log.transaction_hash].append(log)
    out: list[Swap] = []
    for tx_logs in by_tx.values():
        tx_logs.sort(key=lambda lg: lg.log_index)
        for log in tx_logs:
            decoder = by_topic.get(log.topic0 or "")
            if decoder is None:
                continue
            swap = decoder.decode(chain, log, tx_logs, pools)
            if swap is not None:
                out.append(swap)
    out.sort(key=lambda s: (s.block_number, s.transaction_index or 0, s.log_index))
    return out


def pools_from_logs(logs: Iterable[EvmLog], decoders: Sequence[SwapDecoder] | None = None,
                    ) -> dict[str, PoolTokens]:
    """Pure: factory logs -> the pool registry."""
    decoders = SWAP_DECODERS if decoders is None else decoders
    by_topic = {d.factory_topic: d for d in decoders if d.factory_topic}
    out: dict[str, PoolTokens] = {}
    for log in logs:
        decoder = by_topic.get(log.topic0 or "")
        pool = decoder.pool_from_factory_log(log) if decoder is not None else None
        if pool is not None:
            out[pool.pool] = pool
    return out


def _check_chain(ledger: Ledger, chain: str) -> None:
    if ledger.family(chain) != "ethereum":
        raise ConfigError(f"chain {chain!r} is not an account (Ethereum-family) chain: it has no swap logs")


def _replace_pools(ledger: Ledger, chain: str, pools: Iterable[PoolTokens]) -> None:
    rows = [{"chain": chain, **vars(p)} for p in pools]
    ledger.con.register("_cs_pool_keys", pa.table({"pool": pa.array([r["pool"] for r in rows])}))
    try:
        ledger.con.execute(f"""DELETE FROM "{SCHEMA}".pools WHERE chain = ?
                               AND pool IN (SELECT pool FROM _cs_pool_keys)""", [chain])
    finally:
        ledger.con.unregister("_cs_pool_keys")
    _insert(ledger, "pools", rows)


def register_wrapped_native(ledger: Ledger, chain: str, token: str) -> None:
    """Declare ``token`` a WETH9-style wrapper of ``chain``'s native asset, so that its
    ``Deposit``/``Withdrawal`` events decode as 1:1 conversions (run before
    :func:`decode_conversions`)."""
    _check_chain(ledger, chain)
    ensure_schema(ledger)
    pool = PoolTokens(pool=token.lower(), protocol=WRAPPED_NATIVE, token0=_native(ledger, chain),
                      token1=token.lower())
    ledger.con.execute("BEGIN TRANSACTION")
    try:
        _replace_pools(ledger, chain, [pool])
        ledger.con.execute("COMMIT")
    except BaseException:
        ledger.con.execute("ROLLBACK")
        raise


def load_pools(ledger: Ledger, chain: str) -> dict[str, PoolTokens]:
    ensure_schema(ledger)
    rows = ledger.con.execute(
        f"""SELECT pool, protocol, token0, token1, fee, factory, transaction_hash, block_number
            FROM "{SCHEMA}".pools WHERE chain = ?""", [chain]).fetchall()
    return {r[0]: PoolTokens(*r) for r in rows}


def decode_conversions(
    ledger: Ledger, chain: str, *, start: int | None = None, end: int | None = None,
    decoders: Sequence[SwapDecoder] | None = None, chunk_blocks: int = 2_000,
) -> DecodeResult:
    """Decode the swaps of ``chain`` (blocks ``start..end``, default all) into ``flows.swaps``.

    First refreshes the pool registry from the factory logs of the whole chain
    (a pool's creation may predate ``start``), then decodes every swap log in
    the range with the logs of its transaction. Rows of the range are replaced
    in one transaction, so a rerun is idempotent and an interrupted one leaves
    the previous rows.
    """
    _check_chain(ledger, chain)
    if chunk_blocks < 1:
        raise ConfigError("chunk_blocks must be at least 1")
    decoders = SWAP_DECODERS if decoders is None else decoders
    ensure_schema(ledger)
    result = DecodeResult(chain)
    lo = 0 if start is None else start
    hi = (1 << 62) if end is None else end
    s = f'"{chain}"'
    factory_topics = sorted({d.factory_topic for d in decoders if d.factory_topic})
    swap_topics = sorted({t for d in decoders for t in d.swap_topics})
    factory_logs: list[EvmLog] = []
    if factory_topics:
        factory_logs = _rows_to_logs(ledger.con.execute(
            f"""SELECT {_LOG_COLUMNS} FROM {s}.logs l LEFT JOIN {s}.blocks b ON b.number = l.block_number
                WHERE lower(l.topics[1]) IN ({",".join("?" * len(factory_topics))})""",
            factory_topics))
    new_pools = pools_from_logs(factory_logs, decoders)
    swap_ph = ",".join("?" * len(swap_topics))
    first, last = ledger.con.execute(
        f"""SELECT min(block_number), max(block_number) FROM {s}.logs
            WHERE lower(topics[1]) IN ({swap_ph}) AND block_number BETWEEN ? AND ?""",
        [*swap_topics, lo, hi]).fetchall()[0]
    ledger.con.execute("BEGIN TRANSACTION")
    try:
        if new_pools:  # replaces these pools' rows; registered ones (wrapped native) stay
            _replace_pools(ledger, chain, new_pools.values())
        pools = load_pools(ledger, chain)
        ledger.con.execute(
            f'DELETE FROM "{SCHEMA}".swaps WHERE chain = ? AND block_number BETWEEN ? AND ?',
            [chain, lo, hi])
        # block chunks bound the memory: a transaction never spans two blocks
        for c_lo in range(first, last + 1, chunk_blocks) if first is not None else ():
            c_hi = min(c_lo + chunk_blocks - 1, last)
            logs = _rows_to_logs(ledger.con.execute(
                f"""WITH swap_tx AS (
                        SELECT DISTINCT transaction_hash FROM {s}.logs
                        WHERE lower(topics[1]) IN ({swap_ph}) AND block_number BETWEEN ? AND ?)
                    SELECT {_LOG_COLUMNS}
                    FROM {s}.logs l JOIN swap_tx USING (transaction_hash)
                    LEFT JOIN {s}.blocks b ON b.number = l.block_number
                    WHERE lower(l.topics[1]) IN ({swap_ph}, ?) AND l.block_number BETWEEN ? AND ?""",
                [*swap_topics, c_lo, c_hi, *swap_topics, TRANSFER_TOPIC, c_lo, c_hi]))
            swaps = decode_swaps(chain, logs, pools, decoders)
            rows = []
            for sw in swaps:
                row = dict(vars(sw))  # shallow: asdict's deepcopy dominated the run time
                for col in ("amount_in", "amount_out"):
                    row[col], row[f"{col}_overflow"] = split_amount(row[col])
                    if row[f"{col}_overflow"] is not None:
                        result.overflow += 1
                rows.append(row)
                result.by_protocol[sw.protocol] = result.by_protocol.get(sw.protocol, 0) + 1
                result.unresolved += sw.tokens_from == "unresolved"
            _insert(ledger, "swaps", rows)
            result.swaps += len(swaps)
        ledger.con.execute("COMMIT")
    except BaseException:
        ledger.con.execute("ROLLBACK")
        raise
    result.pools = len(pools)
    return result


def load_swaps(ledger: Ledger, chain: str | None = None) -> list[dict[str, Any]]:
    """Stored swaps as dicts (amounts exact ints; an overflow amount as int too), in chain order."""
    ensure_schema(ledger)
    where, params = ("WHERE chain = ?", [chain]) if chain is not None else ("", [])
    cur = ledger.con.execute(
        f"""SELECT *, CAST(epoch(block_timestamp) AS BIGINT) AS block_time FROM "{SCHEMA}".swaps {where}
            ORDER BY chain, block_number, transaction_index, log_index""", params)
    names = [d[0] for d in cur.description]
    out = []
    for r in cur.fetchall():
        row = dict(zip(names, r, strict=True))
        for col in ("amount_in", "amount_out"):
            over = row.pop(f"{col}_overflow")
            row[col] = int(over) if over is not None else row[col]
        row["block_timestamp"] = row.pop("block_time")
        out.append(row)
    return out


# -- conversion edges for the trace engine -------------------------------------------------
class ConversionEdge(NamedTuple):
    """``from_address`` paid ``amount_in`` of ``token_in`` into a pool in ``transaction_hash``;
    ``to_address`` received ``amount_out`` of ``token_out`` for it."""

    transaction_hash: str
    from_address: str
    token_in: str
    amount_in: int
    to_address: str
    token_out: str
    amount_out: int


def swap_conversion_edges(swaps: Iterable[Swap | Mapping[str, Any]]) -> Iterator[ConversionEdge]:
    """Pure: swaps (``Swap`` objects or :func:`load_swaps` rows) -> conversion edges,
    in the order given. Swaps with unresolved tokens, no trader/recipient or an
    amount beyond HUGEINT stored as NULL are skipped (they convert nothing that
    can be followed; the trace reports them from ``flows.swaps``).

    Multi-hop routes chain: a hop's ``to_address`` is where the next hop's
    ``from_address`` is. Through a V3 router both are the router. Through V2
    pairs the first pair pays the second directly (``to`` = next pair), so the
    ``Transfer`` into the second pair comes from the first pair; when an earlier
    swap of the same transaction delivered ``token_in`` to this swap's pool,
    the edge starts at that pool (where the earlier edge left the value), not at
    the first pair.
    """
    delivered: dict[tuple[str, str], str] = {}  # (tx, recipient) -> token a swap delivered there
    for sw in swaps:
        row = vars(sw) if isinstance(sw, Swap) else sw
        tx, frm, to = row.get("transaction_hash"), row.get("trader"), row.get("recipient")
        t_in, t_out, pool = row.get("token_in"), row.get("token_out"), row.get("pool")
        a_in, a_out = row.get("amount_in"), row.get("amount_out")
        if a_in is None or a_out is None or None in (tx, frm, to, t_in, t_out) or not a_in:
            continue
        if pool is not None and delivered.get((str(tx), str(pool))) == t_in:
            frm = pool
        delivered[(str(tx), str(to))] = str(t_out)
        yield ConversionEdge(str(tx), str(frm), str(t_in), int(a_in), str(to), str(t_out), int(a_out))


def convert_amount(tainted_in: int, amount_in: int, amount_out: int) -> int:
    """Taint in ``token_in`` -> taint in ``token_out`` in proportion, floor (exact ints):
    the remainder is the share a trace reports as rounding, never created value."""
    if amount_in <= 0 or tainted_in <= 0:
        return 0
    return min(tainted_in, amount_in) * amount_out // amount_in


# -- bridges -------------------------------------------------------------------------------
@dataclass
class BridgeResult:
    bridge: str
    src_chain: str
    dst_chain: str
    matched: int = 0
    unmatched: int = 0
    by_key: dict[str, int] = field(default_factory=dict)
    matches: list[BridgeMatch] = field(default_factory=list)
    # emitters of the source event that the tag store does not call a bridge
    untagged_contracts: list[str] = field(default_factory=list)


# tag categories (GraphSense taxonomy, see chainsleuth.tags.taxonomy) that mark a bridge
BRIDGE_CATEGORIES = frozenset({"defi_bridge", "bridge"})


def _bridge_contracts(ledger: Ledger, currency: str, contracts: Iterable[str]) -> set[str]:
    from ..tags import tags_for_addresses

    return {str(t["address"]).lower() for t in tags_for_addresses(ledger, currency, contracts)
            if t.get("category") in BRIDGE_CATEGORIES}


def _native(ledger: Ledger, chain: str) -> str:
    for c in ledger.chains():
        if c["name"] == chain:
            return str(c["native_asset"])
    ledger.family(chain)  # raises the clear unknown-chain error
    raise AssertionError("unreachable")


def match_bridges(
    ledger: Ledger, src_chain: str, dst_chain: str, *, bridge: str | BridgeDefinition = "heist_lab_btc",
    contracts: Iterable[str] | None = None, rate: tuple[int, int] | None = None,
    fee_bps: int | None = None, fee_abs: int | None = None, window_s: int | None = None,
    require_tag: bool = False,
) -> BridgeResult:
    """Match a bridge's locks on ``src_chain`` to its payouts on ``dst_chain`` and store
    every lock in ``flows.bridge_transfers`` (unmatched ones with no destination).

    ``bridge`` is a registered name (:data:`chainsleuth.flows.decoders.BRIDGES`)
    or a definition; the keyword terms override the definition's. The source
    event's emitters are checked against the tag store: those not tagged as a
    bridge (category ``defi_bridge``) are listed in ``untagged_contracts``, and
    with ``require_tag`` their events are ignored. Rows of this
    (bridge, src_chain, dst_chain) are replaced in one transaction.
    """
    if isinstance(bridge, str):
        if bridge not in BRIDGES:
            raise ConfigError(f"unknown bridge {bridge!r} (known: {', '.join(sorted(BRIDGES))})")
        definition = BRIDGES[bridge]
    else:
        definition = bridge
    if rate is not None and (rate[1] <= 0 or rate[0] <= 0):
        raise ConfigError(f"bridge rate must be two positive integers, not {rate}")
    definition = definition.with_terms(
        rate=rate, fee_bps=fee_bps, fee_abs=fee_abs, window_s=window_s,
        contracts=frozenset(c.lower() for c in contracts) if contracts is not None else None)
    for side, chain in ((definition.src, src_chain), (definition.dst, dst_chain)):
        if ledger.family(chain) != side.family:
            raise ConfigError(f"bridge {definition.name!r} reads a {side.family} chain there, "
                              f"but {chain!r} is {ledger.family(chain)}")
    src_asset = definition.src_asset or _native(ledger, src_chain)
    dst_asset = definition.dst_asset or _native(ledger, dst_chain)
    src_legs = definition.src.legs(ledger, src_chain, src_asset, [], definition.contracts, (0, 0))
    emitters = sorted({leg.contract for leg in src_legs if leg.contract})
    tagged = _bridge_contracts(ledger, _native(ledger, src_chain), emitters) if emitters else set()
    untagged = [c for c in emitters if c not in tagged]
    if require_tag:
        src_legs = [leg for leg in src_legs if leg.contract in tagged]
    times = [leg.block_timestamp for leg in src_legs if leg.block_timestamp is not None]
    window = ((min(times) - definition.skew_s, max(times) + definition.window_s) if times else (0, 0))
    dst_legs = definition.dst.legs(ledger, dst_chain, dst_asset, src_legs, None, window) if src_legs else []
    matches = match_legs(src_legs, dst_legs, definition)
    result = BridgeResult(definition.name, src_chain, dst_chain, matches=matches,
                          untagged_contracts=untagged)
    rows = []
    for m in matches:
        d: BridgeLeg | None = m.dst
        src_amount, src_over = split_amount(m.src.amount)
        dst_amount, dst_over = split_amount(d.amount if d is not None else None)
        rows.append({
            "bridge": definition.name, "src_chain": src_chain,
            "src_transaction_hash": m.src.transaction_hash, "src_address": m.src.address,
            "src_asset": m.src.asset, "src_amount": src_amount, "dst_chain": dst_chain,
            "dst_transaction_hash": d.transaction_hash if d else None,
            "dst_address": d.address if d else None, "dst_asset": d.asset if d else None,
            "dst_amount": dst_amount, "match_key": m.match_key, "confidence": m.confidence,
            "src_position": m.src.position, "src_block_timestamp": m.src.block_timestamp,
            "src_deposit_id": m.src.deposit_id, "src_recipient": m.src.recipient,
            "dst_position": d.position if d else None,
            "dst_block_timestamp": d.block_timestamp if d else None,
            "src_amount_overflow": src_over, "dst_amount_overflow": dst_over,
        })
        key = m.match_key.split(":", 1)[0]
        result.by_key[key] = result.by_key.get(key, 0) + 1
        if d is None:
            result.unmatched += 1
        else:
            result.matched += 1
    ensure_schema(ledger)
    ledger.con.execute("BEGIN TRANSACTION")
    try:
        ledger.con.execute(
            f'DELETE FROM "{SCHEMA}".bridge_transfers WHERE bridge = ? AND src_chain = ? AND dst_chain = ?',
            [definition.name, src_chain, dst_chain])
        _insert(ledger, "bridge_transfers", rows)
        ledger.con.execute("COMMIT")
    except BaseException:
        ledger.con.execute("ROLLBACK")
        raise
    return result


class BridgeEdge(NamedTuple):
    """Value left ``src_address`` on ``src_chain`` and arrived at ``dst_address`` on
    ``dst_chain``; on a UTXO destination the coin is ``(dst_transaction_hash, dst_position)``."""

    bridge: str
    src_chain: str
    src_transaction_hash: str
    src_address: str
    src_asset: str
    src_amount: int
    dst_chain: str
    dst_transaction_hash: str
    dst_position: int
    dst_address: str | None
    dst_asset: str
    dst_amount: int
    confidence: float


def bridge_edges(ledger: Ledger, *, min_confidence: float = 0.0) -> list[BridgeEdge]:
    """Matched bridge hops of at least ``min_confidence``, in source time order."""
    ensure_schema(ledger)
    rows = ledger.con.execute(
        f"""SELECT bridge, src_chain, src_transaction_hash, src_address, src_asset,
                   coalesce(CAST(src_amount AS VARCHAR), src_amount_overflow), dst_chain,
                   dst_transaction_hash, dst_position, dst_address, dst_asset,
                   coalesce(CAST(dst_amount AS VARCHAR), dst_amount_overflow), confidence
            FROM "{SCHEMA}".bridge_transfers
            WHERE dst_transaction_hash IS NOT NULL AND confidence >= ?
            ORDER BY src_block_timestamp, src_transaction_hash, src_position""",
        [min_confidence]).fetchall()
    return [BridgeEdge(r[0], r[1], r[2], r[3], r[4], int(r[5]), r[6], r[7], int(r[8]), r[9], r[10],
                       int(r[11]), float(r[12])) for r in rows]


# -- writing -------------------------------------------------------------------------------
def _insert(ledger: Ledger, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows -> ``flows.<table>``; amounts go through text so that any HUGEINT is exact."""
    if not rows:
        return
    columns = TABLES[table]
    data: dict[str, pa.Array] = {}
    exprs = []
    for name, typ in columns:
        values = [r.get(name) for r in rows]
        target = typ.split()[0]
        if target == "HUGEINT":
            data[name] = pa.array([None if v is None else str(v) for v in values], pa.string())
            exprs.append(f'CAST("{name}" AS HUGEINT) AS "{name}"')
        elif target == "TIMESTAMP":
            data[name] = pa.array(values, pa.int64())
            exprs.append(f'make_timestamp(CAST("{name}" AS BIGINT) * 1000000) AS "{name}"')
        elif target in ("BIGINT",):
            data[name] = pa.array(values, pa.int64())
            exprs.append(f'"{name}"')
        elif target == "DOUBLE":
            data[name] = pa.array(values, pa.float64())
            exprs.append(f'"{name}"')
        else:
            data[name] = pa.array(values, pa.string())
            exprs.append(f'"{name}"')
    view = f"_cs_flows_{table}"
    ledger.con.register(view, pa.table(data))
    try:
        ledger.con.execute(
            f'INSERT INTO "{SCHEMA}"."{table}" BY NAME SELECT {", ".join(exprs)} FROM {view}')
    finally:
        ledger.con.unregister(view)
