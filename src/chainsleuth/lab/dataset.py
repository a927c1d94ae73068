"""Export and load a lab ledger as a Parquet dataset (the shipped demo data).

Layout: the chains as :func:`chainsleuth.store.parquet.export_parquet` writes them
(``DIR/<chain>/*.parquet`` + ``manifest.json``) and the other schemas (``lab``,
``tags``, ``flows``) under ``DIR/_schemas/<schema>.<table>.parquet`` with
``_schemas/tables.json`` naming every table's columns and types. HUGEINT is
written as DECIMAL(38,0) (exact; DuckDB would write DOUBLE) and cast back on load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import InputFileError
from ..store import Ledger
from ..store.parquet import export_parquet, import_parquet

EXTRA_SCHEMAS = ("lab", "tags", "flows")
FORMAT = "chainsleuth-lab-dataset"


def _sql_str(path: Path) -> str:
    return str(path).replace("'", "''")


def export_dataset(ledger: Ledger, directory: str | Path) -> list[tuple[Path, int]]:
    """Write the chains and the ``lab``/``tags``/``flows`` schemas of ``ledger`` to ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = export_parquet(ledger, directory)
    extra = directory / "_schemas"
    extra.mkdir(exist_ok=True)
    for old in extra.glob("*.parquet"):
        old.unlink()
    tables: list[dict[str, Any]] = []
    for schema in EXTRA_SCHEMAS:
        names = [r[0] for r in ledger.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE' "
            "ORDER BY table_name", [schema]).fetchall()]
        for table in names:
            cols = ledger.con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
                "AND table_name = ? ORDER BY ordinal_position", [schema, table]).fetchall()
            exprs = [f'CAST("{c}" AS DECIMAL(38,0)) AS "{c}"' if t == "HUGEINT" else f'"{c}"' for c, t in cols]
            path = extra / f"{schema}.{table}.parquet"
            ledger.con.execute(f'COPY (SELECT {", ".join(exprs)} FROM "{schema}"."{table}") '
                               f"TO '{_sql_str(path)}' (FORMAT parquet, COMPRESSION zstd)")
            row = ledger.con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()
            n = int(row[0]) if row else 0
            tables.append({"schema": schema, "table": table, "rows": n, "columns": [[c, t] for c, t in cols]})
            written.append((path, n))
    (extra / "tables.json").write_text(json.dumps({"format": FORMAT, "version": 1, "tables": tables}, indent=1))
    return written


def load_dataset(ledger: Ledger, directory: str | Path) -> dict[str, int]:
    """Load a folder written by :func:`export_dataset` into ``ledger`` (chains and schemas);
    each extra table is replaced. Returns rows per ``schema.table``."""
    directory = Path(directory)
    spec_path = directory / "_schemas" / "tables.json"
    try:
        spec = json.loads(spec_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputFileError(str(spec_path), None, f"not a lab dataset: {exc}") from exc
    if spec.get("format") != FORMAT:
        raise InputFileError(str(spec_path), None, "not a chainsleuth lab dataset")
    counts = {f"{c}.{t}": n for (c, t), n in import_parquet(ledger, directory).items()}
    con = ledger.con
    con.execute("BEGIN TRANSACTION")
    try:
        for t in spec["tables"]:
            schema, table, cols = t["schema"], t["table"], t["columns"]
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            ddl = ", ".join(f'"{c}" {typ}' for c, typ in cols)
            con.execute(f'CREATE TABLE IF NOT EXISTS "{schema}"."{table}" ({ddl})')
            con.execute(f'DELETE FROM "{schema}"."{table}"')
            path = directory / "_schemas" / f"{schema}.{table}.parquet"
            names = ", ".join(f'"{c}"' for c, _ in cols)
            casts = ", ".join(f'CAST("{c}" AS {typ}) AS "{c}"' for c, typ in cols)
            con.execute(f'INSERT INTO "{schema}"."{table}" ({names}) SELECT {casts} '
                        f"FROM read_parquet('{_sql_str(path)}')")
            counts[f"{schema}.{table}"] = int(t["rows"])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return counts
