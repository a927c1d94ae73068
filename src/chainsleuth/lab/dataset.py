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
from ..progress import NullProgress, Progress
from ..store import Ledger
from ..store.parquet import export_parquet, import_parquet
from ..store.schema import TABLES, block_column
from ..tags.store import ensure_schema as ensure_tags_schema
from ..tags.store import table_exists

EXTRA_SCHEMAS = ("lab", "tags", "flows")
FORMAT = "chainsleuth-lab-dataset"
TAG_TABLES = ("tags", "actors", "actor_aliases", "imports")
# columns naming the chain of a flows row; a row belongs to the dataset when one names its chain
CHAIN_COLUMNS = ("chain", "src_chain", "dst_chain")


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


def _chain_manifests(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The dataset's chain folders and their manifests (checked before anything is written)."""
    out: list[tuple[Path, dict[str, Any]]] = []
    for mpath in sorted(directory.glob("*/manifest.json")):
        try:
            m = json.loads(mpath.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputFileError(str(mpath), None, f"unreadable chain manifest: {exc}") from exc
        family = m.get("family")
        if not isinstance(m.get("chain"), str) or family not in TABLES:
            raise InputFileError(str(mpath), None, "not a chainsleuth chain export (chain or family missing)")
        missing = [t for t in TABLES[family] if not (mpath.parent / f"{t}.parquet").is_file()]
        if missing:
            raise InputFileError(str(mpath.parent / f"{missing[0]}.parquet"), None, "missing table file of the export")
        out.append((mpath.parent, m))
    return out


def _trim_chain(ledger: Ledger, manifest: dict[str, Any]) -> None:
    """Delete the rows of a dataset chain outside the exported block range: import_parquet
    replaces the range itself, so together the chain ends up exactly as exported."""
    chain, family = manifest["chain"], manifest["family"]
    if chain not in {c["name"] for c in ledger.chains()}:
        return
    lo, hi = int(manifest.get("first_block") or 0), manifest.get("last_block")
    con = ledger.con
    con.execute("BEGIN TRANSACTION")
    try:
        for table in TABLES[family]:
            col = block_column(table)
            if hi is None:  # an empty export: the dataset's chain has no rows
                con.execute(f'DELETE FROM "{chain}"."{table}"')
            else:
                con.execute(f'DELETE FROM "{chain}"."{table}" WHERE "{col}" < ? OR "{col}" > ?', [lo, int(hi)])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _in_list(values: list[Any]) -> str:
    return ", ".join("?" * len(values))


def _load_tags(ledger: Ledger, tables: list[dict[str, Any]], directory: Path) -> None:
    """Replace the dataset's own tag imports (its ``tags.imports`` kinds, e.g. ``heist-lab``)
    and keep every other import: the dataset's import and tag ids are shifted past the ones
    the ledger keeps, so a user's tags neither collide nor vanish."""
    con = ledger.con
    by_name = {t["table"]: t for t in tables}
    imports = by_name.get("imports")
    kinds = [r[0] for r in con.execute(
        f"SELECT DISTINCT kind FROM read_parquet('{_sql_str(_table_file(directory, 'tags', 'imports'))}')"
    ).fetchall()] if imports else []  # fmt: skip
    owned = [r[0] for r in con.execute(
        f"SELECT import_id FROM tags.imports WHERE kind IN ({_in_list(kinds)})", kinds).fetchall()] if kinds else []
    for table in ("tags", "actors", "actor_aliases", "imports", *sorted(set(by_name) - set(TAG_TABLES))):
        if owned and table_exists(ledger, "tags", table) and _has_column(ledger, "tags", table, "import_id"):
            con.execute(f'DELETE FROM tags."{table}" WHERE import_id IN ({_in_list(owned)})', owned)
    row = con.execute("SELECT greatest((SELECT coalesce(max(import_id), 0) FROM tags.imports), "
                      "(SELECT coalesce(max(import_id), 0) FROM tags.tags))").fetchone()  # fmt: skip
    import_offset = int(row[0]) if row else 0
    row = con.execute("SELECT coalesce(max(tag_id), 0) FROM tags.tags").fetchone()
    tag_offset = int(row[0]) if row else 0
    for t in tables:
        shift = {"import_id": import_offset, "tag_id": tag_offset}
        if not any(c == "import_id" for c, _ in t["columns"]):
            con.execute(f'DELETE FROM tags."{t["table"]}"')  # not per import: the dataset's table replaces it
        _insert(ledger, directory, t, shift)


def _has_column(ledger: Ledger, schema: str, table: str, column: str) -> bool:
    row = ledger.con.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = ? AND table_name = ? AND column_name = ?",
        [schema, table, column]).fetchone()  # fmt: skip
    return bool(row and row[0])


def _table_file(directory: Path, schema: str, table: str) -> Path:
    return directory / "_schemas" / f"{schema}.{table}.parquet"


def _create(ledger: Ledger, t: dict[str, Any]) -> None:
    ddl = ", ".join(f'"{c}" {typ}' for c, typ in t["columns"])
    ledger.con.execute(f'CREATE SCHEMA IF NOT EXISTS "{t["schema"]}"')
    ledger.con.execute(f'CREATE TABLE IF NOT EXISTS "{t["schema"]}"."{t["table"]}" ({ddl})')


def _insert(ledger: Ledger, directory: Path, t: dict[str, Any], shift: dict[str, int] | None = None) -> None:
    """Append the dataset's rows of one table (ids in ``shift`` moved up by their offset)."""
    _create(ledger, t)
    cols = t["columns"]
    names = ", ".join(f'"{c}"' for c, _ in cols)
    exprs = []
    for c, typ in cols:
        cast = f'CAST("{c}" AS {typ})'
        exprs.append(f'{cast} + {int(shift[c])} AS "{c}"' if shift and c in shift else f'{cast} AS "{c}"')
    path = _table_file(directory, t["schema"], t["table"])
    ledger.con.execute(f'INSERT INTO "{t["schema"]}"."{t["table"]}" ({names}) SELECT {", ".join(exprs)} '
                       f"FROM read_parquet('{_sql_str(path)}')")  # fmt: skip


def _load_flows(ledger: Ledger, tables: list[dict[str, Any]], directory: Path, chains: list[str]) -> None:
    """Replace the flows rows of the dataset's chains (a bridge row counts when either end
    is one of them); rows of other chains stay."""
    for t in tables:
        _create(ledger, t)
        present = [c for c in CHAIN_COLUMNS if _has_column(ledger, "flows", t["table"], c)]
        if present and chains:
            cond = " OR ".join(f'"{c}" IN ({_in_list(chains)})' for c in present)
            ledger.con.execute(f'DELETE FROM flows."{t["table"]}" WHERE {cond}', chains * len(present))
        elif not present:
            ledger.con.execute(f'DELETE FROM flows."{t["table"]}"')  # not per chain: the dataset's table replaces it
        _insert(ledger, directory, t)


def load_dataset(ledger: Ledger, directory: str | Path, progress: Progress | None = None) -> dict[str, int]:
    """Load a folder written by :func:`export_dataset` into ``ledger``; returns rows per
    ``schema.table``.

    Only what the dataset owns is replaced: its chains (exactly the exported rows), the
    ``lab`` schema, the tag imports of the dataset's own kinds (``heist-lab``) and the
    ``flows`` rows of its chains. A user's other tags, chains and flows stay, and loading
    twice gives the same ledger. Every file is checked before anything is written; each
    chain, then the schemas, is applied in one transaction.
    """
    directory = Path(directory)
    progress = progress or NullProgress()
    spec_path = directory / "_schemas" / "tables.json"
    try:
        spec = json.loads(spec_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputFileError(str(spec_path), None, f"not a lab dataset: {exc}") from exc
    if spec.get("format") != FORMAT:
        raise InputFileError(str(spec_path), None, "not a chainsleuth lab dataset")
    tables: list[dict[str, Any]] = spec["tables"]
    for t in tables:
        if t["schema"] not in EXTRA_SCHEMAS:
            raise InputFileError(str(spec_path), None, f"unexpected schema {t['schema']!r} in the dataset")
        if not _table_file(directory, t["schema"], t["table"]).is_file():
            raise InputFileError(str(_table_file(directory, t["schema"], t["table"])), None, "missing table file")
    manifests = _chain_manifests(directory)
    chains = [m["chain"] for _, m in manifests]

    progress.start(f"load {directory.name}", sum(int(m.get("rows", {}).get("blocks", 0)) for _, m in manifests))
    counts: dict[str, int] = {}
    for folder, m in manifests:
        _trim_chain(ledger, m)
        counts.update({f"{c}.{t}": n for (c, t), n in import_parquet(ledger, folder).items()})
        rows = m.get("rows", {})
        progress.advance(int(rows.get("blocks", 0)), int(rows.get("transactions", 0)))

    ensure_tags_schema(ledger)
    con = ledger.con
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute('DROP SCHEMA IF EXISTS "lab" CASCADE')  # the dataset owns the ground truth whole
        for t in tables:
            if t["schema"] == "lab":
                _insert(ledger, directory, t)
        _load_tags(ledger, [t for t in tables if t["schema"] == "tags"], directory)
        _load_flows(ledger, [t for t in tables if t["schema"] == "flows"], directory, chains)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    counts.update({f"{t['schema']}.{t['table']}": int(t["rows"]) for t in tables})
    return counts
