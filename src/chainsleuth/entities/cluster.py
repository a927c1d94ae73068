"""Clustering runs: registry, heuristics, union-find, evidence and summaries.

:func:`cluster_chain` is incremental. Each run records the blocks it processed
(``entities.processed_blocks``) and its settings (``entities.runs``):

* no earlier run, ``full=True`` or changed settings: a full run. The chain's
  clusters, evidence, tags and summaries are rebuilt from the first block; the
  address registry is kept, so address ids and therefore cluster ids do not
  change.
* otherwise the run starts after the last processed block, loads the stored
  clusters into the union-find and applies only the new blocks' evidence.
* a reorg (a processed block whose hash changed or that is gone from the
  ledger) rolls the entity state back to the fork: evidence, tags and
  processed blocks from the fork height on are deleted, the union-find is
  rebuilt from the remaining evidence (a spanning forest of every cluster) and
  the run continues from the fork. Addresses first seen on the orphaned branch
  keep their ids (ids are never reassigned) and become singletons unless the
  new branch links them again.

Cluster ids are stable: a cluster's id is the registry id of its earliest
address, so a merge keeps the older cluster's id.

Bitcoin family: heuristics ``multi_input`` (always) plus the chosen change
heuristics, with CoinJoins tagged and (by default) excluded. Ethereum family:
``deposit_reuse`` (re-evaluated over the whole chain each run, since a deposit
address is only recognised once its sweep target has several; unions already
applied are no-ops, so only new links add evidence). Both families also rewrite
``entities.deposit_addresses`` (deposit address -> sweep target, over the whole chain)
each run: :func:`.deposit.deposit_addresses` / :func:`.deposit.utxo_deposit_addresses`.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from ..errors import ChainsleuthError, StoreError
from ..progress import NullProgress, Progress
from ..store import Ledger
from . import coinjoin as cj
from .batch import ADDRESS_TYPE_SQL, I64, Evidence, UtxoBatch
from .change import CHANGE_HEURISTICS, change_evidence
from .deposit import deposit_addresses, deposit_reuse, utxo_deposit_addresses
from .multi_input import multi_input
from .schema import SCHEMA, ensure_entities_schema, entities_schema_exists
from .unionfind import APPLIED, APPLIED_SUPER, REFUSED, UnionFind

E = SCHEMA


DEFAULT_SUPERCLUSTER_THRESHOLD = 10_000
BASE_HEURISTICS: dict[str, tuple[str, ...]] = {"bitcoin": ("multi_input",),
                                               "ethereum": ("deposit_reuse",)}


def _exec(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> None:
    """Run a statement to completion (DuckDB refuses new queries while a result is open)."""
    con.execute(sql, params or []).fetchall()


def _fetch1(result: duckdb.DuckDBPyConnection) -> Any:
    """First row or None, reading the result to the end (see :func:`_exec`)."""
    rows = result.fetchall()
    return rows[0] if rows else None


class EntityError(ChainsleuthError):
    """An address or entity that the clustering does not know."""


@dataclass
class ClusterRunResult:
    chain: str
    run_id: int
    mode: str  # full | incremental | reorg | up-to-date
    first_block: int | None
    last_block: int | None
    transactions: int = 0
    new_addresses: int = 0
    unions: int = 0
    refused_merges: int = 0
    supercluster_merges: int = 0
    transaction_tags: dict[str, int] = field(default_factory=dict)
    clusters: int = 0
    addresses: int = 0
    seconds: float = 0.0
    deposit_addresses: int = 0  # account chains: detected deposit addresses (entities.deposit_addresses)


# -- loading -------------------------------------------------------------------------


def register_addresses(ledger: Ledger, chain: str, lo: int, hi: int) -> int:
    """Give ids to addresses first seen in blocks lo..hi, in first-seen order
    (block, transaction, side, kind, position). Returns how many were new."""
    family = ledger.family(chain)
    s = f'"{chain}"'
    if family == "bitcoin":
        txi = 'tx."index"'
        join = f"LEFT JOIN {s}.transactions tx ON tx.hash = t.transaction_hash AND tx.block_number = t.block_number"
    else:
        txi, join = "t.transaction_index", ""
    row = _fetch1(ledger.con.execute(
        f"SELECT coalesce(max(address_id) + 1, 0) FROM {E}.addresses WHERE chain = ?", [chain]
    ))
    base = int(row[0]) if row else 0
    before = _fetch1(ledger.con.execute(f"SELECT count(*) FROM {E}.addresses WHERE chain = ?", [chain]))
    _exec(ledger.con,
        f"""
INSERT INTO {E}.addresses (chain, address, address_id, first_block, first_transaction_hash)
WITH legs AS (
  SELECT t.from_address AS address, t.block_number AS b, coalesce({txi}, 0) AS ti, 0 AS side,
         t.kind, t.position, t.transaction_hash AS h
  FROM {s}.transfers t {join}
  WHERE t.block_number BETWEEN ? AND ? AND t.from_address IS NOT NULL
  UNION ALL
  SELECT t.to_address, t.block_number, coalesce({txi}, 0), 1, t.kind, t.position, t.transaction_hash
  FROM {s}.transfers t {join}
  WHERE t.block_number BETWEEN ? AND ? AND t.to_address IS NOT NULL
),
firsts AS (
  SELECT * FROM legs
  QUALIFY row_number() OVER (PARTITION BY address ORDER BY b, ti, side, kind, position, h) = 1
),
new AS (
  SELECT f.* FROM firsts f
  WHERE NOT EXISTS (SELECT 1 FROM {E}.addresses e WHERE e.chain = ? AND e.address = f.address)
)
SELECT ?, address, ? + row_number() OVER (ORDER BY b, ti, side, kind, position, address) - 1, b, h
FROM new""",
        [lo, hi, lo, hi, chain, chain, base],
    )
    after = _fetch1(ledger.con.execute(f"SELECT count(*) FROM {E}.addresses WHERE chain = ?", [chain]))
    return int(after[0] if after else 0) - int(before[0] if before else 0)


def _ptr(txn: np.ndarray, n_tx: int) -> I64:
    ptr = np.zeros(n_tx + 1, np.int64)
    if txn.shape[0]:
        np.cumsum(np.bincount(txn, minlength=n_tx), out=ptr[1:])
    return ptr


def load_utxo_batch(ledger: Ledger, chain: str, lo: int, hi: int, *, prev_shape: bool = True) -> UtxoBatch:
    """Blocks lo..hi of a UTXO chain's transfers view as a :class:`UtxoBatch`
    (addresses must be registered first)."""
    s = f'"{chain}"'
    txs = ledger.query(
        f"""SELECT hash, block_number, coalesce(is_coinbase, false) AS cb
            FROM {s}.transactions WHERE block_number BETWEEN ? AND ?
            ORDER BY block_number, "index", hash""",
        [lo, hi],
    )
    n_tx = txs.num_rows
    txn_tbl = pa.table({
        "hash": txs.column("hash"),
        "block_number": txs.column("block_number"),
        "txn": pa.array(np.arange(n_tx, dtype=np.int64)),
    })
    ledger.con.register("_cs_txn", txn_tbl)
    try:
        prev_join = (f"LEFT JOIN {s}.transactions p ON p.hash = t.utxo_transaction_hash"
                     if prev_shape else "")
        prev_col = ("coalesce(p.input_count = 1 AND p.output_count = 2, false)"
                    if prev_shape else "false")
        ins = ledger.query(
            f"""SELECT x.txn, coalesce(a.address_id, -1) AS addr,
                       coalesce(CAST(t.amount AS BIGINT), -1) AS value,
                       CAST({ADDRESS_TYPE_SQL.format(a="t.from_address")} AS TINYINT) AS typ,
                       {prev_col} AS prev_peel
                FROM {s}.transfers t
                JOIN _cs_txn x ON x.hash = t.transaction_hash AND x.block_number = t.block_number
                LEFT JOIN {E}.addresses a ON a.chain = ? AND a.address = t.from_address
                {prev_join}
                WHERE t.kind = 'input' AND t.block_number BETWEEN ? AND ?
                ORDER BY x.txn, t.position""",
            [chain, lo, hi],
        )
        outs = ledger.query(
            f"""SELECT x.txn, coalesce(a.address_id, -1) AS addr,
                       coalesce(CAST(t.amount AS BIGINT), -1) AS value,
                       CAST({ADDRESS_TYPE_SQL.format(a="t.to_address")} AS TINYINT) AS typ,
                       coalesce(a.first_transaction_hash = t.transaction_hash
                                AND a.first_block = t.block_number, false) AS fresh,
                       t.position
                FROM {s}.transfers t
                JOIN _cs_txn x ON x.hash = t.transaction_hash AND x.block_number = t.block_number
                LEFT JOIN {E}.addresses a ON a.chain = ? AND a.address = t.to_address
                WHERE t.kind = 'output' AND t.block_number BETWEEN ? AND ?
                ORDER BY x.txn, t.position""",
            [chain, lo, hi],
        )
    finally:
        ledger.con.unregister("_cs_txn")

    def col(tbl: pa.Table, name: str, dtype: Any) -> Any:
        return tbl.column(name).to_numpy(zero_copy_only=False).astype(dtype, copy=False)

    in_txn = col(ins, "txn", np.int64)
    out_txn = col(outs, "txn", np.int64)
    return UtxoBatch(
        tx_hash=np.array(txs.column("hash").to_pylist(), dtype=object),
        tx_block=col(txs, "block_number", np.int64),
        tx_coinbase=col(txs, "cb", np.bool_),
        in_ptr=_ptr(in_txn, n_tx),
        in_addr=col(ins, "addr", np.int64),
        in_value=col(ins, "value", np.int64),
        in_type=col(ins, "typ", np.int8),
        in_prev_peel=col(ins, "prev_peel", np.bool_),
        out_ptr=_ptr(out_txn, n_tx),
        out_addr=col(outs, "addr", np.int64),
        out_value=col(outs, "value", np.int64),
        out_type=col(outs, "typ", np.int8),
        out_fresh=col(outs, "fresh", np.bool_),
        out_position=col(outs, "position", np.int64),
    )


# -- runs ------------------------------------------------------------------------------


def _block_chunks(ledger: Ledger, chain: str, lo: int, hi: int, size: int) -> list[tuple[int, int, int]]:
    """Ranges ``(first, last, blocks)`` of at most ``size`` stored blocks each
    (heights may have gaps, e.g. a few real blocks far apart)."""
    nums = ledger.query(
        f'SELECT DISTINCT number FROM "{chain}".blocks WHERE number BETWEEN ? AND ? ORDER BY number',
        [lo, hi]).column("number").to_numpy()
    out = []
    for i in range(0, nums.shape[0], size):
        part = nums[i:i + size]
        out.append((int(part[0]), int(part[-1]), int(part.shape[0])))
    return out


def _find_fork(ledger: Ledger, chain: str) -> int | None:
    row = _fetch1(ledger.con.execute(
        f"""SELECT min(p.number) FROM {E}.processed_blocks p
            LEFT JOIN "{chain}".blocks b ON b.number = p.number
            WHERE p.chain = ? AND (b.hash IS NULL OR b.hash <> p.hash)""",
        [chain],
    ))
    return None if row is None or row[0] is None else int(row[0])


def _first_unprocessed(ledger: Ledger, chain: str, last_block: int) -> int | None:
    """Lowest stored block at or below ``last_block`` that no run has processed."""
    row = _fetch1(ledger.con.execute(
        f"""SELECT min(b.number) FROM "{chain}".blocks b
            LEFT JOIN {E}.processed_blocks p ON p.chain = ? AND p.number = b.number
            WHERE b.number <= ? AND p.number IS NULL""",
        [chain, last_block],
    ))
    return None if row is None or row[0] is None else int(row[0])


def _delete_chain_state(ledger: Ledger, chain: str, from_block: int | None) -> None:
    """Remove clustering state of ``chain`` (from ``from_block`` on, or all)."""
    con = ledger.con
    if from_block is None:
        for table in ("address_clusters", "cluster_evidence", "clusters", "transaction_tags",
                      "processed_blocks", "deposit_addresses"):
            _exec(con, f"DELETE FROM {E}.{table} WHERE chain = ?", [chain])
        return
    _exec(con, f"DELETE FROM {E}.cluster_evidence WHERE chain = ? AND block_number >= ?",
                [chain, from_block])
    _exec(con, f"DELETE FROM {E}.transaction_tags WHERE chain = ? AND block_number >= ?",
                [chain, from_block])
    _exec(con, f"DELETE FROM {E}.processed_blocks WHERE chain = ? AND number >= ?",
                [chain, from_block])


def _n_addresses(ledger: Ledger, chain: str) -> int:
    row = _fetch1(ledger.con.execute(
        f"SELECT coalesce(max(address_id) + 1, 0) FROM {E}.addresses WHERE chain = ?", [chain]
    ))
    return int(row[0]) if row else 0


def _load_labels(ledger: Ledger, chain: str, n: int) -> I64:
    """Stored cluster id per address id; -1 for addresses not yet clustered."""
    tbl = ledger.query(
        f"SELECT address_id, cluster_id FROM {E}.address_clusters WHERE chain = ?", [chain]
    )
    labels = np.full(n, -1, np.int64)
    ids = tbl.column("address_id").to_numpy()
    labels[ids] = tbl.column("cluster_id").to_numpy()
    return labels


def _rebuild_from_evidence(ledger: Ledger, chain: str, n: int, track_sizes: bool) -> UnionFind:
    tbl = ledger.query(
        f"SELECT id_a, id_b FROM {E}.cluster_evidence WHERE chain = ? ORDER BY block_number",
        [chain],
    )
    uf = UnionFind(n, track_sizes)
    uf.union(tbl.column("id_a").to_numpy().astype(np.int64),
             tbl.column("id_b").to_numpy().astype(np.int64))
    return uf


def _address_ids(ledger: Ledger, chain: str, names: list[str]) -> I64:
    tbl = pa.table({"k": pa.array(np.arange(len(names), dtype=np.int64)), "address": pa.array(names, pa.string())})
    ledger.con.register("_cs_names", tbl)
    try:
        out = ledger.query(
            f"""SELECT coalesce(a.address_id, -1) AS id FROM _cs_names n LEFT JOIN {E}.addresses a
                ON a.chain = ? AND a.address = n.address ORDER BY n.k""",
            [chain],
        )
    finally:
        ledger.con.unregister("_cs_names")
    return out.column("id").to_numpy().astype(np.int64)


def cluster_chain(
    ledger: Ledger,
    chain: str,
    *,
    heuristics: list[str] | tuple[str, ...] | None = None,
    change: list[str] | tuple[str, ...] = (),
    min_confidence: float = 0.6,
    coinjoin_exclusion: bool = True,
    supercluster_threshold: int = DEFAULT_SUPERCLUSTER_THRESHOLD,
    refuse_supercluster: bool = False,
    full: bool = False,
    batch_blocks: int = 2_000,
    progress: Progress | None = None,
) -> ClusterRunResult:
    """Cluster the addresses of ``chain``; see the module docstring.

    ``heuristics`` picks the base heuristics (default: ``multi_input`` on UTXO
    chains, ``deposit_reuse`` on account chains; ``[]`` for none, e.g. to
    measure change heuristics alone); ``change`` adds change heuristics
    (:data:`.change.CHANGE_HEURISTICS`) linking at ``min_confidence`` or more.
    """
    t0 = time.monotonic()
    progress = progress or NullProgress()
    family = ledger.family(chain)
    if ledger.read_only:
        raise StoreError("the ledger is open read-only; clustering writes entities.* tables")
    unknown = [c for c in change if c not in CHANGE_HEURISTICS]
    if unknown:
        from ..errors import ConfigError

        raise ConfigError(f"unknown change heuristic(s) {unknown}; choose from {list(CHANGE_HEURISTICS)}")
    if family != "bitcoin" and change:
        from ..errors import ConfigError

        raise ConfigError("change heuristics apply to UTXO chains only")
    if not 0.0 <= min_confidence <= 1.0:
        from ..errors import ConfigError

        raise ConfigError(f"--min-confidence must be between 0 and 1, not {min_confidence}")
    allowed = BASE_HEURISTICS[family]
    base = list(allowed) if heuristics is None else sorted(set(heuristics))
    bad = [h for h in base if h not in allowed]
    if bad:
        from ..errors import ConfigError

        raise ConfigError(f"unknown heuristic(s) {bad} for a {family} chain; choose from {list(allowed)}")
    ensure_entities_schema(ledger.con)
    settings = {
        "family": family,
        "heuristics": base,
        "change": sorted(change),
        "min_confidence": min_confidence if change else None,
        "coinjoin_exclusion": coinjoin_exclusion,
        "supercluster_threshold": supercluster_threshold,
        "refuse_supercluster": refuse_supercluster,
    }
    # a run before this key existed wrote no entities.deposit_addresses: the changed settings redo it
    settings["deposit_addresses"] = family == "bitcoin" or "deposit_reuse" in base
    settings_json = json.dumps(settings, sort_keys=True)
    tip = ledger.tip(chain)
    first_row = _fetch1(ledger.con.execute(f'SELECT min(number) FROM "{chain}".blocks'))
    last = _fetch1(ledger.con.execute(
        f"""SELECT run_id, last_block, CAST(settings AS VARCHAR) FROM {E}.runs
            WHERE chain = ? ORDER BY run_id DESC LIMIT 1""",
        [chain],
    ))
    run_id = (int(last[0]) + 1) if last else 1
    if tip is None or first_row is None or first_row[0] is None:
        return ClusterRunResult(chain, run_id - 1, "up-to-date", None, None,
                                seconds=time.monotonic() - t0)
    chain_first = int(first_row[0])
    tip_height = tip[0]

    fork = None if last is None else _find_fork(ledger, chain)
    gap = None if last is None else _first_unprocessed(ledger, chain, int(last[1]))
    if gap is not None:  # blocks ingested below the last run: redo from there, like a reorg
        fork = gap if fork is None else min(fork, gap)
    if full or last is None or json.loads(last[2] or "{}") != settings:
        mode, start = "full", chain_first
    elif fork is not None:
        mode, start = "reorg", max(fork, chain_first)
    else:
        mode, start = "incremental", int(last[1]) + 1
    if mode == "incremental" and start > tip_height:
        return ClusterRunResult(chain, run_id - 1, "up-to-date", start, tip_height,
                                seconds=time.monotonic() - t0)

    con = ledger.con
    _exec(con, "BEGIN TRANSACTION")
    try:
        result = _run(ledger, chain, family, base, run_id, mode, start, tip_height, settings_json,
                      sorted(change), min_confidence, coinjoin_exclusion, supercluster_threshold,
                      refuse_supercluster, batch_blocks, progress)
        _exec(con, "COMMIT")
    except BaseException:
        _exec(con, "ROLLBACK")
        raise
    result.seconds = time.monotonic() - t0
    return result


def _run(
    ledger: Ledger, chain: str, family: str, base: list[str], run_id: int, mode: str, start: int, end: int,
    settings_json: str, change: list[str], min_confidence: float, coinjoin_exclusion: bool,
    threshold: int, refuse: bool, batch_blocks: int, progress: Progress,
) -> ClusterRunResult:
    con = ledger.con
    started = time.time()
    res = ClusterRunResult(chain, run_id, mode, start, end)
    if mode == "full":
        _delete_chain_state(ledger, chain, None)
    elif mode == "reorg":
        _delete_chain_state(ledger, chain, start)
    n_before = _n_addresses(ledger, chain)
    if mode == "incremental":
        old_labels = _load_labels(ledger, chain, n_before)
        uf = UnionFind.from_labels(np.where(old_labels >= 0, old_labels, np.arange(n_before)),
                                   track_sizes=threshold > 0)
    elif mode == "reorg":
        old_labels = _load_labels(ledger, chain, n_before)
        uf = _rebuild_from_evidence(ledger, chain, n_before, threshold > 0)
    else:
        old_labels = np.full(n_before, -1, np.int64)
        uf = UnionFind(n_before, track_sizes=threshold > 0)

    chunks = _block_chunks(ledger, chain, start, end, batch_blocks)
    progress.start(f"clustering {chain}", sum(c[2] for c in chunks))
    res.new_addresses = register_addresses(ledger, chain, start, end)
    n = _n_addresses(ledger, chain)
    uf.grow(n)
    old_labels = np.concatenate([old_labels, np.full(n - old_labels.shape[0], -1, np.int64)])

    ev_rows: list[pa.Table] = []
    refused_rows: list[pa.Table] = []
    tag_rows: list[pa.Table] = []
    tag_counts: dict[str, int] = {}

    def apply(ev_tx_hash: np.ndarray, ev_block: np.ndarray, ev: Evidence) -> None:
        status, sa, sb = uf.union(ev.a, ev.b, threshold, refuse)
        applied = (status == APPLIED) | (status == APPLIED_SUPER)
        flagged = (status == REFUSED) | (status == APPLIED_SUPER)
        res.unions += int(applied.sum())
        res.refused_merges += int((status == REFUSED).sum())
        res.supercluster_merges += int((status == APPLIED_SUPER).sum())
        if applied.any():
            ev_rows.append(pa.table({
                "id_a": pa.array(ev.a[applied]), "id_b": pa.array(ev.b[applied]),
                "transaction_hash": pa.array(list(ev_tx_hash[applied]), pa.string()),
                "block_number": pa.array(ev_block[applied].astype(np.int64)),
                "heuristic": pa.array(list(ev.heuristic[applied]), pa.string()),
                "confidence": pa.array(ev.confidence[applied]),
            }))
        if flagged.any():
            refused_rows.append(pa.table({
                "id_a": pa.array(ev.a[flagged]), "id_b": pa.array(ev.b[flagged]),
                "transaction_hash": pa.array(list(ev_tx_hash[flagged]), pa.string()),
                "block_number": pa.array(ev_block[flagged].astype(np.int64)),
                "heuristic": pa.array(list(ev.heuristic[flagged]), pa.string()),
                "size_a": pa.array(sa[flagged]), "size_b": pa.array(sb[flagged]),
                "refused": pa.array(status[flagged] == REFUSED),
            }))

    if family == "bitcoin":
        for lo, hi, n_blocks in chunks:
            batch = load_utxo_batch(ledger, chain, lo, hi, prev_shape="peeling" in change)
            code, conf = cj.detect_coinjoins(batch)
            exclude = cj.joint_mask(code) if coinjoin_exclusion else None
            parts = [multi_input(batch, exclude)] if "multi_input" in base else []
            if change:
                parts.append(change_evidence(batch, change, min_confidence, exclude))
            ev = Evidence.concat(parts)
            apply(batch.tx_hash[ev.tx], batch.tx_block[ev.tx], ev)
            tagged = np.flatnonzero(code > 0)
            if tagged.shape[0]:
                names = [cj.TAGS[c] for c in code[tagged]]
                for nm in names:
                    tag_counts[nm] = tag_counts.get(nm, 0) + 1
                details = [
                    json.dumps({"inputs": int(batch.in_ptr[t + 1] - batch.in_ptr[t]),
                                "outputs": int(batch.out_ptr[t + 1] - batch.out_ptr[t]),
                                "excluded_from_cospend": bool(coinjoin_exclusion and nm in cj.JOINT_TAGS)})
                    for t, nm in zip(tagged, names, strict=True)
                ]
                tag_rows.append(pa.table({
                    "transaction_hash": pa.array(list(batch.tx_hash[tagged]), pa.string()),
                    "tag": pa.array(names, pa.string()),
                    "confidence": pa.array(conf[tagged]),
                    "details": pa.array(details, pa.string()),
                    "block_number": pa.array(batch.tx_block[tagged]),
                }))
            res.transactions += batch.n_tx
            progress.advance(n_blocks, batch.n_tx)
        # sweeps of single-purpose deposit addresses (whole chain, like deposit_reuse)
        res.deposit_addresses = _write_deposit_addresses(
            con, chain, run_id, utxo_deposit_addresses(ledger, chain, last_block=end))
    elif "deposit_reuse" in base:
        asset_row = _fetch1(con.execute(
            'SELECT native_asset FROM "chainsleuth".chains WHERE name = ?', [chain]
        ))
        dep = deposit_reuse(ledger, chain, last_block=end,
                            native_asset=str(asset_row[0]) if asset_row else "ETH")
        a_ids = _address_ids(ledger, chain, dep.column("address_a").to_pylist())
        b_ids = _address_ids(ledger, chain, dep.column("address_b").to_pylist())
        k = dep.num_rows
        ev = Evidence.of(np.arange(k, dtype=np.int64), a_ids, b_ids,
                         dep.column("confidence").to_numpy().astype(np.float64)
                         if k else np.zeros(0), "deposit_reuse")
        apply(np.array(dep.column("transaction_hash").to_pylist(), dtype=object),
              dep.column("block_number").to_numpy().astype(np.int64) if k else np.zeros(0, np.int64),
              ev)
        # the deposit addresses themselves (D -> sink E), re-derived over the whole chain
        # like the evidence; flows/trace.py stops at a D whose E is a tagged service
        dep_addrs = deposit_addresses(ledger, chain, last_block=end,
                                      native_asset=str(asset_row[0]) if asset_row else "ETH")
        res.deposit_addresses = _write_deposit_addresses(con, chain, run_id, dep_addrs)
        row = _fetch1(con.execute(
            f'SELECT count(*) FROM "{chain}".transactions WHERE block_number BETWEEN ? AND ?',
            [start, end]))
        res.transactions = int(row[0]) if row else 0
        progress.advance(sum(c[2] for c in chunks), res.transactions)

    labels = uf.labels()
    _write_results(ledger, chain, run_id, mode, start, end, labels, old_labels, ev_rows,
                   refused_rows, tag_rows)
    res.transaction_tags = tag_counts
    row = _fetch1(con.execute(f"SELECT count(*), count(DISTINCT cluster_id) FROM {E}.address_clusters WHERE chain = ?",
                      [chain]))
    res.addresses, res.clusters = (int(row[0]), int(row[1])) if row else (0, 0)
    _exec(con,
        f"""INSERT INTO {E}.runs (chain, run_id, mode, first_block, last_block, settings,
                started_at, finished_at, unions, refused_merges, supercluster_merges)
            VALUES (?, ?, ?, ?, ?, ?, make_timestamp(CAST(? * 1e6 AS BIGINT)), current_timestamp, ?, ?, ?)""",
        [chain, run_id, mode, start, end, settings_json, started, res.unions,
         res.refused_merges, res.supercluster_merges],
    )
    return res


def _write_deposit_addresses(con: duckdb.DuckDBPyConnection, chain: str, run_id: int, rows: pa.Table) -> int:
    """Replace the chain's ``entities.deposit_addresses`` with ``rows`` (re-derived over the whole chain)."""
    _exec(con, f"DELETE FROM {E}.deposit_addresses WHERE chain = ?", [chain])
    con.register("_cs_dep", rows)
    try:
        _exec(con,
            f"""INSERT INTO {E}.deposit_addresses
                SELECT ?, address, sink, first_forward_tx, first_forward_block, n_forwards,
                       heuristic, confidence, ? FROM _cs_dep""", [chain, run_id])
    finally:
        con.unregister("_cs_dep")
    return rows.num_rows


def _write_results(
    ledger: Ledger, chain: str, run_id: int, mode: str, start: int, end: int,
    labels: I64, old_labels: I64, ev_rows: list[pa.Table], refused_rows: list[pa.Table],
    tag_rows: list[pa.Table],
) -> None:
    con = ledger.con
    n = labels.shape[0]
    ids = np.arange(n, dtype=np.int64)
    changed = labels != old_labels
    # 1. address -> cluster for every address whose cluster changed (or is new)
    ch_ids = ids[changed]
    tbl = pa.table({"address_id": pa.array(ch_ids), "cluster_id": pa.array(labels[changed])})
    con.register("_cs_changed", tbl)
    try:
        if mode == "incremental":
            _exec(con,
                f"""DELETE FROM {E}.address_clusters WHERE chain = ?
                    AND address_id IN (SELECT address_id FROM _cs_changed)""", [chain])
        else:
            _exec(con, f"DELETE FROM {E}.address_clusters WHERE chain = ?", [chain])
            con.unregister("_cs_changed")
            tbl = pa.table({"address_id": pa.array(ids), "cluster_id": pa.array(labels)})
            con.register("_cs_changed", tbl)
        _exec(con,
            f"""INSERT INTO {E}.address_clusters (chain, address, cluster_id, address_id)
                SELECT ?, a.address, c.cluster_id, c.address_id FROM _cs_changed c
                JOIN {E}.addresses a ON a.chain = ? AND a.address_id = c.address_id""",
            [chain, chain])
    finally:
        con.unregister("_cs_changed")

    # 2. clusters merged into others: their old evidence moves to the surviving id
    old_roots = np.unique(old_labels[old_labels >= 0])
    moved = old_roots[labels[old_roots] != old_roots]
    if moved.shape[0]:
        mp = pa.table({"old": pa.array(moved), "new": pa.array(labels[moved])})
        con.register("_cs_moved", mp)
        try:
            _exec(con,
                f"""UPDATE {E}.cluster_evidence AS e SET cluster_id = m.new FROM _cs_moved m
                    WHERE e.chain = ? AND e.cluster_id = m.old""", [chain])
        finally:
            con.unregister("_cs_moved")

    if mode == "reorg":  # clusters may have split: re-derive every evidence row's cluster
        _exec(con,
            f"""UPDATE {E}.cluster_evidence AS e SET cluster_id = ac.cluster_id
                FROM {E}.address_clusters ac
                WHERE e.chain = ? AND ac.chain = ? AND ac.address_id = e.id_a""", [chain, chain])

    # 3. new evidence rows
    for t in ev_rows:
        con.register("_cs_ev", t)
        try:
            _exec(con,
                f"""INSERT INTO {E}.cluster_evidence
                    SELECT ?, ac.cluster_id, aa.address, ab.address, e.transaction_hash,
                           e.block_number, e.heuristic, e.confidence, e.id_a, e.id_b, ?
                    FROM _cs_ev e
                    JOIN {E}.addresses aa ON aa.chain = ? AND aa.address_id = e.id_a
                    JOIN {E}.addresses ab ON ab.chain = ? AND ab.address_id = e.id_b
                    JOIN {E}.address_clusters ac ON ac.chain = ? AND ac.address_id = e.id_a""",
                [chain, run_id, chain, chain, chain])
        finally:
            con.unregister("_cs_ev")
    for t in refused_rows:
        con.register("_cs_ref", t)
        try:
            _exec(con,
                f"""INSERT INTO {E}.refused_merges
                    SELECT ?, ?, aa.address, ab.address, r.transaction_hash, r.block_number,
                           r.heuristic, r.size_a, r.size_b, r.refused
                    FROM _cs_ref r
                    JOIN {E}.addresses aa ON aa.chain = ? AND aa.address_id = r.id_a
                    JOIN {E}.addresses ab ON ab.chain = ? AND ab.address_id = r.id_b""",
                [chain, run_id, chain, chain])
        finally:
            con.unregister("_cs_ref")
    for t in tag_rows:
        con.register("_cs_tags", t)
        try:
            _exec(con,
                f"""INSERT INTO {E}.transaction_tags
                    SELECT ?, transaction_hash, tag, confidence, details, block_number FROM _cs_tags""",
                [chain])
        finally:
            con.unregister("_cs_tags")
    _exec(con,
        f"""INSERT INTO {E}.processed_blocks SELECT ?, number, hash FROM "{chain}".blocks
            WHERE number BETWEEN ? AND ?""", [chain, start, end])

    # 4. summaries of every cluster that changed or saw activity in the new blocks
    if mode == "incremental":
        affected = np.unique(np.concatenate([labels[changed], moved]))
        aff = pa.table({"cluster_id": pa.array(affected)})
        con.register("_cs_aff", aff)
        try:
            _exec(con,
                f"""CREATE OR REPLACE TEMP TABLE _cs_affected AS
                    SELECT cluster_id FROM _cs_aff
                    UNION
                    SELECT ac.cluster_id FROM {E}.address_clusters ac
                    JOIN (SELECT from_address AS address FROM "{chain}".transfers
                          WHERE block_number BETWEEN ? AND ? AND from_address IS NOT NULL
                          UNION SELECT to_address FROM "{chain}".transfers
                          WHERE block_number BETWEEN ? AND ? AND to_address IS NOT NULL) x
                    ON x.address = ac.address WHERE ac.chain = ?""",
                [start, end, start, end, chain])
        finally:
            con.unregister("_cs_aff")
        _exec(con, f"""DELETE FROM {E}.clusters WHERE chain = ?
                        AND cluster_id IN (SELECT cluster_id FROM _cs_affected)""", [chain])
        scope = "AND ac.cluster_id IN (SELECT cluster_id FROM _cs_affected)"
    else:
        _exec(con, f"DELETE FROM {E}.clusters WHERE chain = ?", [chain])
        scope = ""
    _insert_summaries(ledger, chain, scope)
    if mode == "incremental":
        _exec(con, "DROP TABLE IF EXISTS _cs_affected")


def _insert_summaries(ledger: Ledger, chain: str, scope: str) -> None:
    """Cluster summaries: size, first/last seen, native volume in/out (fees
    excluded), distinct transactions touching the cluster."""
    row = _fetch1(ledger.con.execute(
        'SELECT native_asset FROM "chainsleuth".chains WHERE name = ?', [chain]))
    asset = str(row[0]) if row else "BTC"
    s = f'"{chain}"'
    _exec(ledger.con,
        f"""
INSERT INTO {E}.clusters (chain, cluster_id, size, first_seen, last_seen, received, sent,
                          transaction_count)
WITH ac AS (
  SELECT address, cluster_id FROM {E}.address_clusters ac WHERE ac.chain = ? {scope}
),
legs AS (
  SELECT ac.cluster_id, t.transaction_hash, t.block_timestamp,
         CASE WHEN t.asset = ? THEN t.amount END AS recv, CAST(NULL AS HUGEINT) AS sent
  FROM {s}.transfers t JOIN ac ON ac.address = t.to_address WHERE t.kind <> 'fee'
  UNION ALL
  SELECT ac.cluster_id, t.transaction_hash, t.block_timestamp,
         NULL, CASE WHEN t.asset = ? THEN t.amount END
  FROM {s}.transfers t JOIN ac ON ac.address = t.from_address WHERE t.kind <> 'fee'
),
agg AS (
  SELECT cluster_id, min(block_timestamp) AS first_seen, max(block_timestamp) AS last_seen,
         coalesce(sum(recv), 0) AS received, coalesce(sum(sent), 0) AS sent,
         count(DISTINCT transaction_hash) AS transaction_count
  FROM legs GROUP BY cluster_id
),
sizes AS (SELECT cluster_id, count(*) AS size FROM ac GROUP BY cluster_id)
SELECT ?, sizes.cluster_id, sizes.size, agg.first_seen, agg.last_seen,
       coalesce(agg.received, 0), coalesce(agg.sent, 0), coalesce(agg.transaction_count, 0)
FROM sizes LEFT JOIN agg USING (cluster_id)""",
        [chain, asset, asset, chain],
    )


# -- queries -----------------------------------------------------------------------------


def _require_clustered(ledger: Ledger, chain: str) -> None:
    ledger.family(chain)
    if not entities_schema_exists(ledger.con):
        raise EntityError(f"no clusters yet: run 'chainsleuth cluster --chain {chain}' first")
    row = _fetch1(ledger.con.execute(f"SELECT count(*) FROM {E}.runs WHERE chain = ?", [chain]))
    if not row or not row[0]:
        raise EntityError(f"chain {chain!r} has not been clustered: run 'chainsleuth cluster --chain {chain}'")


def _cluster_of(ledger: Ledger, chain: str, address: str) -> int:
    row = _fetch1(ledger.con.execute(
        f"SELECT cluster_id FROM {E}.address_clusters WHERE chain = ? AND address = ?",
        [chain, address.strip()],
    ))
    if row is None:
        raise EntityError(f"address {address!r} is not in the clusters of chain {chain!r}")
    return int(row[0])


def entity_of(ledger: Ledger, chain: str, address: str, sample: int = 10) -> dict[str, Any]:
    """The entity (cluster) of ``address``: id, size, first/last seen, volume,
    transaction count, a sample of addresses (earliest first) and the heuristics
    behind its links."""
    _require_clustered(ledger, chain)
    cid = _cluster_of(ledger, chain, address)
    rel = ledger.con.execute(
        f"""SELECT cluster_id, size, first_seen, last_seen, received, sent, transaction_count
            FROM {E}.clusters WHERE chain = ? AND cluster_id = ?""", [chain, cid])
    names = [d[0] for d in rel.description]
    row = rel.fetchone()
    info: dict[str, Any] = dict(zip(names, row, strict=True)) if row else {"cluster_id": cid}
    info["chain"] = chain
    info["address"] = address.strip()
    info["sample_addresses"] = [r[0] for r in ledger.con.execute(
        f"""SELECT address FROM {E}.address_clusters WHERE chain = ? AND cluster_id = ?
            ORDER BY address_id LIMIT ?""", [chain, cid, sample]).fetchall()]
    info["heuristics"] = {r[0]: int(r[1]) for r in ledger.con.execute(
        f"""SELECT heuristic, count(*) FROM {E}.cluster_evidence WHERE chain = ? AND cluster_id = ?
            GROUP BY heuristic ORDER BY heuristic""", [chain, cid]).fetchall()}
    return info


def why(ledger: Ledger, chain: str, address_a: str, address_b: str) -> list[dict[str, Any]]:
    """The shortest chain of evidence joining two addresses (BFS over the
    evidence edges of their cluster), as rows in path order, each with the step's
    ``from_address``/``to_address``. Empty when both are the same address;
    raises :class:`EntityError` when they are in different entities."""
    _require_clustered(ledger, chain)
    a, b = address_a.strip(), address_b.strip()
    ca, cb = _cluster_of(ledger, chain, a), _cluster_of(ledger, chain, b)
    if ca != cb:
        raise EntityError(f"{a} (entity {ca}) and {b} (entity {cb}) are not the same entity")
    if a == b:
        return []
    rel = ledger.con.execute(
        f"""SELECT address_a, address_b, transaction_hash, block_number, heuristic, confidence
            FROM {E}.cluster_evidence WHERE chain = ? AND cluster_id = ?""", [chain, ca])
    cols = [d[0] for d in rel.description]
    edges = [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]
    adj: dict[str, list[int]] = {}
    for i, e in enumerate(edges):
        adj.setdefault(e["address_a"], []).append(i)
        adj.setdefault(e["address_b"], []).append(i)
    prev: dict[str, tuple[str, int]] = {}
    seen = {a}
    queue = deque([a])
    while queue:
        x = queue.popleft()
        if x == b:
            break
        for i in adj.get(x, []):
            e = edges[i]
            y = e["address_b"] if e["address_a"] == x else e["address_a"]
            if y not in seen:
                seen.add(y)
                prev[y] = (x, i)
                queue.append(y)
    if b not in prev:
        raise EntityError(f"no evidence path between {a} and {b} (inconsistent entity tables; re-run with --full)")
    path: list[dict[str, Any]] = []
    node = b
    while node != a:
        x, i = prev[node]
        step = dict(edges[i])
        step["from_address"], step["to_address"] = x, node
        path.append(step)
        node = x
    path.reverse()
    return path


def cluster_members(ledger: Ledger, chain: str) -> dict[str, int]:
    """address -> cluster_id for a whole chain (tests, small chains)."""
    rows = ledger.con.execute(
        f"SELECT address, cluster_id FROM {E}.address_clusters WHERE chain = ?", [chain]).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}
