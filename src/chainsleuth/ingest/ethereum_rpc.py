"""Ingest an Ethereum-family chain from a node's JSON-RPC into the ledger.

Per batch of blocks: one batched ``eth_getBlockByNumber(n, true)``, one batched
``eth_getBlockReceipts`` (falling back to batched ``eth_getTransactionReceipt``
on nodes without it), and one batched ``trace_block`` (parity/erigon/anvil) or
``debug_traceBlockByNumber`` with the ``callTracer`` (geth). ``workers`` batches
are fetched and mapped at once in a thread pool; the main thread writes them in
block order through :meth:`Ledger.write_batch`. Consecutive batches are merged
into one write when the writer falls behind (the next batch is already
fetched), up to ``commit_transactions`` transactions: DuckDB's cost per
write (transaction, Arrow scan, casts) is mostly fixed, and on the 50-tx anvil
blocks of ``bench/bench_rpc_ethereum.py`` 21 writes of 10 blocks took 0.40 s
against 0.11 s for 3 writes of 70. A killed run loses at most the writes not yet
committed and resumes after the tip.

Reorgs: before a batch is written, its first block's ``parent_hash`` is checked
against the stored block below it. On a mismatch the job walks back to the
highest height where the stored hash equals the node's, rolls the ledger back to
it, reports it, and continues from there. A node whose latest block is below the
stored tip (a restarted dev node, a shorter fork) is handled the same way when
its block at that height differs from the stored one; when it is the same block
the node is only behind, and nothing is removed.

Re-runs: a batch whose blocks are all stored with the same hashes is skipped
only when the store also holds what this run would add. Traces are optional
(``--traces none``), so which blocks were stored with traces is recorded per
block (number, hash, trace mode, trace rows) in ``chainsleuth.ethereum_traced_blocks``;
a traced run re-fetches blocks without such a record, or whose trace row count
changed since. A ``--traces none`` run that rewrites stored blocks with the same
hashes keeps their traces (it replaces only the tables it fetched).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import pyarrow as pa

from ..errors import ConfigError, NodeError
from ..store.ledger import META, Ledger
from ..store.schema import TABLES
from .base import IngestResult, NullProgress, Progress, fork_point
from .ethereum_mappers import (
    Row,
    block_to_rows,
    geth_traces_to_rows,
    hex_to_int,
    parity_traces_to_rows,
    receipts_to_rows,
    rows_to_arrow,
    token_transfers_from_logs,
)
from .jsonrpc import JsonRpcClient, RpcError

TRACE_MODES = ("parity", "geth", "none")
_METHOD_MISSING_CODES = (-32601, -32600, -32004)
_MAX_BATCH_RETRIES = 5
_MAX_COMMIT_BLOCKS = 1_000  # bounds a write on chains of empty blocks
_TRACED = f'"{META}".ethereum_traced_blocks'
_ALL_TABLES = tuple(TABLES["ethereum"])
_UNTRACED_TABLES = tuple(t for t in _ALL_TABLES if t != "traces")


class _ChainMoved(Exception):
    """The node's chain changed while a batch was being fetched; fetch it again."""


@dataclass
class _Batch:
    lo: int
    hi: int
    skipped: bool = False
    hashes: list[str] = field(default_factory=list)
    parent_hash: str | None = None
    tables: dict[str, pa.Table] = field(default_factory=dict)
    transactions: int = 0
    # Tables the write replaces in its range: all of them, except that a run
    # without traces keeps the stored traces of blocks it rewrites unchanged.
    replace_tables: tuple[str, ...] = _ALL_TABLES


def _is_missing_method(err: RpcError) -> bool:
    text = err.rpc_message.lower()
    return err.code in _METHOD_MISSING_CODES or any(
        s in text for s in ("not found", "not supported", "does not exist", "unsupported", "not available")
    )


class _Fetcher:
    """Fetches and maps one batch of blocks. Thread-safe (shares only the client)."""

    def __init__(self, client: JsonRpcClient, traces: str) -> None:
        self.client = client
        self.traces = traces
        self.block_receipts = True  # switched off once the node lacks eth_getBlockReceipts

    def blocks(self, lo: int, hi: int) -> list[dict[str, Any]]:
        got = self.client.batch([("eth_getBlockByNumber", [hex(n), True]) for n in range(lo, hi + 1)])
        for n, block in zip(range(lo, hi + 1), got, strict=True):
            if block is None:
                raise _ChainMoved(f"block {n} is not on the node (any more)")
        for prev, block in pairwise(got):
            if block["parentHash"] != prev["hash"]:
                raise _ChainMoved(f"blocks of one batch do not chain at {hex_to_int(block['number'])}")
        return list(got)

    def receipts(self, blocks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        with_txs = [b for b in blocks if b.get("transactions")]
        if not with_txs:
            return []
        if self.block_receipts:
            got = self.client.batch(
                [("eth_getBlockReceipts", [b["hash"]]) for b in with_txs], return_errors=True
            )
            errors = [g for g in got if isinstance(g, RpcError)]
            if not errors:
                out: list[dict[str, Any]] = []
                for block, receipts in zip(with_txs, got, strict=True):
                    if receipts is None or len(receipts) != len(block["transactions"]):
                        raise _ChainMoved(f"receipts of block {block['hash']} are not on the node")
                    out.extend(receipts)
                return out
            if not _is_missing_method(errors[0]):
                raise errors[0]
            self.block_receipts = False
        hashes = [tx["hash"] for b in with_txs for tx in b["transactions"]]
        got = self.client.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        block_hashes = {b["hash"] for b in with_txs}
        for r in got:
            if r is None or r.get("blockHash") not in block_hashes:
                raise _ChainMoved("a receipt is missing or belongs to another block")
        return list(got)

    def trace_rows(self, blocks: Sequence[dict[str, Any]]) -> list[Row]:
        if self.traces == "none":
            return []
        calls: list[tuple[str, list[Any]]]
        if self.traces == "parity":
            calls = [("trace_block", [hex(hex_to_int(b["number"]) or 0)]) for b in blocks]
        else:
            calls = [
                ("debug_traceBlockByNumber", [hex(hex_to_int(b["number"]) or 0), {"tracer": "callTracer"}])
                for b in blocks
            ]
        try:
            got = self.client.batch(calls)
        except RpcError as exc:
            if _is_missing_method(exc):
                other = "geth" if self.traces == "parity" else "parity"
                raise NodeError(
                    f"the node does not support {exc.method} ({exc.rpc_message}); "
                    f"use --traces {other} if it has the other trace API, or --traces none"
                ) from exc
            raise
        rows: list[Row] = []
        for block, result in zip(blocks, got, strict=True):
            number = hex_to_int(block["number"]) or 0
            ts = hex_to_int(block.get("timestamp"))
            if self.traces == "parity":
                for t in result or []:
                    if t.get("blockHash") not in (None, block["hash"]):
                        raise _ChainMoved(f"traces of block {number} belong to another block")
                block_rows = parity_traces_to_rows(result or [])
            else:
                tx_hashes = [tx["hash"] for tx in block.get("transactions") or []]
                items = result or []
                if len(items) != len(tx_hashes):
                    raise _ChainMoved(f"traces of block {number} do not match its transactions")
                for item in items:
                    if isinstance(item, dict) and item.get("error") and "result" not in item:
                        raise NodeError(f"debug_traceBlockByNumber failed in block {number}: {item['error']}")
                block_rows = geth_traces_to_rows(number, items, tx_hashes, block["hash"])
            for r in block_rows:
                r["block_hash"] = block["hash"]
                r["block_timestamp"] = ts
            rows.extend(block_rows)
        return rows

    def fetch(self, lo: int, hi: int, stored: dict[int, str], traced: set[int]) -> _Batch:
        last: Exception | None = None
        for _ in range(_MAX_BATCH_RETRIES):
            try:
                return self._fetch_once(lo, hi, stored, traced)
            except _ChainMoved as exc:
                last = exc
        raise NodeError(f"blocks {lo}..{hi} keep changing on the node ({last}); try again later")

    def _fetch_once(self, lo: int, hi: int, stored: dict[int, str], traced: set[int]) -> _Batch:
        """``stored``: stored hashes of lo..hi; ``traced``: heights stored with their traces."""
        blocks = self.blocks(lo, hi)
        batch = _Batch(lo, hi, hashes=[b["hash"] for b in blocks], parent_hash=blocks[0]["parentHash"])
        same = [stored.get(lo + i) == h for i, h in enumerate(batch.hashes)]
        if all(same) and (self.traces == "none" or all(n in traced for n in range(lo, hi + 1))):
            batch.skipped = True  # the ledger already holds these blocks and all this run brings
            return batch
        if self.traces == "none" and all(s or (lo + i) not in stored for i, s in enumerate(same)):
            # Every stored block in the range stays the same block: keep its traces.
            batch.replace_tables = _UNTRACED_TABLES
        block_rows: list[Row] = []
        tx_rows: list[Row] = []
        timestamps: dict[int, int | None] = {}
        for block in blocks:
            brow, trows = block_to_rows(block)
            block_rows.append(brow)
            tx_rows.extend(trows)
            timestamps[brow["number"]] = brow["timestamp"]
        receipt_rows, log_rows = receipts_to_rows(self.receipts(blocks))
        transfer_rows = token_transfers_from_logs(log_rows, timestamps)
        trace_rows = self.trace_rows(blocks)
        batch.transactions = len(tx_rows)
        batch.tables = {
            "blocks": rows_to_arrow("blocks", block_rows),
            "transactions": rows_to_arrow("transactions", tx_rows),
            "receipts": rows_to_arrow("receipts", receipt_rows),
            "logs": rows_to_arrow("logs", log_rows),
            "token_transfers": rows_to_arrow("token_transfers", transfer_rows),
        }
        if self.traces != "none":
            batch.tables["traces"] = rows_to_arrow("traces", trace_rows)
        return batch


def _ensure_traced_table(ledger: Ledger) -> None:
    ledger.con.execute(
        f"""CREATE TABLE IF NOT EXISTS {_TRACED} (
            chain VARCHAR NOT NULL, number BIGINT NOT NULL, hash VARCHAR NOT NULL,
            traces VARCHAR NOT NULL, trace_rows BIGINT NOT NULL)"""
    )


def _traced_heights(ledger: Ledger, chain: str, lo: int, hi: int) -> set[int]:
    """Heights in lo..hi stored with traces: a record for the stored block's hash whose
    trace row count still matches the traces table (another writer may have replaced them)."""
    rows = ledger.con.execute(
        f"""SELECT r.number FROM {_TRACED} r
            JOIN "{chain}".blocks b ON b.number = r.number AND b.hash = r.hash
            LEFT JOIN (SELECT block_number, count(*) AS c FROM "{chain}".traces
                       WHERE block_number BETWEEN $lo AND $hi GROUP BY 1) t
              ON t.block_number = r.number
            WHERE r.chain = $chain AND r.number BETWEEN $lo AND $hi AND r.traces <> 'none'
              AND coalesce(t.c, 0) = r.trace_rows""",
        {"chain": chain, "lo": lo, "hi": hi},
    ).fetchall()
    return {int(r[0]) for r in rows}


def _record_traced(ledger: Ledger, chain: str, lo: int, hi: int, mode: str | None) -> None:
    """After a write of lo..hi: record its blocks as traced (``mode``), or forget them.

    A separate transaction from the write: a kill in between leaves blocks without
    a record, which only makes a later traced run fetch them again.
    """
    con = ledger.con
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DELETE FROM {_TRACED} WHERE chain = ? AND number BETWEEN ? AND ?", [chain, lo, hi])
        if mode is not None:
            con.execute(
                f"""INSERT INTO {_TRACED}
                    SELECT $chain, b.number, b.hash, $mode, count(t.block_number)
                    FROM "{chain}".blocks b
                    LEFT JOIN "{chain}".traces t ON t.block_number = b.number
                    WHERE b.number BETWEEN $lo AND $hi GROUP BY b.number, b.hash""",
                {"chain": chain, "mode": mode, "lo": lo, "hi": hi},
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _forget_traced_above(ledger: Ledger, chain: str, height: int) -> None:
    ledger.con.execute(f"DELETE FROM {_TRACED} WHERE chain = ? AND number > ?", [chain, height])


def _fork_point(ledger: Ledger, chain: str, client: JsonRpcClient, below: int) -> int:
    """Highest height <= ``below`` whose stored hash equals the node's; -1 if none."""

    def node_hashes(lo: int, hi: int) -> list[str | None]:
        blocks = client.batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(lo, hi + 1)])
        return [b["hash"] if b is not None else None for b in blocks]

    return fork_point(lambda lo, hi: ledger.block_hashes(chain, lo, hi), node_hashes, below)


def ingest_ethereum_rpc(
    ledger: Ledger,
    url: str,
    *,
    chain: str = "ethereum",
    start: int | None = None,
    end: int | None = None,
    traces: str = "parity",
    batch_size: int = 50,
    workers: int = 4,
    progress: Progress | None = None,
    retries: int = 5,
    commit_transactions: int = 5_000,
) -> IngestResult:
    """Ingest blocks ``start..end`` (inclusive) of an Ethereum node into ``chain``.

    ``start`` defaults to the block after the stored tip (0 on an empty chain),
    ``end`` to the node's latest block. ``traces``: ``parity`` (``trace_block``),
    ``geth`` (``debug_traceBlockByNumber`` callTracer) or ``none``.
    """
    progress = progress or NullProgress()
    if traces not in TRACE_MODES:
        raise ConfigError(f"traces must be one of {', '.join(TRACE_MODES)}, not {traces!r}")
    if batch_size < 1 or workers < 1:
        raise ConfigError("batch size and workers must be at least 1")
    if start is not None and start < 0:
        raise ConfigError(f"--from must be >= 0, not {start}")
    result = IngestResult(chain=chain)
    with JsonRpcClient(url, retries=retries, max_connections=max(4, workers * 2)) as client:
        latest = hex_to_int(client.call("eth_blockNumber"))
        assert latest is not None
        ledger.ensure_chain(chain, "ethereum")
        _ensure_traced_table(ledger)
        if start is not None and start > latest:
            raise ConfigError(f"--from {start} is beyond the node's latest block {latest}")
        if end is not None and end > latest:
            raise ConfigError(f"--to {end} is beyond the node's latest block {latest}")
        if end is None:
            end = latest
        tip = ledger.tip(chain)
        if tip is not None and tip[0] > latest:
            # The node's chain is shorter than the stored one: a dead fork above the
            # fork point, or a node that is only behind (its latest block is ours).
            fork = _fork_point(ledger, chain, client, latest)
            if fork < latest:
                _rollback(ledger, chain, fork, result, progress,
                          f"the node's latest block {latest} is below the stored tip {tip[0]} "
                          f"and differs from the stored chain")
                tip = ledger.tip(chain)
            else:
                progress.message(f"the node's latest block {latest} is below the stored tip {tip[0]} "
                                 "on the same chain: the node is behind; stored blocks kept")
        if start is None:
            start = 0 if tip is None else tip[0] + 1
            if tip is not None and start > end:
                # Nothing new, unless the stored chain left the node's below `end`.
                top = min(tip[0], end)
                node_top = client.call("eth_getBlockByNumber", hex(top), False)
                stored_top = ledger.block_hashes(chain, top, top).get(top)
                if node_top is not None and stored_top is not None and node_top["hash"] == stored_top:
                    progress.message(f"{chain} is up to date at block {top}")
                    return result.finish()
                fork = _fork_point(ledger, chain, client, top)
                _rollback(ledger, chain, fork, result, progress,
                          f"the stored block {top} is not on the node's chain")
                start = fork + 1
        if end < start:
            raise ConfigError(f"--to {end} is below --from {start}")
        fetcher = _Fetcher(client, traces)
        progress.start(f"ethereum → {chain}", end - start + 1)
        _run(ledger, chain, client, fetcher, start, end, batch_size, workers, progress, result,
             commit_transactions)
    return result.finish()


def _rollback(ledger: Ledger, chain: str, fork: int, result: IngestResult, progress: Progress,
              why: str) -> None:
    removed = ledger.rollback_to(chain, fork)
    _forget_traced_above(ledger, chain, fork)
    result.reorgs.append((fork, removed))
    progress.message(f"reorg: {why}; rolled back {removed} block(s) above height {fork}")


def _run(
    ledger: Ledger, chain: str, client: JsonRpcClient, fetcher: _Fetcher, start: int, end: int,
    batch_size: int, workers: int, progress: Progress, result: IngestResult,
    commit_transactions: int = 0,
) -> None:
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eth-rpc") as pool:
        next_lo = start
        pending: deque[Future[_Batch]] = deque()

        def submit() -> None:
            nonlocal next_lo
            # Twice the workers in flight: finished batches queue up while one is written.
            while next_lo <= end and len(pending) < 2 * workers:
                hi = min(end, next_lo + batch_size - 1)
                # Stored hashes are read here, in the thread that owns the connection.
                stored = ledger.block_hashes(chain, next_lo, hi)
                traced = _traced_heights(ledger, chain, next_lo, hi) if fetcher.traces != "none" else set()
                pending.append(pool.submit(fetcher.fetch, next_lo, hi, stored, traced))
                next_lo = hi + 1

        def restart_from(height: int) -> None:
            nonlocal next_lo
            for fut in pending:
                fut.cancel()
            for fut in pending:
                if not fut.cancelled():
                    _wait_quietly(fut.result)
            pending.clear()
            next_lo = height

        held: list[_Batch] = []  # fetched, consecutive, not yet written

        def flush() -> None:
            if not held:
                return
            lo, hi = held[0].lo, held[-1].hi
            tables = held[0].tables if len(held) == 1 else _merge_tables([b.tables for b in held])
            replace_tables = held[0].replace_tables
            written = ledger.write_batch(chain, tables, (lo, hi), replace_tables=replace_tables)
            if fetcher.traces != "none":
                _record_traced(ledger, chain, lo, hi, fetcher.traces)
            elif "traces" in replace_tables:
                _record_traced(ledger, chain, lo, hi, None)  # their traces were removed
            result.add_rows(written)
            transactions = sum(b.transactions for b in held)
            result.blocks += hi - lo + 1
            result.transactions += transactions
            if result.first_block is None or lo < result.first_block:
                result.first_block = lo
            result.last_block = max(hi, result.last_block or hi)
            progress.advance(hi - lo + 1, transactions)
            held.clear()

        submit()
        while pending:
            batch = pending.popleft().result()
            if held and (batch.skipped or batch.parent_hash != held[-1].hashes[-1]
                         or batch.replace_tables != held[-1].replace_tables):
                flush()  # the checks below then see the ledger as it is
            if not held:
                below = ledger.block_hashes(chain, batch.lo - 1, batch.lo - 1).get(batch.lo - 1)
                if batch.lo > 0 and below is not None and below != batch.parent_hash:
                    fork = _fork_point(ledger, chain, client, batch.lo - 1)
                    _rollback(ledger, chain, fork, result, progress,
                              f"block {batch.lo} does not build on the stored block {batch.lo - 1}")
                    restart_from(fork + 1)
                    submit()
                    continue
            if batch.skipped:
                result.skipped_blocks += batch.hi - batch.lo + 1
                progress.advance(batch.hi - batch.lo + 1, batch.transactions)
            else:
                held.append(batch)
                # Write now unless the next batch is already fetched (then merge it
                # in): a writer that keeps up writes each batch as it comes.
                if (
                    not pending
                    or not pending[0].done()
                    or sum(b.transactions for b in held) >= commit_transactions
                    or held[-1].hi - held[0].lo + 1 >= _MAX_COMMIT_BLOCKS
                ):
                    flush()
            submit()
        flush()


def _merge_tables(parts: Sequence[dict[str, pa.Table]]) -> dict[str, pa.Table]:
    """Concatenate the tables of consecutive batches, table by table.

    An amount column is int64 in one batch and decimal text in another when only
    the latter holds values beyond int64 (see ``rows_to_arrow``); such a column
    becomes text throughout, which the ledger casts to HUGEINT exactly.
    """
    merged: dict[str, pa.Table] = {}
    for name in parts[0]:
        tables = [p[name] for p in parts]
        columns: dict[str, pa.ChunkedArray] = {}
        for column in tables[0].column_names:
            arrays = [t[column] for t in tables]
            if len({a.type for a in arrays}) > 1:
                arrays = [a.cast(pa.string()) for a in arrays]
            columns[column] = pa.chunked_array([c for a in arrays for c in a.chunks], arrays[0].type)
        merged[name] = pa.table(columns)
    return merged


def _wait_quietly(get: Callable[[], Any]) -> None:
    """Wait for an abandoned batch; its errors no longer matter."""
    with contextlib.suppress(Exception):
        get()
