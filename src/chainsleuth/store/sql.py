"""Read-only SQL over the ledger, for users and tests (``chainsleuth sql``)."""

from __future__ import annotations

import csv
import decimal
import io
import sys
from pathlib import Path
from typing import Any, TextIO

import duckdb
import orjson
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from ..errors import ConfigError, StoreError
from .ledger import Ledger
from .schema import TABLES

# Statement types a read-only helper may run. COPY, ATTACH, SET, PRAGMA, INSTALL,
# LOAD and every write are refused before DuckDB sees them.
_ALLOWED = {"SELECT", "EXPLAIN"}


def check_read_only(sql: str) -> None:
    """Raise unless every statement in ``sql`` is a SELECT (incl. WITH/SHOW/DESCRIBE) or EXPLAIN."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise ConfigError(f"cannot parse the query: {exc}") from exc
    if not statements:
        raise ConfigError("empty query")
    for st in statements:
        kind = st.type.name
        if kind not in _ALLOWED:
            raise ConfigError(
                f"only read-only queries are allowed here (got a {kind} statement); "
                "use the library or the ingest commands to change the ledger"
            )


def run_readonly(db: str | Path, sql: str) -> pa.Table:
    """Run a read-only query against the ledger file and return the last statement's rows."""
    check_read_only(sql)
    with Ledger(db, read_only=True) as ledger:
        try:
            return ledger.con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise StoreError(f"query failed: {exc}") from exc


def _exact(value: Any) -> Any:
    """JSON-safe exact value: big integers (HUGEINT) and decimals become strings."""
    if isinstance(value, decimal.Decimal):
        # HUGEINT arrives as Decimal(38,0); int() is exact at any size (quantize is not: 28 digits).
        return str(int(value)) if value == value.to_integral_value() else str(value)
    if isinstance(value, int) and not -(2**53) <= value <= 2**53:
        return str(value)
    if isinstance(value, list):
        return [_exact(v) for v in value]
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    return value


def rows_as_dicts(table: pa.Table) -> list[dict[str, Any]]:
    return [{k: _exact(v) for k, v in row.items()} for row in table.to_pylist()]


def write_json(table: pa.Table, out: TextIO) -> None:
    out.write(orjson.dumps(rows_as_dicts(table), default=str, option=orjson.OPT_INDENT_2).decode())
    out.write("\n")


def write_csv(table: pa.Table, out: TextIO) -> None:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(table.column_names)
    for row in table.to_pylist():
        w.writerow(["" if v is None else _cell(v) for v in row.values()])


def _cell(v: Any) -> str:
    if isinstance(v, decimal.Decimal):
        return str(_exact(v))
    if isinstance(v, list):
        return ",".join("" if x is None else str(x) for x in v)
    return str(v)


def format_result(table: pa.Table, fmt: str, console: Console, limit: int = 100) -> None:
    """Print a query result as a Rich table, CSV or JSON."""
    if fmt == "json":
        write_json(table, sys.stdout)
    elif fmt == "csv":
        buf = io.StringIO()
        write_csv(table, buf)
        sys.stdout.write(buf.getvalue())
    elif fmt == "table":
        t = Table(show_header=True, header_style="bold")
        for name in table.column_names:
            t.add_column(name, overflow="fold")
        shown = table if limit <= 0 else table.slice(0, limit)
        for row in shown.to_pylist():
            t.add_row(*("NULL" if v is None else _cell(v) for v in row.values()))
        console.print(t)
        if limit > 0 and table.num_rows > limit:
            console.print(f"[dim]{table.num_rows:,} rows, {limit} shown (--limit 0 for all)[/]")
    else:
        raise ConfigError(f"unknown format {fmt!r}: use table, csv or json")


def chain_summary(db: str | Path) -> list[dict[str, Any]]:
    """Per chain: family, network, block range, time range and row counts per table."""
    out = []
    with Ledger(db, read_only=True) as ledger:
        for c in ledger.chains():
            name, family = c["name"], c["family"]
            rng = ledger.con.execute(
                f'SELECT min(number), max(number), min("timestamp"), max("timestamp") FROM "{name}".blocks'
            ).fetchone()
            counts = {t: ledger.count(name, t) for t in TABLES[family]}
            out.append(
                {
                    **c,
                    "first_block": rng[0] if rng else None,
                    "last_block": rng[1] if rng else None,
                    "first_time": rng[2] if rng else None,
                    "last_time": rng[3] if rng else None,
                    "rows": counts,
                }
            )
    return out


def print_chain_summary(summary: list[dict[str, Any]], console: Console) -> None:
    if not summary:
        console.print("the ledger holds no chain yet")
        return
    t = Table(title="chains in the ledger")
    for col in ("chain", "network", "blocks", "heights", "first/last date"):
        t.add_column(col, no_wrap=True)
    t.add_column("rows", no_wrap=True)
    for c in summary:
        rows = "\n".join(f"{k} {v:,}" for k, v in c["rows"].items() if k != "blocks")
        heights = "" if c["first_block"] is None else f"{c['first_block']}\n{c['last_block']}"
        span = "" if c["first_time"] is None else f"{c['first_time']:%Y-%m-%d}\n{c['last_time']:%Y-%m-%d}"
        t.add_row(
            c["name"], c["network"] or c["family"], f"{c['rows']['blocks']:,}", heights, span, rows
        )
    console.print(t)
