"""The daily USD price table (schema ``prices`` in the ledger file) and its importers.

``prices.daily``: one row per (asset, day) with the exact decimal price as the file
gives it (``DECIMAL(38,12)``; never a float), the source name and the file's date.
``prices.imports`` records each loaded file (path, sha256, rows, first/last day).

Sources (see ``$CHAINSLEUTH_DATA/PROVENANCE.md``):

* BTC: ``prices_btc_mathaszip/BTCUSD_1d_candles_full.csv`` (mathaszip/BTCprice,
  Bitstamp 2011-2015 then Coinbase candles): the day's ``close`` (UTC day).
* ETH: ``prices_eth_coingecko/eth-usd-max.csv`` (CoinGecko "max" export): the row's
  ``close_price``. CoinGecko's daily point is its snapshot for that UTC date; the
  file's ``open_price`` of a day equals the previous row's ``close_price``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from ..errors import ConfigError, InputFileError
from ..store import Ledger

SCHEMA = "prices"
PRICE_TYPE = "DECIMAL(38,12)"
DDL = [
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.daily (
        asset VARCHAR NOT NULL, day DATE NOT NULL, usd {PRICE_TYPE} NOT NULL, source VARCHAR NOT NULL,
        PRIMARY KEY (asset, day))""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.imports (
        asset VARCHAR NOT NULL, source VARCHAR NOT NULL, path VARCHAR NOT NULL, sha256 VARCHAR NOT NULL,
        file_date DATE, rows BIGINT NOT NULL, first_day DATE, last_day DATE,
        imported_at TIMESTAMP DEFAULT current_timestamp)""",
]


@dataclass(frozen=True)
class PriceFormat:
    """How to read one daily series: the date and price columns and the source name."""

    asset: str
    date_column: str
    price_column: str
    source: str


# File name -> format (the shared data's two daily series).
FORMATS = {
    "BTCUSD_1d_candles_full.csv": PriceFormat("BTC", "timestamp", "close",
                                              "mathaszip/BTCprice daily close (Bitstamp/Coinbase)"),
    "eth-usd-max.csv": PriceFormat("ETH", "date", "close_price", "CoinGecko daily (eth-usd-max.csv)"),
}  # fmt: skip
DEFAULT_FILES = ("prices_btc_mathaszip/BTCUSD_1d_candles_full.csv", "prices_eth_coingecko/eth-usd-max.csv")


@dataclass
class PriceImport:
    asset: str
    path: str
    source: str
    rows: int
    first_day: date
    last_day: date


def ensure_schema(ledger: Ledger) -> None:
    for stmt in DDL:
        ledger.con.execute(stmt)


def parse_price(text: str) -> Decimal:
    """A price as an exact Decimal (at most 12 decimal places, positive)."""
    t = text.strip()
    if not re.fullmatch(r"\d+(\.\d{1,12})?", t):
        raise ValueError(f"not a positive decimal price with at most 12 decimals: {text!r}")
    try:
        value = Decimal(t)
    except InvalidOperation:
        raise ValueError(f"not a price: {text!r}") from None
    if value <= 0:
        raise ValueError(f"price must be positive: {text!r}")
    return value


def read_daily(path: Path, fmt: PriceFormat) -> list[tuple[date, Decimal]]:
    """(day, price) rows of one file; InputFileError naming line and field on a bad row."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(str(path), None, f"cannot read: {exc}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None or not {fmt.date_column, fmt.price_column} <= {f.strip() for f in reader.fieldnames}:
        raise InputFileError(str(path), 1, f"header must name the columns {fmt.date_column} and {fmt.price_column}")
    out: dict[date, Decimal] = {}
    for row in reader:
        line = reader.line_num
        raw_day = (row.get(fmt.date_column) or "").strip()
        try:
            day = date.fromisoformat(raw_day[:10])
        except ValueError:
            raise InputFileError(str(path), line, f"field {fmt.date_column!r}: not a date: {raw_day!r}") from None
        try:
            price = parse_price(row.get(fmt.price_column) or "")
        except ValueError as exc:
            raise InputFileError(str(path), line, f"field {fmt.price_column!r}: {exc}") from None
        if day in out:
            raise InputFileError(str(path), line, f"field {fmt.date_column!r}: day {day} appears twice")
        out[day] = price
    if not out:
        raise InputFileError(str(path), None, "no price rows")
    return sorted(out.items())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def import_prices(ledger: Ledger, path: str | Path, fmt: PriceFormat | None = None) -> PriceImport:
    """Load one daily series (format from the file name unless given); replaces the asset's
    earlier rows from the same source, in one transaction."""
    return import_price_files(ledger, [(Path(path), fmt)])[0]


def import_price_files(ledger: Ledger, files: Sequence[tuple[Path, PriceFormat | None]]) -> list[PriceImport]:
    """Load several daily series: every file is read and checked first, then all are
    written in one transaction (a bad file leaves every series as it was)."""
    series = [_read_series(Path(p), fmt) for p, fmt in files]
    ensure_schema(ledger)
    import pyarrow as pa

    con = ledger.con
    con.execute("BEGIN TRANSACTION")
    try:
        for p, fmt, rows in series:
            price_rows = pa.table({  # noqa: F841 - read by DuckDB's replacement scan
                "asset": pa.array([fmt.asset] * len(rows)), "day": pa.array([d for d, _ in rows], type=pa.date32()),
                "usd": pa.array([v for _, v in rows], type=pa.decimal128(38, 12)),
                "source": pa.array([fmt.source] * len(rows)),
            })  # fmt: skip
            file_date = date.fromtimestamp(p.stat().st_mtime)
            con.execute(f"DELETE FROM {SCHEMA}.daily WHERE asset = ? AND source = ?", [fmt.asset, fmt.source])
            con.execute(f"DELETE FROM {SCHEMA}.imports WHERE asset = ? AND source = ?", [fmt.asset, fmt.source])
            con.execute(f"INSERT INTO {SCHEMA}.daily SELECT asset, day, usd, source FROM price_rows")
            con.execute(f"INSERT INTO {SCHEMA}.imports (asset, source, path, sha256, file_date, rows, first_day, last_day) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [fmt.asset, fmt.source, str(p.resolve()), _sha256(p), file_date, len(rows), rows[0][0], rows[-1][0]])  # fmt: skip
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return [PriceImport(fmt.asset, str(p), fmt.source, len(rows), rows[0][0], rows[-1][0]) for p, fmt, rows in series]


def _read_series(p: Path, fmt: PriceFormat | None) -> tuple[Path, PriceFormat, list[tuple[date, Decimal]]]:
    if not p.is_file():
        raise ConfigError(f"{p}: no such file")
    fmt = fmt or FORMATS.get(p.name)
    if fmt is None:
        raise ConfigError(f"{p.name}: unknown price file; known: {', '.join(FORMATS)} (or pass a PriceFormat)")
    return p, fmt, read_daily(p, fmt)


def price_imports(ledger: Ledger) -> list[dict[str, object]]:
    """The loaded series: asset, source, path, rows, first/last day, when imported."""
    if not _has_table(ledger):
        return []
    cur = ledger.con.execute(f"SELECT asset, source, path, rows, first_day, last_day, file_date, imported_at "
                             f"FROM {SCHEMA}.imports ORDER BY asset")  # fmt: skip
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _has_table(ledger: Ledger) -> bool:
    return ledger.has_table(SCHEMA, "daily")
