"""Exposure: how much of every address's (and entity's) value came from, or went to, each
risk category, directly (counterparty, 1 hop) or indirectly (through unlabelled
intermediaries, 2..N hops), incoming and outgoing, as value and as share.

The report shape is the one exchanges consume: Elliptic's *counterparty* vs *indirect*
exposure percentages and Chainalysis KYT's *direct* vs *indirect* exposure per category.

Model (documented in ``docs/flows_exposure.md``)
-----------------------------------------------
* Counterparties. Account chains: each transfer leg (native, internal, token, fee to the
  miner) is a direct edge ``from -> to`` of its asset; every (address, asset) pair is a
  node, so tokens are exposed separately. UTXO chains: a transaction pools its inputs and
  pays its outputs; output ``b`` received ``out_b * in_a / total_in`` from input ``a``
  (pro rata, the fee keeps its share), the way the taint "haircut" model pools inputs
  (Möser, Böhme, Breuker 2014; BlockSci ``getHaircutTainted``).
* Categories come from the tag store through :mod:`chainsleuth.flows.categories`; with
  clustering, an address takes the category of its entity (Chainalysis and Elliptic
  attribute at the entity level). A categorised node is a *stop*: what it sends counts
  as its category (direct for its counterparty), never as its own sources. Unlabelled
  nodes pass value through.
* Incoming (source of funds), one forward sweep in time order: a node's composition is
  the value-weighted mix, by category and hop count, of everything it received so far
  (haircut over its received history). What it sends carries that composition one hop
  further. Hop 1 = direct; hops 2..N = indirect; beyond N hops the value is not
  attributed.
* Outgoing (destination of funds), the mirror: one backward sweep in reverse time order;
  a node's composition is the mix of everything it sends later.
* Values: direct values are exact integers (sums of ledger amounts on account chains;
  floor of the exact pro rata share ``out_b * category_inputs // total_in`` on UTXO
  chains). Indirect values are haircut estimates computed in float64 and rounded down to
  integer base units. Shares are fractions of the node's total incoming (outgoing) value.
  Legs whose amount overflows HUGEINT are left untraced and counted in the run record.

One read of the ledger feeds both sweeps (``build_exposure``); results are stored in
``flows.exposure`` / ``flows.exposure_totals`` / ``flows.entity_exposure`` with an index
on ``(chain, address)`` so :func:`exposure_of` is a point lookup.
"""

from __future__ import annotations

import json
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numba as nb
import numpy as np
import pyarrow as pa
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..errors import ConfigError, StoreError
from ..store import Ledger
from ..tags.normalize import normalize_address
from .categories import CATEGORIES, CATEGORY_NAMES, RISK_CATEGORIES, mapping_sql_values

SCHEMA = "flows"
DEFAULT_HOPS = 4
# Token currencies whose 0x addresses are Ethereum-network accounts (as in tags.query).
_ETH_NETWORK = ("ETH", "USDT", "USDC", "DAI", "WETH")

DDL = [
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.exposure (
        chain VARCHAR NOT NULL, address VARCHAR NOT NULL, asset VARCHAR NOT NULL,
        direction VARCHAR NOT NULL, category VARCHAR NOT NULL,
        direct_value HUGEINT NOT NULL, indirect_value HUGEINT NOT NULL,
        direct_share DOUBLE NOT NULL, indirect_share DOUBLE NOT NULL,
        total_value HUGEINT NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.exposure_totals (
        chain VARCHAR NOT NULL, address VARCHAR NOT NULL, asset VARCHAR NOT NULL,
        category VARCHAR, total_in HUGEINT NOT NULL, total_out HUGEINT NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.entity_exposure (
        chain VARCHAR NOT NULL, cluster_id BIGINT NOT NULL, asset VARCHAR NOT NULL,
        direction VARCHAR NOT NULL, category VARCHAR NOT NULL,
        direct_value HUGEINT NOT NULL, indirect_value HUGEINT NOT NULL,
        direct_share DOUBLE NOT NULL, indirect_share DOUBLE NOT NULL,
        total_value HUGEINT NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.exposure_runs (
        chain VARCHAR NOT NULL, hops INTEGER NOT NULL, min_confidence INTEGER NOT NULL,
        built_at TIMESTAMP DEFAULT current_timestamp, legs BIGINT, events BIGINT,
        nodes BIGINT, labelled_nodes BIGINT, untraced_legs BIGINT, untraced_overflow JSON,
        seconds DOUBLE, kernel_seconds DOUBLE)""",
    # Single-column ART indexes: DuckDB 1.4 uses an index for a lone `col = ?` filter but
    # not for `chain = ? AND address = ?` (a 2M-row table: 0.45 ms vs 14 ms per lookup), so
    # lookups filter on the indexed column only and check the chain in Python.
    f"CREATE INDEX IF NOT EXISTS exposure_address ON {SCHEMA}.exposure (address)",
    f"CREATE INDEX IF NOT EXISTS exposure_totals_address ON {SCHEMA}.exposure_totals (address)",
    f"CREATE INDEX IF NOT EXISTS entity_exposure_cluster ON {SCHEMA}.entity_exposure (cluster_id)",
]


def ensure_exposure_schema(ledger: Ledger) -> None:
    for stmt in DDL:
        ledger.con.execute(stmt)


# ---------------------------------------------------------------------------------------
# The compiled sweep
# ---------------------------------------------------------------------------------------
@nb.njit(cache=True, nogil=True, fastmath=True)
def exposure_sweep(
    src_ptr: np.ndarray, src_node: np.ndarray, src_amt: np.ndarray,
    dst_ptr: np.ndarray, dst_node: np.ndarray, dst_amt: np.ndarray,
    node_cat: np.ndarray, hops: int, n_cat: int, reverse: bool, received: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """One sweep over the events (transactions on UTXO chains, legs on account chains).

    Event ``e`` takes ``src_amt[src_ptr[e]:src_ptr[e+1]]`` from its source nodes and pays
    ``dst_amt[dst_ptr[e]:dst_ptr[e+1]]`` to its destination nodes (node -1: no address).

    Forward (``reverse=False``, incoming exposure): events in time order. The sources
    ("far" side) fill a pool, by hop and category: a categorised source contributes its
    amount at hop 1 under its own category (a stop); an unlabelled source ``m`` passes on
    the share ``f = v / max(balance[m], v)`` of the attributed value in its balance, one hop
    further, and its balance and attributed value shrink by that share (haircut on the
    balance: value is never created). The destinations ("near" side) get the pool pro rata
    ``dst_amt / total_src`` (a fee keeps its share).

    Backward (``reverse=True``, outgoing exposure): the mirror in reverse time order. The
    "balance" of a node is what it sends later and not yet matched to a receipt; a receipt
    of ``v`` takes the share ``v / max(balance, received)`` of it, where ``received`` is what
    the node received up to and including this event (from the forward sweep), so a
    node's later outflow is matched to its receipts in proportion to their value.

    Returns ``expo[node, 0|1, category]`` (direct, indirect value) and ``total[node]`` (its
    total incoming, resp. outgoing, value).
    """
    n_nodes = node_cat.shape[0]
    # One row per node, so a node's whole state is a few adjacent cache lines (the sweep is
    # bound by random memory access): balance, total, received-left, live flag, then the
    # attributed value held per (hop, category), then exposure per (direct|indirect, category).
    held0 = 4
    expo0 = held0 + hops * n_cat
    width = expo0 + 2 * n_cat
    st = np.zeros((n_nodes, width))
    if reverse:
        st[:, 2] = received
    pool = np.zeros(hops * n_cat)
    n_events = src_ptr.shape[0] - 1
    if reverse:
        far_ptr, far_node, far_amt = dst_ptr, dst_node, dst_amt
        near_ptr, near_node, near_amt = src_ptr, src_node, src_amt
    else:
        far_ptr, far_node, far_amt = src_ptr, src_node, src_amt
        near_ptr, near_node, near_amt = dst_ptr, dst_node, dst_amt
    inner = (hops - 1) * n_cat
    for step in range(n_events):
        e = n_events - 1 - step if reverse else step
        tin = 0.0
        for i in range(src_ptr[e], src_ptr[e + 1]):
            tin += src_amt[i]
        any_pool = False
        for i in range(far_ptr[e], far_ptr[e + 1]):
            m = far_node[i]
            if m < 0:
                continue
            v = far_amt[i]
            k = node_cat[m]
            if k >= 0:
                if not any_pool:
                    pool[:] = 0.0
                    any_pool = True
                pool[k] += v
                continue
            row = st[m]
            denom = max(row[0], v)
            if reverse:
                denom = max(row[0], row[2])
                row[2] -= v
            if denom <= 0.0:
                continue
            f = min(v / denom, 1.0)
            keep = 1.0 - f
            row[0] *= keep
            if row[3] != 0.0:
                if not any_pool:
                    pool[:] = 0.0
                    any_pool = True
                # hop d of the sender's balance is hop d + 1 for the receiver
                for j in range(inner):
                    x = row[held0 + j]
                    pool[n_cat + j] += f * x
                    row[held0 + j] = x * keep
                for j in range(inner, inner + n_cat):
                    row[held0 + j] *= keep  # beyond the hop limit: dropped
        if tin <= 0.0:
            any_pool = False
        for i in range(near_ptr[e], near_ptr[e + 1]):
            n = near_node[i]
            if n < 0:
                continue
            a = near_amt[i]
            row = st[n]
            if any_pool:
                w = a / tin
                for j in range(hops * n_cat):
                    row[held0 + j] += w * pool[j]
                for c in range(n_cat):
                    row[expo0 + c] += w * pool[c]
                for d in range(1, hops):
                    for c in range(n_cat):
                        row[expo0 + n_cat + c] += w * pool[d * n_cat + c]
                row[3] = 1.0
            row[0] += a
            row[1] += a
    expo = st[:, expo0:].copy().reshape(n_nodes, 2, n_cat)
    return expo, st[:, 1].copy()


@intrinsic
def _prefetch(typingctx: Any, arr: Any, row: Any, col: Any) -> Any:
    """``llvm.prefetch`` of ``&arr[row, col]`` for writing: the sweep's rows are visited in
    an order known ahead (the event arrays), so their cache lines can be requested a few
    events early instead of stalling on each miss."""
    sig = types.void(arr, row, col)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1], args[2]])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # rw = 1 (write), locality = 3 (keep in all cache levels), cache type = 1 (data)
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 1), ir.Constant(i32, 3),
                          ir.Constant(i32, 1)])  # fmt: skip
        return context.get_dummy_value()

    return sig, codegen


# Row layout of the account-chain sweep (64-byte aligned rows of a multiple of 8 doubles,
# so a row is whole cache lines): balance, total, received-left, live flag, the attributed
# value held per (hop 1..N-1, category), the indirect exposure per category. Hop N is not
# held (it would only be dropped when sent on) and direct exposure goes straight to the
# output array (only legs from categorised senders add to it).
_EDGE_HELD0 = 4
_PREFETCH_AHEAD = 12  # events; about the number of row misses a core keeps in flight


def _edge_width(hops: int, n_cat: int) -> int:
    return -(-(_EDGE_HELD0 + hops * n_cat) // 8) * 8


def _aligned_zeros(n_rows: int, width: int) -> np.ndarray:
    buf = np.zeros(n_rows * width + 8)
    off = (-buf.ctypes.data % 64) // 8
    return buf[off : off + n_rows * width].reshape(n_rows, width)


@nb.njit(cache=True, nogil=True, fastmath=True)
def _edges_kernel(
    st: np.ndarray, src: np.ndarray, dst: np.ndarray, amt: np.ndarray, node_cat: np.ndarray,
    hops: int, n_cat: int, reverse: bool, expo: np.ndarray,
) -> None:  # fmt: skip
    held0 = _EDGE_HELD0
    n_held = (hops - 1) * n_cat
    expo0 = held0 + n_held
    width = st.shape[1]
    n_events = src.shape[0]
    for step in range(n_events):
        e = n_events - 1 - step if reverse else step
        ahead = e - _PREFETCH_AHEAD if reverse else e + _PREFETCH_AHEAD
        if 0 <= ahead < n_events:
            for m in (src[ahead], dst[ahead]):
                if m >= 0:
                    for j in range(0, width, 8):
                        _prefetch(st, m, j)  # type: ignore[call-arg]
        far, near = (dst[e], src[e]) if reverse else (src[e], dst[e])
        v = amt[e]
        if far >= 0 and near >= 0:
            k = node_cat[far]
            if k >= 0:
                if hops > 1:
                    st[near, held0 + k] += v
                st[near, 3] = 1.0
                expo[near, 0, k] += v  # direct, kept out of the rows (rare, no need to cache)
            else:
                denom = max(st[far, 0], v)
                if reverse:
                    denom = max(st[far, 0], st[far, 2])
                    st[far, 2] -= v
                if denom > 0.0:
                    f = min(v / denom, 1.0)
                    keep = 1.0 - f
                    st[far, 0] *= keep
                    if st[far, 3] != 0.0:
                        # from the top hop down, so a self-transfer never re-moves value;
                        # hop N-1 moves to hop N: indirect exposure only, not held
                        for d in range(hops - 2, -1, -1):
                            base = held0 + d * n_cat
                            for c in range(n_cat):
                                x = st[far, base + c]
                                moved = f * x
                                st[far, base + c] = x - moved
                                if d < hops - 2:
                                    st[near, base + n_cat + c] += moved
                                st[near, expo0 + c] += moved
                        st[near, 3] = 1.0
        elif far >= 0 and node_cat[far] < 0:  # the value leaves (burn) or comes from nowhere
            denom = max(st[far, 0], v)
            if reverse:
                denom = max(st[far, 0], st[far, 2])
                st[far, 2] -= v
            if denom > 0.0:
                keep = 1.0 - min(v / denom, 1.0)
                st[far, 0] *= keep
                for j in range(held0, expo0):
                    st[far, j] *= keep
        if near >= 0:
            st[near, 0] += v
            st[near, 1] += v


@nb.njit(cache=True, nogil=True)
def _edges_finish(st: np.ndarray, expo0: int, expo: np.ndarray, total: np.ndarray) -> None:
    """Copy the indirect exposure and the totals out of the state rows."""
    n_cat = expo.shape[2]
    for i in range(st.shape[0]):
        total[i] = st[i, 1]
        for c in range(n_cat):
            expo[i, 1, c] = st[i, expo0 + c]


def exposure_sweep_edges(
    src: np.ndarray, dst: np.ndarray, amt: np.ndarray, node_cat: np.ndarray,
    hops: int, n_cat: int, reverse: bool, received: np.ndarray,
    state: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """:func:`exposure_sweep` for events of one source and one destination (account
    chains), moving value row to row without the pool: same results, less work per leg.

    ``state``: a reusable ``_aligned_zeros(n_nodes, _edge_width(hops, n_cat))`` buffer
    (zeroed here), so the second sweep does not fault in fresh pages again.
    """
    n_nodes = node_cat.shape[0]
    width = _edge_width(hops, n_cat)
    if state is None or state.shape != (n_nodes, width):
        st = _aligned_zeros(n_nodes, width)
    else:
        st = state
        st.fill(0.0)
    if reverse:
        st[:, 2] = received
    expo = np.zeros((n_nodes, 2, n_cat))
    _edges_kernel(st, src, dst, amt, node_cat, hops, n_cat, reverse, expo)
    total = np.empty(n_nodes)
    _edges_finish(st, _EDGE_HELD0 + (hops - 1) * n_cat, expo, total)
    return expo, total


# ---------------------------------------------------------------------------------------
# Loading from the ledger
# ---------------------------------------------------------------------------------------
@dataclass
class ExposureRun:
    chain: str
    hops: int
    legs: int
    events: int
    nodes: int
    labelled_nodes: int
    untraced_legs: int
    untraced_overflow: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    kernel_seconds: float = 0.0
    exposure_rows: int = 0
    entity_rows: int = 0


def _native_asset(ledger: Ledger, chain: str) -> str:
    for c in ledger.chains():
        if c["name"] == chain:
            return str(c["native_asset"])
    ledger.family(chain)  # raises StoreError naming the known chains
    raise AssertionError


def _build_category_map(ledger: Ledger, chain: str, min_confidence: int) -> int:
    """Temp table ``_xp_cat(address, cat)``: each labelled address's category index."""
    con = ledger.con
    con.execute("CREATE OR REPLACE TEMP TABLE _xp_cat (address VARCHAR, cat INTEGER)")
    if not ledger.has_table("tags", "tags"):
        return 0
    currency = _native_asset(ledger, chain).upper()
    currencies = list(_ETH_NETWORK) if currency == "ETH" else [currency]
    ph = ",".join("?" * len(currencies))
    tagged = f"""
        SELECT t.address, min(m.cat) AS cat
        FROM (SELECT address, unnest(list_concat([category, abuse], coalesce(concepts, []))) AS concept
              FROM tags.tags WHERE currency IN ({ph}) AND confidence_level >= ?) t
        JOIN (VALUES {mapping_sql_values()}) m(concept, cat) ON m.concept = t.concept
        GROUP BY t.address"""
    if ledger.has_table("entities", "address_clusters"):
        # the entity's category (highest priority among its addresses) goes to all of them
        con.execute(
            f"""INSERT INTO _xp_cat
            WITH tagged AS ({tagged}),
            clustered AS (SELECT ac.cluster_id, min(tg.cat) AS cat FROM tagged tg
                          JOIN entities.address_clusters ac ON ac.chain = ? AND ac.address = tg.address
                          GROUP BY ac.cluster_id)
            SELECT ac.address, cl.cat FROM clustered cl
            JOIN entities.address_clusters ac ON ac.chain = ? AND ac.cluster_id = cl.cluster_id
            UNION ALL
            SELECT tg.address, tg.cat FROM tagged tg WHERE NOT EXISTS (
                SELECT 1 FROM entities.address_clusters ac WHERE ac.chain = ? AND ac.address = tg.address)""",
            [*currencies, min_confidence, chain, chain, chain],
        )
    else:
        con.execute(f"INSERT INTO _xp_cat {tagged}", [*currencies, min_confidence])
    row = con.execute("SELECT count(*) FROM _xp_cat").fetchone()
    return int(row[0]) if row else 0


@dataclass
class ExposureInput:
    """Event arrays for :func:`exposure_sweep`, plus the node table."""

    src_ptr: np.ndarray
    src_node: np.ndarray
    src_amt: np.ndarray
    dst_ptr: np.ndarray
    dst_node: np.ndarray
    dst_amt: np.ndarray
    node_cat: np.ndarray
    legs: int


def _np(table: pa.Table, name: str, dtype: Any) -> np.ndarray:
    return np.ascontiguousarray(table.column(name).to_numpy(zero_copy_only=False), dtype=dtype)


# Node ids follow first appearance: nodes active at the same time sit in nearby rows of the
# sweep's state, which is what keeps a memory-bound sweep fast on real ledgers.
def _load_account(ledger: Ledger, chain: str) -> ExposureInput:
    con = ledger.con
    s = f'"{chain}"'
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _xp_legs AS
        SELECT row_number() OVER (ORDER BY block_number, transaction_index,
                   CASE kind WHEN 'reward' THEN -1 WHEN 'native' THEN 0 WHEN 'internal' THEN 1
                             WHEN 'token' THEN 2 ELSE 3 END, position) - 1 AS seq,
               transaction_hash, from_address, to_address, asset, amount, amount_overflow
        FROM {s}.transfers"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _xp_nodes AS
        SELECT a.address, a.asset, row_number() OVER (ORDER BY a.first, a.address, a.asset) - 1 AS node,
               coalesce(c.cat, -1) AS cat
        FROM (SELECT address, asset, min(seq) AS first FROM (
                SELECT from_address AS address, asset, seq FROM _xp_legs WHERE from_address IS NOT NULL
                UNION ALL SELECT to_address, asset, seq FROM _xp_legs WHERE to_address IS NOT NULL)
              GROUP BY ALL) a
        LEFT JOIN _xp_cat c ON c.address = a.address"""
    )
    legs = con.sql(
        """SELECT coalesce(f.node, -1) AS src, coalesce(t.node, -1) AS dst,
                  CAST(l.amount AS DOUBLE) AS amt
        FROM _xp_legs l
        LEFT JOIN _xp_nodes f ON f.address = l.from_address AND f.asset = l.asset
        LEFT JOIN _xp_nodes t ON t.address = l.to_address AND t.asset = l.asset
        WHERE l.amount IS NOT NULL ORDER BY l.seq"""
    ).to_arrow_table()
    nodes = con.sql("SELECT cat FROM _xp_nodes ORDER BY node").to_arrow_table()
    n = legs.num_rows
    ptr = np.arange(n + 1, dtype=np.int64)
    amt = _np(legs, "amt", np.float64)
    return ExposureInput(ptr, _np(legs, "src", np.int64), amt, ptr, _np(legs, "dst", np.int64),
                         amt, _np(nodes, "cat", np.int32), n)  # fmt: skip


def _load_utxo(ledger: Ledger, chain: str, asset: str) -> ExposureInput:
    con = ledger.con
    s = f'"{chain}"'
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _xp_legs AS
        SELECT tr.transaction_hash, tr.kind, tr.position, tr.from_address, tr.to_address,
               tr.asset, tr.amount, tr.amount_overflow,
               dense_rank() OVER (ORDER BY tr.block_number, coalesce(tx."index", 0),
                                  tr.transaction_hash) - 1 AS seq
        FROM {s}.transfers tr LEFT JOIN {s}.transactions tx ON tx.hash = tr.transaction_hash
        WHERE tr.kind IN ('input', 'output')"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _xp_nodes AS
        SELECT a.address, ? AS asset, row_number() OVER (ORDER BY a.first, a.address) - 1 AS node,
               coalesce(c.cat, -1) AS cat
        FROM (SELECT coalesce(from_address, to_address) AS address, min(seq) AS first FROM _xp_legs
              WHERE coalesce(from_address, to_address) IS NOT NULL GROUP BY 1) a
        LEFT JOIN _xp_cat c ON c.address = a.address""",
        [asset],
    )
    row = con.execute("SELECT coalesce(max(seq) + 1, 0) FROM _xp_legs").fetchone()
    n_events = int(row[0]) if row else 0

    def side(kind: str, col: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = con.sql(
            f"""SELECT l.seq, coalesce(n.node, -1) AS node, CAST(l.amount AS DOUBLE) AS amt
            FROM _xp_legs l LEFT JOIN _xp_nodes n ON n.address = l.{col}
            WHERE l.kind = '{kind}' AND l.amount IS NOT NULL ORDER BY l.seq, l.position"""
        ).to_arrow_table()
        seq = _np(t, "seq", np.int64)
        ptr = np.zeros(n_events + 1, dtype=np.int64)
        np.cumsum(np.bincount(seq, minlength=n_events), out=ptr[1:])
        return ptr, _np(t, "node", np.int64), _np(t, "amt", np.float64)

    sp, sn, sa = side("input", "from_address")
    dp, dn, da = side("output", "to_address")
    nodes = con.sql("SELECT cat FROM _xp_nodes ORDER BY node").to_arrow_table()
    return ExposureInput(sp, sn, sa, dp, dn, da, _np(nodes, "cat", np.int32), len(sn) + len(dn))


# ---------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------
def _kernel_rows(expo: np.ndarray, present: np.ndarray, direction: str) -> pa.Table:
    """Non-zero (node, category, indirect value) of one sweep; direct values come exact from SQL."""
    node, col = np.nonzero((expo[:, 0, :] > 0.0) | (expo[:, 1, :] > 0.0))
    # indirect values are haircut estimates: rounded to the nearest base unit
    vals = np.rint(expo[node, 1, col])
    return pa.table({
        "node": pa.array(node.astype(np.int64)), "cat": pa.array(present[col].astype(np.int32)),
        "direction": pa.array(np.full(len(node), direction)),
        "indirect": pa.array(vals),
    })  # fmt: skip


@nb.njit(cache=True, nogil=True)
def _one_leg_each(
    src_ptr: np.ndarray, dst_ptr: np.ndarray, src_amt: np.ndarray, dst_amt: np.ndarray
) -> bool:
    """Every event has one source and one destination leg of the same amount (one pass,
    stops at the first difference; NumPy's diff + array_equal took 1 s on 50M events)."""
    if src_ptr.shape[0] != dst_ptr.shape[0] or src_amt.shape[0] != dst_amt.shape[0]:
        return False
    for i in range(src_ptr.shape[0]):
        if src_ptr[i] != i or dst_ptr[i] != i:
            return False
    for i in range(src_amt.shape[0]):  # noqa: SIM110 (no generators in nopython mode)
        if src_amt[i] != dst_amt[i]:
            return False
    return True


def run_sweeps(
    data: ExposureInput, hops: int, *, general: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Both sweeps over the same arrays, categories compacted to those present.

    Returns (present category indices, incoming expo, incoming totals, outgoing expo,
    outgoing totals); expo arrays are ``[node, direct|indirect, compact category]``.
    """
    present = np.unique(data.node_cat[data.node_cat >= 0]).astype(np.int32)
    compact = np.full(len(CATEGORIES), -1, np.int32)
    compact[present] = np.arange(len(present), dtype=np.int32)
    node_cat = np.where(data.node_cat >= 0, compact[np.maximum(data.node_cat, 0)], -1).astype(
        np.int32
    )
    n_events = len(data.src_ptr) - 1
    one_to_one = len(data.src_node) == n_events == len(data.dst_node) and _one_leg_each(
        data.src_ptr, data.dst_ptr, data.src_amt, data.dst_amt
    )
    if one_to_one and not general:  # account chains: one leg per event
        e_args = (data.src_node, data.dst_node, data.src_amt, node_cat, hops, len(present))
        state = _aligned_zeros(len(node_cat), _edge_width(hops, len(present)))
        expo_in, total_in = exposure_sweep_edges(*e_args, False, np.zeros(0), state)
        expo_out, total_out = exposure_sweep_edges(*e_args, True, total_in, state)
        return present, expo_in, total_in, expo_out, total_out
    args = (data.src_ptr, data.src_node, data.src_amt, data.dst_ptr, data.dst_node, data.dst_amt,
            node_cat, hops, len(present))  # fmt: skip
    expo_in, total_in = exposure_sweep(*args, False, np.zeros(0))
    expo_out, total_out = exposure_sweep(*args, True, total_in)
    return present, expo_in, total_in, expo_out, total_out


def build_exposure(
    ledger: Ledger,
    chain: str,
    *,
    hops: int = DEFAULT_HOPS,
    min_confidence: int = 0,
) -> ExposureRun:
    """Compute and store exposure for every address and entity of ``chain`` (replacing the last build)."""
    if hops < 1:
        raise ConfigError(f"--hops must be at least 1 (1 = direct exposure only), got {hops}")
    if not 0 <= min_confidence <= 100:
        raise ConfigError(f"--min-confidence must be 0..100, got {min_confidence}")
    t0 = time.perf_counter()
    family = ledger.family(chain)
    asset = _native_asset(ledger, chain)
    con = ledger.con
    _build_category_map(ledger, chain, min_confidence)
    data = (
        _load_account(ledger, chain) if family == "ethereum" else _load_utxo(ledger, chain, asset)
    )
    untraced = con.execute(
        "SELECT transaction_hash, amount_overflow FROM _xp_legs WHERE amount IS NULL "
        "AND amount_overflow IS NOT NULL"
    ).fetchall()
    t1 = time.perf_counter()
    present, expo_in, _, expo_out, _ = run_sweeps(data, hops)
    kernel_seconds = time.perf_counter() - t1
    kernel = pa.concat_tables(
        [_kernel_rows(expo_in, present, "in"), _kernel_rows(expo_out, present, "out")]
    )
    del expo_in, expo_out
    con.register("_xp_kernel", kernel)
    names = ", ".join(f"({i}, '{c}')" for i, c in enumerate(CATEGORY_NAMES))
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _xp_catname AS SELECT * FROM (VALUES {names}) v(cat, category)"
    )
    # exact totals and exact direct values
    if family == "ethereum":
        totals_sql = """
            SELECT address, asset, sum(tin) AS total_in, sum(tout) AS total_out FROM (
                SELECT to_address AS address, asset, amount AS tin, 0 AS tout FROM _xp_legs
                WHERE to_address IS NOT NULL AND amount IS NOT NULL
                UNION ALL
                SELECT from_address, asset, 0, amount FROM _xp_legs
                WHERE from_address IS NOT NULL AND amount IS NOT NULL) GROUP BY ALL"""
        direct_sql = """
            SELECT l.to_address AS address, l.asset, 'in' AS direction, c.cat, sum(l.amount) AS v
            FROM _xp_legs l JOIN _xp_cat c ON c.address = l.from_address
            WHERE l.to_address IS NOT NULL AND l.amount IS NOT NULL GROUP BY ALL
            UNION ALL
            SELECT l.from_address, l.asset, 'out', c.cat, sum(l.amount)
            FROM _xp_legs l JOIN _xp_cat c ON c.address = l.to_address
            WHERE l.from_address IS NOT NULL AND l.amount IS NOT NULL GROUP BY ALL"""
    else:
        totals_sql = """
            SELECT address, asset, sum(tin) AS total_in, sum(tout) AS total_out FROM (
                SELECT to_address AS address, asset, amount AS tin, 0 AS tout FROM _xp_legs
                WHERE kind = 'output' AND to_address IS NOT NULL AND amount IS NOT NULL
                UNION ALL
                SELECT from_address, asset, 0, amount FROM _xp_legs
                WHERE kind = 'input' AND from_address IS NOT NULL AND amount IS NOT NULL)
            GROUP BY ALL"""
        # pro rata: output b got floor(out_b * (inputs of category c) / all inputs)
        direct_sql = """
            WITH tin AS (SELECT seq, sum(amount) AS v FROM _xp_legs WHERE kind = 'input' GROUP BY seq),
            cin AS (SELECT l.seq, c.cat, sum(l.amount) AS v FROM _xp_legs l
                    JOIN _xp_cat c ON c.address = l.from_address WHERE l.kind = 'input' GROUP BY ALL),
            cout AS (SELECT l.seq, c.cat, sum(l.amount) AS v FROM _xp_legs l
                     JOIN _xp_cat c ON c.address = l.to_address WHERE l.kind = 'output' GROUP BY ALL)
            SELECT o.to_address AS address, o.asset, 'in' AS direction, cin.cat,
                   sum(o.amount * cin.v // tin.v) AS v
            FROM _xp_legs o JOIN cin ON cin.seq = o.seq JOIN tin ON tin.seq = o.seq
            WHERE o.kind = 'output' AND o.to_address IS NOT NULL AND tin.v > 0 GROUP BY ALL
            UNION ALL
            SELECT i.from_address, i.asset, 'out', cout.cat, sum(i.amount * cout.v // tin.v)
            FROM _xp_legs i JOIN cout ON cout.seq = i.seq JOIN tin ON tin.seq = i.seq
            WHERE i.kind = 'input' AND i.from_address IS NOT NULL AND tin.v > 0 GROUP BY ALL"""
    ensure_exposure_schema(ledger)
    con.execute("BEGIN TRANSACTION")
    try:
        for table in ("exposure", "exposure_totals", "entity_exposure", "exposure_runs"):
            con.execute(f"DELETE FROM {SCHEMA}.{table} WHERE chain = ?", [chain])
        con.execute(f"CREATE OR REPLACE TEMP TABLE _xp_totals AS {totals_sql}")
        con.execute(
            f"""INSERT INTO {SCHEMA}.exposure_totals
            SELECT ?, t.address, t.asset, cn.category, t.total_in, t.total_out
            FROM _xp_totals t LEFT JOIN _xp_cat c ON c.address = t.address
            LEFT JOIN _xp_catname cn ON cn.cat = c.cat ORDER BY t.address""",
            [chain],
        )
        con.execute(
            f"""INSERT INTO {SCHEMA}.exposure
            WITH d AS ({direct_sql}),
            k AS (SELECT n.address, n.asset, k.direction, k.cat, CAST(k.indirect AS HUGEINT) AS v
                  FROM _xp_kernel k JOIN _xp_nodes n ON n.node = k.node),
            j AS (SELECT coalesce(d.address, k.address) AS address, coalesce(d.asset, k.asset) AS asset,
                         coalesce(d.direction, k.direction) AS direction, coalesce(d.cat, k.cat) AS cat,
                         coalesce(d.v, 0) AS dv, coalesce(k.v, 0) AS iv
                  FROM d FULL JOIN k ON d.address = k.address AND d.asset = k.asset
                       AND d.direction = k.direction AND d.cat = k.cat),
            jt AS (SELECT j.*, CASE j.direction WHEN 'in' THEN t.total_in ELSE t.total_out END AS tv
                   FROM j JOIN _xp_totals t ON t.address = j.address AND t.asset = j.asset)
            SELECT ?, address, asset, direction, cn.category, dv,
                   greatest(least(iv, tv - dv), 0) AS iv,
                   CASE WHEN tv > 0 THEN CAST(dv AS DOUBLE) / CAST(tv AS DOUBLE) ELSE 0 END,
                   CASE WHEN tv > 0 THEN CAST(greatest(least(iv, tv - dv), 0) AS DOUBLE)
                        / CAST(tv AS DOUBLE) ELSE 0 END,
                   tv
            FROM jt JOIN _xp_catname cn ON cn.cat = jt.cat
            WHERE dv > 0 OR iv > 0 ORDER BY address, asset, direction, jt.cat""",
            [chain],
        )
        entity_rows = 0
        if ledger.has_table("entities", "address_clusters"):
            con.execute(
                f"""INSERT INTO {SCHEMA}.entity_exposure
                WITH tot AS (SELECT ac.cluster_id, t.asset, sum(t.total_in) AS tin, sum(t.total_out) AS tout
                             FROM {SCHEMA}.exposure_totals t JOIN entities.address_clusters ac
                               ON ac.chain = t.chain AND ac.address = t.address
                             WHERE t.chain = ? GROUP BY ALL),
                e AS (SELECT ac.cluster_id, x.asset, x.direction, x.category,
                             sum(x.direct_value) AS dv, sum(x.indirect_value) AS iv
                      FROM {SCHEMA}.exposure x JOIN entities.address_clusters ac
                        ON ac.chain = x.chain AND ac.address = x.address
                      WHERE x.chain = ? GROUP BY ALL)
                SELECT ?, e.cluster_id, e.asset, e.direction, e.category, e.dv, e.iv,
                       CAST(e.dv AS DOUBLE) / CAST(tv AS DOUBLE), CAST(e.iv AS DOUBLE) / CAST(tv AS DOUBLE), tv
                FROM (SELECT e.*, CASE e.direction WHEN 'in' THEN tot.tin ELSE tot.tout END AS tv
                      FROM e JOIN tot ON tot.cluster_id = e.cluster_id AND tot.asset = e.asset) e
                WHERE tv > 0 ORDER BY e.cluster_id""",
                [chain, chain, chain],
            )
            row = con.execute(
                f"SELECT count(*) FROM {SCHEMA}.entity_exposure WHERE chain = ?", [chain]
            ).fetchone()
            entity_rows = int(row[0]) if row else 0
        row = con.execute(
            f"SELECT count(*) FROM {SCHEMA}.exposure WHERE chain = ?", [chain]
        ).fetchone()
        exposure_rows = int(row[0]) if row else 0
        run = ExposureRun(
            chain=chain, hops=hops, legs=data.legs, events=len(data.src_ptr) - 1,
            nodes=len(data.node_cat), labelled_nodes=int((data.node_cat >= 0).sum()),
            untraced_legs=len(untraced), untraced_overflow={str(h): str(v) for h, v in untraced},
            kernel_seconds=kernel_seconds, exposure_rows=exposure_rows, entity_rows=entity_rows,
        )  # fmt: skip
        run.seconds = time.perf_counter() - t0
        con.execute(
            f"""INSERT INTO {SCHEMA}.exposure_runs (chain, hops, min_confidence, legs, events, nodes,
                labelled_nodes, untraced_legs, untraced_overflow, seconds, kernel_seconds)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [chain, hops, min_confidence, run.legs, run.events, run.nodes, run.labelled_nodes,
             run.untraced_legs, json.dumps(run.untraced_overflow), run.seconds, kernel_seconds],
        )  # fmt: skip
        con.execute("COMMIT")
        _BUILT.setdefault(ledger, {})[chain] = hops
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_xp_kernel")
    return run


# ---------------------------------------------------------------------------------------
# Lookup
# ---------------------------------------------------------------------------------------
_ROW_COLS = ("asset", "direction", "category", "direct_value", "indirect_value",
             "direct_share", "indirect_share", "total_value")  # fmt: skip


def _rows(found: list[Any]) -> list[dict[str, Any]]:
    out = []
    for r in found:
        d = dict(zip(_ROW_COLS, r, strict=True))
        d["risk"] = d["category"] in RISK_CATEGORIES
        out.append(d)
    return out


# hops of the last build per open ledger and chain: saves a query per lookup
_BUILT: weakref.WeakKeyDictionary[Ledger, dict[str, int]] = weakref.WeakKeyDictionary()


def _check_built(ledger: Ledger, chain: str) -> int:
    known = _BUILT.get(ledger, {}).get(chain)
    if known is not None:
        return known
    try:
        row = ledger.con.execute(
            f"SELECT hops FROM {SCHEMA}.exposure_runs WHERE chain = ? ORDER BY built_at DESC LIMIT 1",
            [chain],
        ).fetchone()
    except duckdb.CatalogException:  # no flows schema yet
        row = None
    if row is None:
        ledger.family(chain)  # unknown chain -> StoreError naming the known ones
        raise StoreError(
            f"no exposure built for chain {chain!r}: run `chainsleuth exposure build` first"
        )
    _BUILT.setdefault(ledger, {})[chain] = int(row[0])
    return int(row[0])


def exposure_of(ledger: Ledger, chain: str, address: str) -> dict[str, Any]:
    """Stored exposure of one address: its totals per asset and one row per
    (asset, direction, category) with direct/indirect value (int) and share (float).

    Raises :class:`StoreError` when no exposure was built for the chain and
    :class:`ConfigError` when the address never moved value on it.
    """
    hops = _check_built(ledger, chain)
    addr = address.strip()
    if ledger.family(chain) == "ethereum":
        addr = normalize_address(addr).address
    cols = ", ".join(_ROW_COLS)
    totals_found = [r[1:] for r in ledger.con.execute(
        f"SELECT chain, asset, category, total_in, total_out FROM {SCHEMA}.exposure_totals "
        "WHERE address = ?", [addr]).fetchall() if r[0] == chain]  # fmt: skip
    found = sorted(totals_found)
    if not found:
        raise ConfigError(
            f"address {address!r} has no transfers on {chain!r} (as of the last exposure build)"
        )
    rows = _rows([r[1:] for r in ledger.con.execute(
        f"SELECT chain, {cols} FROM {SCHEMA}.exposure WHERE address = ?", [addr]).fetchall()
        if r[0] == chain])  # fmt: skip
    rows.sort(key=lambda r: (r["asset"], r["direction"], CATEGORY_NAMES.index(r["category"])))
    return {
        "chain": chain, "address": addr, "hops": hops, "category": found[0][1],
        "totals": [{"asset": a, "total_in": i, "total_out": o} for a, _, i, o in found],
        "exposure": rows,
    }  # fmt: skip


def entity_exposure_of(ledger: Ledger, chain: str, cluster_id: int) -> dict[str, Any]:
    """Stored exposure of one entity (cluster): sums over its addresses, shares of its totals."""
    hops = _check_built(ledger, chain)
    rows = _rows([r[1:] for r in ledger.con.execute(
        f"SELECT chain, {', '.join(_ROW_COLS)} FROM {SCHEMA}.entity_exposure WHERE cluster_id = ?",
        [int(cluster_id)]).fetchall() if r[0] == chain])  # fmt: skip
    rows.sort(key=lambda r: (r["asset"], r["direction"], CATEGORY_NAMES.index(r["category"])))
    return {"chain": chain, "cluster_id": int(cluster_id), "hops": hops, "exposure": rows}
