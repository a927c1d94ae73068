"""A persistent, compact copy of an account chain's legs for tracing.

Loading an account chain's ``transfers`` view for a trace (a union of native,
internal, token, reward and fee legs, ordered in time, with every address
turned into an integer id) takes DuckDB tens of seconds at 10M legs; the trace
itself then takes well under a second. So the encoded legs are stored once per
chain in the ledger, in time order:

* ``flows."trace_legs_<chain>"``: ``rn`` (1-based time order), ``src``/``dst``
  (address ids, -1 for none), ``asset_id``, ``is_fee``, ``amount`` (HUGEINT),
  ``amount_overflow``, ``amount64`` (the amount as BIGINT when it fits: reading
  HUGEINT costs DuckDB ~8x more), ``ts`` (epoch seconds), ``transaction_hash``, ``asset``;
* ``flows."trace_addresses_<chain>"``: ``address``, ``id``;
* ``flows."trace_assets_<chain>"``: ``asset_id``, ``asset``;
* ``flows.trace_indexes``: per chain the *key* of the ledger state it was built
  from (tip height and hash, and the row count of every table the view reads),
  the leg count and whether every amount fits in ``int64``.

A trace checks the key (a few catalog counts) and rebuilds the index when the
ledger changed: new blocks, back-filled blocks, a reorg rollback (the tip or a
count differs). On a read-only ledger a stale or missing index is not written;
the legs are encoded into temporary tables for the session instead (the slow path).

The integer columns the propagation reads (``src``, ``dst``, ``asset_id``,
``is_fee``, ``ts``, ``amount64``) are also kept as NumPy ``.npy`` files next to the
ledger (``<ledger>.trace/<chain>/``, with the key in ``meta.json``): a later
session maps them (``np.load(mmap_mode="c")``) instead of converting 10M rows
from DuckDB (~0.5 s); they are rewritten from the tables whenever the key
differs, so a stale or missing sidecar only costs that scan once.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from ..store import Ledger
from ..store.schema import TABLES

SCHEMA = "flows"
# No primary key: DuckDB 1.4 refuses to re-insert a key deleted earlier (even in an
# earlier transaction) until a checkpoint, so a rebuild is a plain DELETE + INSERT.
INDEX_TABLE = f'"{SCHEMA}".trace_indexes'
# Part of the key: an index written by another layout of these tables is rebuilt.
LAYOUT = 5


def _legs_sql(chain: str, where: str = "TRUE") -> tuple[str, str]:
    """(addresses SELECT, legs SELECT) encoding the ``transfers`` view of ``chain``; the legs
    SELECT refers to the addresses relation as ``_cs_addr_src``."""
    q = f'"{chain}"'
    addresses = f"""
        WITH t AS (SELECT from_address, to_address FROM {q}.transfers WHERE {where})
        SELECT address, (row_number() OVER (ORDER BY address)) - 1 AS id FROM
            (SELECT from_address AS address FROM t UNION SELECT to_address FROM t)
        WHERE address IS NOT NULL
        ORDER BY address"""  # stored sorted: DuckDB's zone maps then skip most of it on a lookup  # fmt: skip
    legs = f"""
        WITH t AS (SELECT * FROM {q}.transfers WHERE {where}),
        s AS (SELECT asset, (row_number() OVER (ORDER BY asset)) - 1 AS asset_id FROM (SELECT DISTINCT asset FROM t))
        SELECT row_number() OVER (ORDER BY t.block_number, t.transaction_index,
                   CASE t.kind WHEN 'native' THEN 0 WHEN 'internal' THEN 1 WHEN 'token' THEN 2
                               WHEN 'fee' THEN 3 ELSE 4 END, t.position) AS rn,
               coalesce(fa.id, -1) AS src, coalesce(ta.id, -1) AS dst, s.asset_id,
               (t.kind = 'fee') AS is_fee, t.amount, t.amount_overflow,
               CASE WHEN t.amount BETWEEN -9223372036854775808 AND 9223372036854775807
                    THEN CAST(t.amount AS BIGINT) END AS amount64,
               epoch(t.block_timestamp)::BIGINT AS ts, t.transaction_hash, t.asset
        FROM t LEFT JOIN _cs_addr_src fa ON fa.address = t.from_address
        LEFT JOIN _cs_addr_src ta ON ta.address = t.to_address
        JOIN s ON s.asset = t.asset
        ORDER BY rn"""  # fmt: skip
    return addresses, legs


def ledger_key(ledger: Ledger, chain: str) -> str:
    """The state of ``chain`` the index depends on: tip (height, hash) and table row counts
    (and the layout version of the index tables)."""
    tip = ledger.tip(chain)
    tables = sorted(TABLES[ledger.family(chain)])
    counts = ledger.con.execute(
        "SELECT " + ", ".join(f'(SELECT count(*) FROM "{chain}"."{t}")' for t in tables)
    ).fetchone()  # fmt: skip
    return f"v{LAYOUT}:{tip[0] if tip else -1}:{tip[1] if tip else ''}:" + ",".join(str(c) for c in (counts or ()))


def index_info(ledger: Ledger, chain: str) -> dict[str, Any] | None:
    """The stored index row of ``chain`` (key, legs, fits_int64, built_at, build_s), or None."""
    if not ledger.has_table(SCHEMA, "trace_indexes"):
        return None
    row = ledger.con.execute(
        f"SELECT key, legs, fits_int64, built_at, build_s FROM {INDEX_TABLE} WHERE chain = ?", [chain]
    ).fetchone()  # fmt: skip
    return dict(zip(("key", "legs", "fits_int64", "built_at", "build_s"), row, strict=True)) if row else None


def fresh_index(ledger: Ledger, chain: str) -> dict[str, Any] | None:
    """The index row of ``chain`` when it matches the ledger as it is now, else None."""
    info = index_info(ledger, chain)
    if info is None or info["key"] != ledger_key(ledger, chain):
        return None
    return info


def build_index(ledger: Ledger, chain: str) -> dict[str, Any]:
    """(Re)build the trace index of an account chain in one transaction; returns its row."""
    con = ledger.con
    t0 = time.perf_counter()
    key = ledger_key(ledger, chain)
    addr_sql, legs_sql = _legs_sql(chain)
    legs_t, addr_t, assets_t = (f'"{SCHEMA}"."trace_{k}_{chain}"' for k in ("legs", "addresses", "assets"))
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"')
        con.execute(f"""CREATE TABLE IF NOT EXISTS {INDEX_TABLE} (chain VARCHAR NOT NULL, key VARCHAR NOT NULL,
                        legs BIGINT NOT NULL, fits_int64 BOOLEAN NOT NULL, built_at TIMESTAMP NOT NULL,
                        build_s DOUBLE)""")  # fmt: skip
        con.execute(f"CREATE OR REPLACE TABLE {addr_t} AS {addr_sql}")
        con.execute(f"CREATE OR REPLACE TEMP VIEW _cs_addr_src AS SELECT * FROM {addr_t}")
        con.execute(f"CREATE OR REPLACE TABLE {legs_t} AS {legs_sql}")
        con.execute(f"CREATE OR REPLACE TABLE {assets_t} AS SELECT DISTINCT asset_id, asset FROM {legs_t}")
        row = con.execute(f"SELECT count(*), count(*) FILTER (WHERE amount64 IS NULL) = 0 FROM {legs_t}").fetchone()
        n, fits = (int(row[0]), bool(row[1])) if row else (0, True)
        con.execute(f"DELETE FROM {INDEX_TABLE} WHERE chain = ?", [chain])
        con.execute(
            f"INSERT INTO {INDEX_TABLE} VALUES (?, ?, ?, ?, now()::TIMESTAMP, ?)",
            [chain, key, n, fits, time.perf_counter() - t0],
        )  # fmt: skip
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("DROP VIEW IF EXISTS _cs_addr_src")
    # An ART index on rn: a trace fetches the ~1,000 legs it reports without a scan. Made
    # after the commit (DuckDB 1.4 fails to commit an index created on a table replaced in
    # the same transaction); without it lookups are scans, slower but right.
    with contextlib.suppress(duckdb.Error):
        con.execute(f'CREATE INDEX IF NOT EXISTS "trace_legs_rn_{chain}" ON {legs_t} (rn)')
    info = index_info(ledger, chain)
    assert info is not None
    return info


def drop_index(ledger: Ledger, chain: str) -> None:
    """Remove the trace index of ``chain`` (it is rebuilt by the next trace)."""
    shutil.rmtree(sidecar_dir(ledger, chain), ignore_errors=True)
    if not ledger.has_table(SCHEMA, "trace_indexes"):
        return
    for k in ("legs", "addresses", "assets"):
        ledger.con.execute(f'DROP TABLE IF EXISTS "{SCHEMA}"."trace_{k}_{chain}"')
    ledger.con.execute(f"DELETE FROM {INDEX_TABLE} WHERE chain = ?", [chain])


SIDECAR_COLUMNS = ("src", "dst", "asset_id", "is_fee", "ts", "amount")


def sidecar_dir(ledger: Ledger, chain: str) -> Path:
    """Where the arrays of ``chain``'s index live: ``<ledger file>.trace/<chain>/``."""
    return Path(f"{ledger.path}.trace") / chain


def load_sidecar(ledger: Ledger, chain: str, key: str) -> dict[str, Any] | None:
    """The stored arrays (copy-on-write memory maps) when they were written for ``key``."""
    d = sidecar_dir(ledger, chain)
    try:
        meta = json.loads((d / "meta.json").read_text())
        if meta.get("key") != key:
            return None
        arrays: dict[str, Any] = {c: np.load(d / f"{c}.npy", mmap_mode="c") for c in meta["columns"]}
    except (OSError, ValueError, KeyError):
        return None
    arrays["n_states"] = int(meta["n_states"])
    return arrays


def save_sidecar(ledger: Ledger, chain: str, key: str, arrays: dict[str, np.ndarray], n_states: int) -> None:
    """Write the arrays for ``key`` (to a fresh directory, then renamed into place)."""
    d = sidecar_dir(ledger, chain)
    tmp = d.with_name(f"{chain}.{os.getpid()}.partial")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        cols = [c for c in SIDECAR_COLUMNS if c in arrays]
        for c in cols:
            np.save(tmp / f"{c}.npy", np.ascontiguousarray(arrays[c]))
        (tmp / "meta.json").write_text(json.dumps({"key": key, "columns": cols, "n_states": n_states}))
        shutil.rmtree(d, ignore_errors=True)
        os.replace(tmp, d)
    except OSError:  # a cache: a trace that cannot write it still answers
        shutil.rmtree(tmp, ignore_errors=True)
