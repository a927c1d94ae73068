"""Import blockchain-etl and BigQuery ``crypto_*`` exports (no node needed).

Accepted inputs (a file, or a folder that is walked):

* bitcoin-etl ``export_blocks_and_transactions`` JSON lines: blocks, and
  transactions with nested ``inputs``/``outputs`` (timestamps as epoch seconds);
* ethereum-etl ``export_all`` CSV/JSON (``<table>/start_block=.../<table>_*.csv``)
  and ``stream`` JSON lines (one ``type`` per item, transactions enriched with
  ``receipt_*`` fields);
* BigQuery exports of ``crypto_bitcoin.*`` / ``crypto_ethereum.*`` in JSON lines
  or CSV: timestamps as ``"2019-01-01 00:00:00 UTC"``, INT64 and NUMERIC values
  as strings (``"123"``, ``"1.23E+20"``), ``inputs``/``outputs`` nested or as
  their own tables.

Each file's table comes from its name (``blocks``, ``transactions``,
``receipts``, ``logs``, ``token_transfers``, ``traces``, ``inputs``,
``outputs``), its format from the extension (``.csv``, ``.json``, ``.jsonl``,
``.ndjson``, each optionally ``.gz``). A JSON file named after no table is read
as a ``stream`` file and each item is routed by its ``type``.

The import runs in two phases so that bad input writes nothing: every row of
every file is parsed and validated into TEMP staging tables (DuckDB, spills to
disk), then the staged rows are written block range by block range through
:meth:`Ledger.write_batch`. Blocks whose stored rows already match the staged
ones (same block hash, same row count in every imported table) are skipped, so
a rerun after a kill resumes where the last committed batch ended.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

import duckdb
import orjson
import pyarrow as pa

from ..errors import ConfigError, InputFileError
from ..store.ledger import Ledger
from ..store.schema import FAMILIES, HUGEINT_MAX, TABLES, Columns, Family, block_column
from .base import IngestResult, NullProgress, Progress
from .ethereum_mappers import log_row_to_token_transfer

# File name -> table. token_transfers must be tried before the shorter names.
_TABLE_NAMES = ("token_transfers", "transactions", "receipts", "blocks", "logs", "traces",
                "inputs", "outputs")
_TABLE_IN_NAME = re.compile(r"(?:^|[^a-z])(" + "|".join(_TABLE_NAMES) + r")(?:[^a-z]|$)")
_FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".ndjson": "json"}

# ethereum-etl / bitcoin-etl ``stream`` item types -> table; others (contract, token) skipped.
_STREAM_TYPES = {
    "block": "blocks", "transaction": "transactions", "receipt": "receipts", "log": "logs",
    "token_transfer": "token_transfers", "trace": "traces",
}
_STREAM_IGNORED = {"contract", "token"}
# Bookkeeping fields of stream items; never reported as ignored columns.
_BOOKKEEPING = {"type", "item_id", "item_timestamp"}
# ethereum-etl stream / BigQuery crypto_ethereum.transactions carry their receipt.
_RECEIPT_FIELDS = {
    "receipt_cumulative_gas_used": "cumulative_gas_used",
    "receipt_gas_used": "gas_used",
    "receipt_contract_address": "contract_address",
    "receipt_root": "root",
    "receipt_status": "status",
    "receipt_effective_gas_price": "effective_gas_price",
}
# Columns that are signed in the source data (block/transaction version is int32).
_SIGNED = {"version"}
# Integers written in float notation. A rendering with few digits may be rounded
# ("1.23457E+20": a spreadsheet's General format, printf %g), and nothing in the
# text tells. So (see parse_integer):
# * BigQuery exports render NUMERIC exactly, round values in exponent form
#   ("7400E+15"); in their rows (timestamps as "... UTC") such text is taken as
#   written, unless it has more digits than a float64 keeps beyond 2**53, the
#   sign of a FLOAT64 rendering;
# * elsewhere (etl CSV/JSON write plain integers) exponent text is refused, and a
#   JSON float or "123.0" text is accepted only up to 2**53, where every integer
#   has an exact float64 (pandas writes int columns with gaps as floats).
_FLOAT_SAFE_DIGITS = 15
_FLOAT_EXACT_MAX = 2**53
_BIGINT_MAX = 2**63 - 1
_CHUNK_ROWS = 20_000
# Rows per write batch; CHAINSLEUTH_ETL_BATCH_ROWS tunes it (tests use small batches).
_BATCH_ROWS = int(os.environ.get("CHAINSLEUTH_ETL_BATCH_ROWS", "100000"))
_BATCH_BLOCKS = 1_000


# Row identity per table for deduplication (block column first: Bitcoin has
# duplicate txids in different blocks, BIP 30).
_DEDUP_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "ethereum": {
        "transactions": ("block_number", "hash"),
        "receipts": ("block_number", "transaction_hash"),
        "logs": ("block_number", "transaction_hash", "log_index"),
        "token_transfers": ("block_number", "transaction_hash", "log_index"),
        "traces": ("block_number", "trace_id"),
    },
    "bitcoin": {
        "transactions": ("block_number", "hash"),
        "inputs": ("block_number", "transaction_hash", "index"),
        "outputs": ("block_number", "transaction_hash", "index"),
    },
}


class _NeedExactParse(Exception):
    """A JSON number was read as a float; the line is re-read with Decimal."""


@dataclass
class EtlFile:
    path: Path
    table: str | None  # None: a stream file, routed by each item's ``type``
    fmt: str  # "csv" | "json"
    compressed: bool


def discover(path: Path) -> tuple[list[EtlFile], list[Path]]:
    """The recognised export files under ``path`` (sorted) and the files skipped."""
    if not path.exists():
        raise ConfigError(f"no such file or folder: {path}")
    candidates = (
        sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    )
    found: list[EtlFile] = []
    skipped: list[Path] = []
    for p in candidates:
        name = p.name.lower()
        compressed = name.endswith(".gz")
        stem = name[:-3] if compressed else name
        ext = os.path.splitext(stem)[1]
        fmt = _FORMATS.get(ext)
        if fmt is None:
            skipped.append(p)
            continue
        table = _table_from_name(os.path.splitext(stem)[0])
        if table is None:
            # export_all layout: <table>/start_block=.../end_block=.../file.csv
            for parent in p.relative_to(path).parents if path.is_dir() else []:
                if parent.name.lower() in _TABLE_NAMES:
                    table = parent.name.lower()
                    break
        if table is None and (fmt != "json" or not _looks_like_stream(p, compressed)):
            skipped.append(p)
            continue
        found.append(EtlFile(p, table, fmt, compressed))
    return found, skipped


def _table_from_name(stem: str) -> str | None:
    m = _TABLE_IN_NAME.search(stem)
    return m.group(1) if m else None


def _open_text(path: Path, compressed: bool) -> IO[str]:
    if compressed:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _looks_like_stream(path: Path, compressed: bool) -> bool:
    try:
        with _open_text(path, compressed) as fh:
            for line in fh:
                if line.strip():
                    item = orjson.loads(line)
                    return isinstance(item, dict) and (
                        item.get("type") in _STREAM_TYPES or item.get("type") in _STREAM_IGNORED
                    )
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return False


# -- reading rows -----------------------------------------------------------------------


def iter_rows(f: EtlFile) -> Iterator[tuple[int, dict[str, Any], str | None]]:
    """Yield ``(line, row, raw_json_line)`` for each record; malformed ones raise."""
    where = str(f.path)
    try:
        with _open_text(f.path, f.compressed) as fh:
            if f.fmt == "csv":
                reader = csv.reader(fh)
                try:
                    header = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    raise InputFileError(where, 1, f"bad CSV header: {exc}") from None
                width = len(header)
                while True:
                    try:
                        values = next(reader)
                    except StopIteration:
                        return
                    except csv.Error as exc:
                        raise InputFileError(where, reader.line_num, f"bad CSV: {exc}") from None
                    if not values:
                        continue
                    if len(values) != width:
                        raise InputFileError(
                            where, reader.line_num,
                            f"expected {width} columns (as in the header), found {len(values)}",
                        )
                    # blockchain-etl writes NULL as an empty field.
                    yield reader.line_num, {
                        k: (v if v != "" else None) for k, v in zip(header, values, strict=True)
                    }, None
            else:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        item = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        # orjson refuses integers beyond 64 bits; the stdlib reads them exactly.
                        item = _exact_json(where, lineno, line)
                    if not isinstance(item, dict):
                        raise InputFileError(where, lineno, "expected a JSON object per line")
                    yield lineno, item, line
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as exc:
        raise InputFileError(where, None, f"cannot read: {exc}") from None


def _exact_json(where: str, lineno: int, line: str) -> Any:
    try:
        return json.loads(line, parse_float=Decimal)
    except ValueError as exc:
        raise InputFileError(where, lineno, f"bad JSON: {exc}") from None


# -- value conversion -------------------------------------------------------------------


def parse_amount(value: Any, *, bigquery: bool = False) -> int | None:
    """An exact non-negative integer from an int, a decimal string or an exact float form.

    ``"1.23E+20"`` is accepted only from a BigQuery export (``bigquery``), whose
    NUMERIC renderer is exact; fractions, negatives and renderings that may have
    been rounded are refused with ValueError (rules above ``_FLOAT_SAFE_DIGITS``).
    """
    v = parse_integer(value, bigquery=bigquery)
    if v is not None and v < 0:
        raise ValueError(f"negative amount {value!r}")
    return v


def parse_integer(value: Any, *, bigquery: bool = False) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        raise _NeedExactParse
    if isinstance(value, Decimal):  # a JSON number with a fraction or exponent
        return _exact_decimal(value, str(value), exponent_text_ok=False)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        if text.lower().startswith("0x") and re.fullmatch(r"0[xX][0-9a-fA-F]+", text):
            return int(text, 16)
        try:
            dec = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"not a number: {value!r}") from None
        return _exact_decimal(dec, text, exponent_text_ok=bigquery)
    raise ValueError(f"not a number: {value!r}")


def _exact_decimal(dec: Decimal, text: str, exponent_text_ok: bool) -> int:
    if not dec.is_finite():
        raise ValueError(f"not a finite number: {text!r}")
    if dec != dec.to_integral_value():
        raise ValueError(f"not an integer: {text!r}")
    as_int = int(dec)
    if not exponent_text_ok:
        if abs(as_int) > _FLOAT_EXACT_MAX or "e" in text.lower():
            raise ValueError(
                f"{text!r} is in floating-point notation and may have lost precision (only BigQuery "
                "exports may write exponents, and floats are exact only up to 2**53); export the "
                "column as exact integers"
            )
        return as_int
    digits = len(dec.normalize().as_tuple().digits)
    if abs(as_int) > _FLOAT_EXACT_MAX and digits > _FLOAT_SAFE_DIGITS:
        raise ValueError(
            f"{text!r} is in floating-point notation with {digits} significant digits and may "
            "have lost precision; export the column as an exact integer (STRING/NUMERIC)"
        )
    return as_int


_TS_TEXT = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(\.\d{1,6})?\s*(UTC|Z|[+-]00:?00)?$"
)


def parse_timestamp(value: Any) -> int | None:
    """Epoch microseconds from epoch seconds or a UTC date-time string."""
    if value is None:
        return None
    if isinstance(value, str):
        m = _TS_TEXT.match(value.strip())
        if m:
            dt = datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}").replace(tzinfo=UTC)
            micros = int((m.group(3) or ".0")[1:].ljust(6, "0"))
            return int(dt.timestamp()) * 1_000_000 + micros
    seconds = parse_integer(value)
    assert seconds is not None
    return seconds * 1_000_000


def parse_bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def parse_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str):
        # ethereum-etl CSV joins topics with commas.
        return [t for t in value.split(",") if t] if value else []
    raise ValueError(f"not a list: {value!r}")


def parse_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        # ethereum-etl JSON writes trace_address as a list; CSV and BigQuery as "0,1".
        return ",".join(str(v) for v in value) or None
    if isinstance(value, dict):
        raise ValueError(f"unexpected object: {value!r}")
    return str(value)


# -- ERC-20 decoding --------------------------------------------------------------------


def decode_token_transfer(log: dict[str, Any]) -> dict[str, Any] | None:
    """A token_transfers row from an ERC-20 ``Transfer`` log row, else None.

    Uses the shared pure decoder of the RPC ingest so both sources agree (ERC-721
    transfers, whose third word is a token id, are left out there on purpose).
    """
    try:
        return log_row_to_token_transfer(log, log.get("block_timestamp"))
    except (ValueError, TypeError):
        return None  # data that is not whole 32-byte words: not an ERC-20 Transfer


# -- staging ----------------------------------------------------------------------------


def _converter(typ: str) -> Callable[[Any], Any]:
    base = typ.split()[0]
    if base == "HUGEINT":
        return parse_amount
    if base == "BIGINT":
        return parse_integer
    if base == "TIMESTAMP":
        return parse_timestamp
    if base == "BOOLEAN":
        return parse_bool
    if base == "VARCHAR[]":
        return parse_list
    return parse_text


@dataclass
class _Stage:
    """Parsed rows of one staging table, buffered column-wise and flushed to DuckDB."""

    con: duckdb.DuckDBPyConnection
    name: str
    columns: Columns
    converters: list[Callable[[Any], Any]] = field(init=False)
    buffer: dict[str, list[Any]] = field(init=False)
    rows: int = 0

    def __post_init__(self) -> None:
        self.converters = [_converter(t) for _, t in self.columns]
        self.buffer = {c: [] for c, _ in self.columns}
        cols = ", ".join(f'"{c}" {t.replace(" NOT NULL", "")}' for c, t in self.columns)
        self.con.execute(f'CREATE OR REPLACE TEMP TABLE "{self.name}" ({cols})')

    def add(self, converted: dict[str, Any]) -> None:
        for c, _ in self.columns:
            self.buffer[c].append(converted.get(c))
        self.rows += 1
        if len(self.buffer[self.columns[0][0]]) >= _CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        n = len(self.buffer[self.columns[0][0]])
        if n == 0:
            return
        arrays: dict[str, pa.Array] = {}
        exprs: list[str] = []
        for c, t in self.columns:
            base = t.split()[0]
            vals = self.buffer[c]
            if base == "HUGEINT":
                arrays[c] = pa.array([None if v is None else str(v) for v in vals], pa.string())
                exprs.append(f'CAST("{c}" AS HUGEINT) AS "{c}"')
            elif base == "TIMESTAMP":
                arrays[c] = pa.array(vals, pa.int64())
                exprs.append(f'make_timestamp("{c}") AS "{c}"')
            elif base == "BIGINT":
                arrays[c] = pa.array(vals, pa.int64())
                exprs.append(f'"{c}"')
            elif base == "BOOLEAN":
                arrays[c] = pa.array(vals, pa.bool_())
                exprs.append(f'"{c}"')
            elif base == "VARCHAR[]":
                arrays[c] = pa.array(vals, pa.list_(pa.string()))
                exprs.append(f'"{c}"')
            else:
                arrays[c] = pa.array(vals, pa.string())
                exprs.append(f'"{c}"')
        view = f"_cs_chunk_{self.name}"
        self.con.register(view, pa.table(arrays))
        try:
            self.con.execute(
                f'INSERT INTO "{self.name}" BY NAME SELECT {", ".join(exprs)} FROM {view}'
            )
        finally:
            self.con.unregister(view)
        self.buffer = {c: [] for c, _ in self.columns}


def _is_bigquery_row(row: dict[str, Any]) -> bool:
    """A row of a BigQuery export: its timestamp is rendered as ``YYYY-MM-DD HH:MM:SS[.f] UTC``
    (etl exports write epoch seconds)."""
    for col in ("block_timestamp", "timestamp"):
        value = row.get(col)
        if isinstance(value, str) and value.rstrip().endswith("UTC") and _TS_TEXT.match(value.strip()):
            return True
    return False


def _stage_name(table: str, derived: bool = False) -> str:
    return f"_cs_etl_{table}{'_derived' if derived else ''}"


class _Importer:
    def __init__(self, ledger: Ledger, family: Family, progress: Progress) -> None:
        self.ledger = ledger
        self.family = family
        self.progress = progress
        self.schema = TABLES[family]
        self.stages: dict[str, _Stage] = {
            t: _Stage(ledger.con, _stage_name(t), cols) for t, cols in self.schema.items()
        }
        self.derived: dict[str, _Stage] = {}
        if family == "ethereum":
            for t in ("receipts", "token_transfers"):
                self.derived[t] = _Stage(ledger.con, _stage_name(t, True), self.schema[t])

    def drop(self) -> None:
        for st in [*self.stages.values(), *self.derived.values()]:
            self.ledger.con.execute(f'DROP TABLE IF EXISTS "{st.name}"')

    # -- parse one file -------------------------------------------------------------
    def load(self, f: EtlFile) -> None:
        where = str(f.path)
        reported: set[str] = set()
        for lineno, row, raw in iter_rows(f):
            table = f.table
            if table is None or (raw is not None and table not in ("inputs", "outputs")
                                 and row.get("type") in _STREAM_TYPES):
                kind = row.get("type")
                if kind in _STREAM_IGNORED:
                    continue
                if kind not in _STREAM_TYPES:
                    raise InputFileError(where, lineno, f"unknown stream item type {kind!r}")
                table = _STREAM_TYPES[str(kind)]
            try:
                try:
                    self._add_row(table, row, reported, where)
                except _NeedExactParse:
                    assert raw is not None
                    self._add_row(table, _exact_json(where, lineno, raw), reported, where)
            except InputFileError:
                raise
            except (ValueError, TypeError, KeyError) as exc:
                raise InputFileError(where, lineno, f"{table}: {exc}") from None

    def _convert(self, table: str, row: dict[str, Any], defaults: dict[str, Any] | None = None,
                 derived: bool = False, bigquery: bool | None = None) -> dict[str, Any]:
        stage = (self.derived if derived else self.stages)[table]
        if bigquery is None:
            bigquery = _is_bigquery_row(row) or (defaults is not None and _is_bigquery_row(defaults))
        out: dict[str, Any] = {}
        for (col, typ), conv in zip(stage.columns, stage.converters, strict=True):
            raw = row.get(col)
            if raw is None and defaults:
                raw = defaults.get(col)
            try:
                if bigquery and conv in (parse_amount, parse_integer):
                    value = conv(raw, bigquery=True)
                else:
                    value = conv(raw)
            except _NeedExactParse:
                raise
            except ValueError as exc:
                raise ValueError(f"column {col}: {exc}") from None
            if value is None and "NOT NULL" in typ:
                raise ValueError(f"missing required column {col!r}")
            if typ.startswith("BIGINT") and value is not None:
                if not -_BIGINT_MAX <= value <= _BIGINT_MAX:
                    raise ValueError(f"column {col}: {value} out of range")
                if value < 0 and col not in _SIGNED:
                    raise ValueError(f"column {col}: negative value {value}")
            if typ.startswith("HUGEINT") and value is not None and value > HUGEINT_MAX:
                overflow = f"{col}_overflow"
                if overflow not in dict(stage.columns):
                    raise ValueError(f"column {col}: {value} exceeds the 128-bit range")
                out[overflow] = str(value)
                value = None
            out[col] = value
        return out

    def _report_extras(self, table: str, row: dict[str, Any], known: set[str],
                       reported: set[str], where: str) -> None:
        extra = set(row) - known - _BOOKKEEPING - reported
        if extra:
            reported |= extra
            self.progress.message(
                f"{where}: ignoring column(s) not in the {table} schema: {', '.join(sorted(extra))}"
            )

    def _add_row(self, table: str, row: dict[str, Any], reported: set[str], where: str) -> None:
        cols = {c for c, _ in self.schema[table]}
        if self.family == "bitcoin" and table == "transactions":
            self._add_bitcoin_transaction(row, reported, where)
            return
        known = set(cols)
        if table == "transactions" and self.family == "ethereum":
            known |= set(_RECEIPT_FIELDS)
        if table == "token_transfers":
            known |= {c.replace("_overflow", "") for c in cols}
        self._report_extras(table, row, known, reported, where)
        converted = self._convert(table, row)
        self.stages[table].add(converted)
        if self.family != "ethereum":
            return
        if table == "transactions" and any(k in row for k in _RECEIPT_FIELDS):
            receipt = {dst: row.get(src) for src, dst in _RECEIPT_FIELDS.items()}
            receipt.update(transaction_hash=row.get("hash"),
                           transaction_index=row.get("transaction_index"),
                           block_hash=row.get("block_hash"), block_number=row.get("block_number"))
            self.derived["receipts"].add(
                self._convert("receipts", receipt, derived=True, bigquery=_is_bigquery_row(row)))
        elif table == "logs":
            log = dict(row)
            log["topics"] = parse_list(row.get("topics"))
            tt = decode_token_transfer(log)
            if tt is not None:
                self.derived["token_transfers"].add(self._convert("token_transfers", tt, derived=True))

    def _add_bitcoin_transaction(self, row: dict[str, Any], reported: set[str], where: str) -> None:
        known = {c for c, _ in self.schema["transactions"]} | {"inputs", "outputs"}
        self._report_extras("transactions", row, known, reported, where)
        inputs = row.get("inputs")
        if isinstance(inputs, list) and any(
            isinstance(i, dict) and i.get("value") is None for i in inputs
        ):
            # bitcoin-etl writes input_value 0 (and a negative fee) for unenriched
            # inputs; the ledger fills both once the spent outputs are resolved.
            row = {k: v for k, v in row.items() if k not in ("input_value", "fee")}
        tx = self._convert("transactions", row)
        parent = {
            "transaction_hash": tx["hash"], "block_hash": row.get("block_hash"),
            "block_number": row.get("block_number"), "block_timestamp": row.get("block_timestamp"),
        }
        outputs = row.get("outputs")
        if isinstance(inputs, str) or isinstance(outputs, str):
            raise ValueError("nested inputs/outputs must be JSON lists (CSV cannot hold them)")
        for kind, items in (("inputs", inputs), ("outputs", outputs)):
            if items is None:
                continue
            if not isinstance(items, list):
                raise ValueError(f"{kind} must be a list")
            for item in items:
                if not isinstance(item, dict):
                    raise ValueError(f"{kind} entries must be objects")
                self._report_extras(kind, item, {c for c, _ in self.schema[kind]} | set(parent),
                                    reported, where)
                self.stages[kind].add(self._convert(kind, item, defaults=parent))
        self.stages["transactions"].add(tx)

    # -- after all files ----------------------------------------------------------------
    def finish_staging(self, root: str) -> list[str]:
        """Flush, pick derived tables, dedupe and cross-check. Returns the imported tables."""
        for st in [*self.stages.values(), *self.derived.values()]:
            st.flush()
        con = self.ledger.con
        for table, dst in self.derived.items():
            if self.stages[table].rows == 0 and dst.rows > 0:
                con.execute(f'INSERT INTO "{self.stages[table].name}" SELECT * FROM "{dst.name}"')
                self.stages[table].rows = dst.rows
                self.progress.message(
                    f"no {table} file: derived {dst.rows:,} {table} rows from "
                    + ("transactions' receipt_* fields" if table == "receipts"
                       else "ERC-20 Transfer logs")
                )
        imported = [t for t, st in self.stages.items() if st.rows > 0]
        if "blocks" in imported:
            name = self.stages["blocks"].name
            con.execute(f'CREATE OR REPLACE TEMP TABLE "{name}" AS SELECT DISTINCT * FROM "{name}"')
            bad = con.execute(
                f'SELECT number, count(*) FROM "{self.stages["blocks"].name}" '
                "GROUP BY number HAVING count(*) > 1 ORDER BY number LIMIT 1"
            ).fetchone()
            if bad:
                raise InputFileError(root, None, f"block {bad[0]} appears {bad[1]} times with different contents")
            # Fill block_hash/block_timestamp that a table's export left out.
            for table in imported:
                cols = dict(self.schema[table])
                sets = [f'"{c}" = coalesce(s."{c}", b.{src})'
                        for c, src in (("block_hash", "hash"), ("block_timestamp", "timestamp"))
                        if c in cols]
                if table == "blocks" or not sets:
                    continue
                con.execute(
                    f'UPDATE "{self.stages[table].name}" AS s SET {", ".join(sets)} '
                    f'FROM "{self.stages["blocks"].name}" AS b WHERE b.number = s.block_number '
                    f"AND (s.block_hash IS NULL{' OR s.block_timestamp IS NULL' if 'block_timestamp' in cols else ''})"
                )
        # The same rows may come twice (e.g. an ethereum-etl CSV without timestamps and
        # a BigQuery JSON with them): deduplicated after the fill, by key.
        for table in imported:
            if table != "blocks":
                self._dedupe(table, root)
        return imported

    def _dedupe(self, table: str, root: str) -> None:
        """Drop repeated rows; rows with the same key are merged column by column.

        A column NULL in one copy takes the other copy's value; two different values
        for one key are an error. Rows lacking a key column (geth traces without
        trace_id) are deduplicated on all columns.
        """
        con = self.ledger.con
        name = self.stages[table].name
        con.execute(f'CREATE OR REPLACE TEMP TABLE "{name}" AS SELECT DISTINCT * FROM "{name}"')
        keys = _DEDUP_KEYS[self.family].get(table)
        if not keys:
            return
        key_sql = ", ".join(f'"{k}"' for k in keys)
        has_key = " AND ".join(f'"{k}" IS NOT NULL' for k in keys)
        dup = con.execute(
            f'SELECT 1 FROM "{name}" WHERE {has_key} GROUP BY {key_sql} HAVING count(*) > 1 LIMIT 1'
        ).fetchone()
        if dup is None:
            return
        cols = [c for c, _ in self.schema[table]]
        others = [c for c in cols if c not in keys]
        differs = " OR ".join(f'count(DISTINCT "{c}") > 1' for c in others) or "false"
        which_cols = ", ".join(f"CASE WHEN count(DISTINCT \"{c}\") > 1 THEN '{c}' END" for c in others)
        clash = con.execute(
            f'SELECT {key_sql}, [{which_cols}] '
            f'FROM "{name}" WHERE {has_key} GROUP BY {key_sql} HAVING {differs} LIMIT 1'
        ).fetchone()
        if clash is not None:
            which = ", ".join(c for c in clash[-1] if c)
            key_text = ", ".join(f"{k}={v}" for k, v in zip(keys, clash[:-1], strict=True))
            raise InputFileError(root, None, f"{table} row {key_text} appears twice with different {which}")
        merged = ", ".join(f'"{c}"' if c in keys else f'max("{c}") AS "{c}"' for c in cols)
        plain = ", ".join(f'"{c}"' for c in cols)
        con.execute(
            f'CREATE OR REPLACE TEMP TABLE "{name}" AS '
            f'SELECT {plain} FROM "{name}" WHERE NOT ({has_key}) '
            f'UNION ALL SELECT {merged} FROM "{name}" WHERE {has_key} GROUP BY {key_sql}'
        )

    def plan(self, chain: str, imported: list[str]) -> tuple[list[tuple[int, int]], int, dict[int, int]]:
        """Block ranges to write, blocks skipped as already stored, rows per block."""
        con = self.ledger.con
        staged_counts = " UNION ALL ".join(
            f"SELECT '{t}' AS t, \"{block_column(t)}\" AS n, count(*) AS c "
            f'FROM "{self.stages[t].name}" GROUP BY 2' for t in imported
        )
        con.execute(f"CREATE OR REPLACE TEMP TABLE _cs_etl_counts AS {staged_counts}")
        stored_counts = " UNION ALL ".join(
            f"SELECT '{t}' AS t, s.\"{block_column(t)}\" AS n, count(*) AS c "
            f'FROM "{chain}"."{t}" s WHERE s."{block_column(t)}" IN '
            f"(SELECT n FROM _cs_etl_counts) GROUP BY 2" for t in imported
        )
        hash_check = ""
        if "blocks" in imported:
            hash_check = (
                f' UNION SELECT b.number FROM "{self.stages["blocks"].name}" b '
                f'JOIN "{chain}".blocks s ON s.number = b.number WHERE s.hash <> b.hash'
            )
        rows = con.execute(
            f"""WITH stored AS ({stored_counts}),
                    mismatch AS (
                        SELECT DISTINCT c.n FROM _cs_etl_counts c
                        LEFT JOIN stored s ON s.t = c.t AND s.n = c.n
                        WHERE s.c IS DISTINCT FROM c.c {hash_check})
                SELECT c.n, sum(c.c)::BIGINT, bool_or(m.n IS NOT NULL)
                FROM _cs_etl_counts c LEFT JOIN mismatch m ON m.n = c.n
                GROUP BY c.n ORDER BY c.n"""
        ).fetchall()
        con.execute("DROP TABLE IF EXISTS _cs_etl_counts")
        if not rows:
            return [], 0, {}
        lo_all, hi_all = rows[0][0], rows[-1][0]
        # Stored blocks a batch range must not cover (they are not rewritten here).
        stored_numbers: set[int] = set()
        for t in imported:
            col = block_column(t)
            stored_numbers.update(
                r[0] for r in con.execute(
                    f'SELECT DISTINCT "{col}" FROM "{chain}"."{t}" WHERE "{col}" BETWEEN ? AND ?',
                    [lo_all, hi_all],
                ).fetchall()
            )
        to_write = [(int(n), int(c)) for n, c, w in rows if w]
        skipped = sum(1 for _, _, w in rows if not w)
        protected = sorted(stored_numbers - {n for n, _ in to_write})
        ranges: list[tuple[int, int]] = []
        per_block = dict(to_write)
        p = 0
        start = prev = None
        batch_rows = batch_blocks = 0
        for n, c in to_write:
            while p < len(protected) and protected[p] <= n:
                p += 1
            crosses = prev is not None and p > 0 and protected[p - 1] > prev
            if start is not None and prev is not None and (
                crosses or batch_rows + c > _BATCH_ROWS or batch_blocks >= _BATCH_BLOCKS
            ):
                ranges.append((start, prev))
                start = None
            if start is None:
                start, batch_rows, batch_blocks = n, 0, 0
            prev = n
            batch_rows += c
            batch_blocks += 1
        if start is not None and prev is not None:
            ranges.append((start, prev))
        return ranges, skipped, per_block

    def write(self, chain: str, imported: list[str], ranges: list[tuple[int, int]],
              per_block: dict[int, int], result: IngestResult) -> None:
        con = self.ledger.con
        numbers = sorted(per_block)
        for lo, hi in ranges:
            tables: dict[str, pa.Table] = {}
            for t in imported:
                cols = self.schema[t]
                select = ", ".join(
                    f'CAST("{c}" AS VARCHAR) AS "{c}"' if typ.startswith("HUGEINT") else f'"{c}"'
                    for c, typ in cols
                )
                tables[t] = con.sql(
                    f'SELECT {select} FROM "{self.stages[t].name}" '
                    f'WHERE "{block_column(t)}" BETWEEN $lo AND $hi', params={"lo": lo, "hi": hi}
                ).to_arrow_table()
            written = self.ledger.write_batch(
                chain, tables, (lo, hi), replace=True, replace_tables=imported
            )
            result.add_rows(written)
            blocks = bisect.bisect_right(numbers, hi) - bisect.bisect_left(numbers, lo)
            txs = written.get("transactions", 0)
            result.blocks += blocks
            result.transactions += txs
            result.first_block = lo if result.first_block is None else min(result.first_block, lo)
            result.last_block = hi if result.last_block is None else max(result.last_block, hi)
            self.progress.advance(blocks, txs)


# -- family detection -------------------------------------------------------------------

_BITCOIN_MARKS = {"merkle_root", "bits", "coinbase_param", "inputs", "outputs", "is_coinbase",
                  "input_count", "output_count", "spent_transaction_hash", "script_hex"}
_ETHEREUM_MARKS = {"parent_hash", "miner", "gas_limit", "from_address", "to_address", "gas",
                   "gas_price", "logs_bloom"}


def _peek_columns(f: EtlFile) -> set[str]:
    for _, row, _ in iter_rows(f):
        return set(row)
    return set()


def detect_family(files: list[EtlFile]) -> Family | None:
    """bitcoin-etl vs ethereum-etl, from table names and then from column sets."""
    votes: set[Family] = set()
    for f in files:
        if f.table in ("receipts", "logs", "token_transfers", "traces"):
            votes.add("ethereum")
        elif f.table in ("inputs", "outputs"):
            votes.add("bitcoin")
        else:
            cols = _peek_columns(f)
            if cols & _BITCOIN_MARKS:
                votes.add("bitcoin")
            elif cols & _ETHEREUM_MARKS:
                votes.add("ethereum")
    if len(votes) > 1:
        raise ConfigError("the files mix bitcoin-etl and ethereum-etl exports; import them separately")
    return next(iter(votes)) if votes else None


def _check_family(files: list[EtlFile], family: Family) -> None:
    found = detect_family(files)
    if found is not None and found != family:
        raise ConfigError(f"the files look like {found} exports but the chain is {family}")


# -- entry point ------------------------------------------------------------------------


def ingest_etl_files(
    ledger: Ledger,
    path: str | os.PathLike[str],
    *,
    chain: str,
    family: str | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """Import blockchain-etl / BigQuery exports from a file or folder into ``chain``.

    Every row is validated before anything is written; a malformed row raises
    :class:`InputFileError` with its file and line and leaves the store as it was.
    """
    progress = progress if progress is not None else NullProgress()
    root = Path(path)
    result = IngestResult(chain=chain)
    files, skipped = discover(root)
    if skipped and root.is_dir():
        progress.message(f"skipped {len(skipped)} file(s) that are not etl exports")
    if not files:
        raise ConfigError(f"no blockchain-etl export files (blocks, transactions, ...) in {root}")
    registered = {c["name"]: c["family"] for c in ledger.chains()}
    fam: Family
    if chain in registered:
        fam = registered[chain]
        if family is not None and family != fam:
            raise ConfigError(f"chain {chain!r} holds {fam} data, not {family}")
        _check_family(files, fam)
    elif family is not None:
        if family not in FAMILIES:
            raise ConfigError(f"--family must be one of {', '.join(FAMILIES)}")
        fam = family
        _check_family(files, fam)
    else:
        detected = detect_family(files)
        if detected is None:
            raise ConfigError("cannot tell bitcoin-etl from ethereum-etl files; pass --family")
        fam = detected

    importer = _Importer(ledger, fam, progress)
    try:
        progress.message(f"reading {len(files)} file(s)")
        for f in files:
            importer.load(f)
        imported = importer.finish_staging(str(root))
        if not imported:
            progress.message("the files hold no rows")
            return result.finish()
        ledger.ensure_chain(chain, fam)
        ranges, result.skipped_blocks, per_block = importer.plan(chain, imported)
        progress.start(f"etl import into {chain}", len(per_block))
        importer.write(chain, imported, ranges, per_block, result)
    finally:
        importer.drop()
    return result.finish()
