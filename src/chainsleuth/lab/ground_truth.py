"""Ground truth of a lab run, in schema ``lab`` of the ledger (docs/lab.md).

Written from the scenario's own books (what the lab *did*), never from a trace.

* ``lab.meta(key, value)``: seed, params (JSON), chain names, stolen totals per asset,
  token symbols, bridge rate, code and solc versions.
* ``lab.seeds(chain, address, role)``: the thief's first address (role ``thief``) and
  the victim's hot wallet (role ``victim``): where an investigator starts.
* ``lab.stolen(chain, address, transaction_hash, output_index, asset, value, step)``:
  every address (account chain, ``output_index`` NULL) and output (UTXO chain) that
  received stolen value, and how much.
* ``lab.endpoints(chain, service, kind, address, transaction_hash, asset, value,
  output_index)``: where stolen value ended: ``exchange``/``otc`` deposits, ``mixer``
  (notes never withdrawn), ``unspent`` (still held by the thief), ``fee`` (gas and
  miner fees the thief paid).
* ``lab.conversions(src_chain, src_transaction_hash, src_asset, src_value, dst_chain,
  dst_transaction_hash, dst_asset, dst_value, step)``: swaps and bridge hops of
  stolen value.
* ``lab.steps(chain, transaction_hash, step)``: the role of every transaction the lab sent.
* ``lab.services(chain, service, kind, role, address)``: every service address
  (exchange hot wallets and deposit addresses, OTC desks, mixer pools, bridge, DEX).

Conservation (checked by tests/test_lab.py), per asset::

    stolen at theft + converted into the asset
        = sum(endpoints of every kind) + converted out of the asset
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from ..store import Ledger

SCHEMA = "lab"

TABLES: dict[str, list[tuple[str, str]]] = {
    "meta": [("key", "VARCHAR"), ("value", "VARCHAR")],
    "seeds": [("chain", "VARCHAR"), ("address", "VARCHAR"), ("role", "VARCHAR")],
    "stolen": [("chain", "VARCHAR"), ("address", "VARCHAR"), ("transaction_hash", "VARCHAR"),
               ("output_index", "BIGINT"), ("asset", "VARCHAR"), ("value", "HUGEINT"), ("step", "VARCHAR")],
    "endpoints": [("chain", "VARCHAR"), ("service", "VARCHAR"), ("kind", "VARCHAR"), ("address", "VARCHAR"),
                  ("transaction_hash", "VARCHAR"), ("asset", "VARCHAR"), ("value", "HUGEINT"),
                  ("output_index", "BIGINT")],
    "conversions": [("src_chain", "VARCHAR"), ("src_transaction_hash", "VARCHAR"), ("src_asset", "VARCHAR"),
                    ("src_value", "HUGEINT"), ("dst_chain", "VARCHAR"), ("dst_transaction_hash", "VARCHAR"),
                    ("dst_asset", "VARCHAR"), ("dst_value", "HUGEINT"), ("step", "VARCHAR")],
    "steps": [("chain", "VARCHAR"), ("transaction_hash", "VARCHAR"), ("step", "VARCHAR")],
    "services": [("chain", "VARCHAR"), ("service", "VARCHAR"), ("kind", "VARCHAR"), ("role", "VARCHAR"),
                 ("address", "VARCHAR")],
}


def write_ground_truth(ledger: Ledger, meta: Mapping[str, Any], rows: Mapping[str, Sequence[Mapping[str, Any]]],
                       ) -> None:
    """Replace schema ``lab`` with these rows, in one transaction."""
    con = ledger.con
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        con.execute(f"CREATE SCHEMA {SCHEMA}")
        for table, cols in TABLES.items():
            con.execute(f"CREATE TABLE {SCHEMA}.{table} ({', '.join(f'{n} {t}' for n, t in cols)})")
        table_rows = dict(rows)
        table_rows["meta"] = [{"key": k, "value": v if isinstance(v, str) else json.dumps(v, sort_keys=True)}
                              for k, v in meta.items()]
        for table, cols in TABLES.items():
            data = table_rows.get(table, [])
            if not data:
                continue
            # values as text: wei exceed int64; DuckDB casts them exactly to HUGEINT
            arrow = pa.table({n: pa.array([None if r.get(n) is None else str(r[n]) if t == "HUGEINT" else r.get(n)
                                           for r in data], pa.int64() if t == "BIGINT" else pa.string())
                              for n, t in cols})
            con.register("_cs_lab_rows", arrow)
            try:
                casts = ", ".join(f"CAST({n} AS {t})" for n, t in cols)
                con.execute(f"INSERT INTO {SCHEMA}.{table} SELECT {casts} FROM _cs_lab_rows")
            finally:
                con.unregister("_cs_lab_rows")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def conservation(ledger: Ledger) -> list[dict[str, Any]]:
    """Per (chain, asset): theft + converted in, endpoints + converted out, and their difference
    (0 when the books balance). Read from schema ``lab``."""
    rows = ledger.con.execute(f"""
        WITH legs AS (
            SELECT chain, asset, value AS inflow, 0::HUGEINT AS outflow FROM {SCHEMA}.stolen WHERE step = 'theft'
            UNION ALL SELECT dst_chain, dst_asset, dst_value, 0 FROM {SCHEMA}.conversions
            UNION ALL SELECT chain, asset, 0, value FROM {SCHEMA}.endpoints
            UNION ALL SELECT src_chain, src_asset, 0, src_value FROM {SCHEMA}.conversions)
        SELECT chain, asset, sum(inflow), sum(outflow) FROM legs GROUP BY ALL ORDER BY ALL""").fetchall()
    return [{"chain": c, "asset": a, "in": int(i), "out": int(o), "difference": int(i) - int(o)}
            for c, a, i, o in rows]
