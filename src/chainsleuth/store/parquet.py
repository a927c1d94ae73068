"""Parquet export and import of a chain's tables.

Layout: ``DIR/<chain>/<table>.parquet`` plus ``DIR/<chain>/manifest.json`` with
the chain's family, network, native asset, block range and row counts.

DuckDB writes HUGEINT to Parquet as DOUBLE, which would lose exactness, so
amounts are written as DECIMAL(38,0); an amount of 10^38 or more moves to its
``*_overflow`` text column (and a column without one refuses to export rather
than round).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb

from ..errors import InputFileError, StoreError
from .ledger import Ledger
from .schema import TABLES, block_column

FORMAT_VERSION = 1
_DEC_LIMIT = "100000000000000000000000000000000000000"  # 10^38


def _export_select(chain: str, table: str, columns: list[tuple[str, str]]) -> str:
    names = {n for n, _ in columns}
    exprs = []
    for name, typ in columns:
        base = typ.split()[0]
        if base == "HUGEINT":
            big = f'abs("{name}") >= CAST(\'{_DEC_LIMIT}\' AS HUGEINT)'
            if f"{name}_overflow" in names:
                exprs.append(
                    f'CASE WHEN {big} THEN NULL ELSE CAST("{name}" AS DECIMAL(38,0)) END AS "{name}"'
                )
            else:
                exprs.append(f'CAST("{name}" AS DECIMAL(38,0)) AS "{name}"')
        elif name.endswith("_overflow") and name[: -len("_overflow")] in names:
            v = name[: -len("_overflow")]
            big = f'abs("{v}") >= CAST(\'{_DEC_LIMIT}\' AS HUGEINT)'
            exprs.append(f'coalesce("{name}", CASE WHEN {big} THEN CAST("{v}" AS VARCHAR) END) AS "{name}"')
        else:
            exprs.append(f'"{name}"')
    order = block_column(table)
    return f'SELECT {", ".join(exprs)} FROM "{chain}"."{table}" ORDER BY "{order}"'


def export_parquet(
    ledger: Ledger, directory: str | Path, chains: list[str] | None = None
) -> list[tuple[Path, int]]:
    """Write every table of ``chains`` (default all) to Parquet. Returns (path, rows)."""
    directory = Path(directory)
    known = {c["name"]: c for c in ledger.chains()}
    chosen = chains or sorted(known)
    for name in chosen:
        if name not in known:
            ledger.family(name)  # raises the clear unknown-chain error
    written: list[tuple[Path, int]] = []
    for name in chosen:
        info = known[name]
        out = directory / name
        out.mkdir(parents=True, exist_ok=True)
        counts: dict[str, int] = {}
        for table, cols in TABLES[info["family"]].items():
            path = out / f"{table}.parquet"
            try:
                ledger.con.execute(
                    f"COPY ({_export_select(name, table, cols)}) TO '{_sql_str(path)}' "
                    "(FORMAT parquet, COMPRESSION zstd)"
                )
            except duckdb.Error as exc:
                raise StoreError(f"cannot export {name}.{table}: {exc}") from exc
            counts[table] = ledger.count(name, table)
            written.append((path, counts[table]))
        rng = ledger.con.execute(f'SELECT min(number), max(number) FROM "{name}".blocks').fetchone()
        manifest = {
            "format": "chainsleuth-parquet",
            "version": FORMAT_VERSION,
            "chain": name,
            "family": info["family"],
            "network": info["network"],
            "native_asset": info["native_asset"],
            "first_block": rng[0] if rng else None,
            "last_block": rng[1] if rng else None,
            "rows": counts,
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return written


def _import_expr(name: str, typ: str, names: set[str]) -> str:
    """Cast back to the store type; overflow text that fits a HUGEINT moves back."""
    base = typ.split()[0]
    if base == "HUGEINT" and f"{name}_overflow" in names:
        return f'coalesce(CAST("{name}" AS HUGEINT), TRY_CAST("{name}_overflow" AS HUGEINT)) AS "{name}"'
    if name.endswith("_overflow") and name[: -len("_overflow")] in names:
        return f'CASE WHEN TRY_CAST("{name}" AS HUGEINT) IS NULL THEN "{name}" END AS "{name}"'
    return f'CAST("{name}" AS {base}) AS "{name}"'


def _sql_str(path: Path) -> str:
    return str(path).replace("'", "''")


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputFileError(str(path), None, f"unreadable manifest: {exc}") from exc
    if manifest.get("format") != "chainsleuth-parquet":
        raise InputFileError(str(path), None, "not a chainsleuth Parquet export manifest")
    for key in ("chain", "family"):
        if key not in manifest:
            raise InputFileError(str(path), None, f"manifest lacks {key!r}")
    return manifest


def import_parquet(ledger: Ledger, directory: str | Path) -> dict[tuple[str, str], int]:
    """Load a folder written by :func:`export_parquet` (one or many chains).

    Each chain is applied in one transaction: the stored rows of the exported
    block range are replaced, so importing twice changes nothing.
    """
    directory = Path(directory)
    manifests = sorted(directory.glob("*/manifest.json"))
    if (directory / "manifest.json").exists():
        manifests = [directory / "manifest.json"]
    if not manifests:
        raise InputFileError(str(directory), None, "no chainsleuth Parquet export here (no manifest.json)")
    counts: dict[tuple[str, str], int] = {}
    for mpath in manifests:
        m = _read_manifest(mpath)
        chain, family = m["chain"], m["family"]
        if family not in TABLES:
            raise InputFileError(str(mpath), None, f"unknown family {family!r}")
        ledger.ensure_chain(chain, family, network=m.get("network"), native_asset=m.get("native_asset"))
        files = {t: mpath.parent / f"{t}.parquet" for t in TABLES[family]}
        missing = [str(p) for p in files.values() if not p.exists()]
        if missing:
            raise InputFileError(missing[0], None, "missing table file of the export")
        ledger.con.execute("BEGIN TRANSACTION")
        try:
            union = " UNION ".join(
                f"SELECT DISTINCT \"{block_column(t)}\" AS number FROM read_parquet('{_sql_str(p)}')"
                for t, p in files.items()
            )
            ledger.con.execute(f"CREATE OR REPLACE TEMP TABLE _cs_import_blocks AS {union}")
            for table, path in files.items():
                cols = TABLES[family][table]
                # replace exactly the exported blocks: a sparse export must not wipe the gaps
                ledger.con.execute(
                    f'DELETE FROM "{chain}"."{table}" WHERE "{block_column(table)}" IN '
                    "(SELECT number FROM _cs_import_blocks)"
                )
                exprs = ", ".join(_import_expr(n, t, {c for c, _ in cols}) for n, t in cols)
                ledger.con.execute(
                    f"""INSERT INTO "{chain}"."{table}" BY NAME
                        SELECT {exprs} FROM read_parquet('{_sql_str(path)}')"""
                )
                counts[(chain, table)] = int(
                    ledger.con.execute(f"SELECT count(*) FROM read_parquet('{_sql_str(path)}')").fetchall()[0][0]
                )
            ledger.con.execute("DROP TABLE IF EXISTS _cs_import_blocks")
            ledger.con.execute("COMMIT")
        except duckdb.Error as exc:
            ledger.con.execute("ROLLBACK")
            raise InputFileError(str(mpath.parent), None, f"import failed, nothing applied: {exc}") from exc
        except BaseException:
            ledger.con.execute("ROLLBACK")
            raise
    return counts
