"""The tag store tables (schema ``tags`` in the ledger file) and their bulk writer.

An import is one transaction: the previous rows of the same source (same kind and
path, or same kind and content hash) are deleted, the new rows inserted from Arrow
columns, and the ``tags.imports`` row written. A failed import leaves the store as it was.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..store import Ledger

SCHEMA = "tags"

TAG_COLUMNS: dict[str, pa.DataType] = {
    "tag_id": pa.int64(),
    "currency": pa.string(),
    "address": pa.string(),
    "label": pa.string(),
    "category": pa.string(),
    "confidence": pa.string(),
    "confidence_level": pa.int32(),
    "actor": pa.string(),
    "source": pa.string(),
    "source_url": pa.string(),
    "valid_from": pa.date32(),
    "is_abuse": pa.bool_(),
    "context": pa.string(),
    "import_id": pa.int64(),
    # beyond the shared contract: what a GraphSense round trip needs
    "abuse": pa.string(),
    "concepts": pa.list_(pa.string()),
    "is_cluster_definer": pa.bool_(),
    "lastmod": pa.date32(),
}

DDL = [
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.imports (
        import_id BIGINT PRIMARY KEY, kind VARCHAR NOT NULL, path VARCHAR NOT NULL,
        sha256 VARCHAR NOT NULL, rows BIGINT NOT NULL,
        imported_at TIMESTAMP DEFAULT current_timestamp, warnings JSON)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.tags (
        tag_id BIGINT, currency VARCHAR NOT NULL, address VARCHAR NOT NULL, label VARCHAR,
        category VARCHAR, confidence VARCHAR NOT NULL, confidence_level INTEGER NOT NULL,
        actor VARCHAR, source VARCHAR, source_url VARCHAR, valid_from DATE,
        is_abuse BOOLEAN NOT NULL, context JSON, import_id BIGINT NOT NULL,
        abuse VARCHAR, concepts VARCHAR[], is_cluster_definer BOOLEAN, lastmod DATE)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.actors (
        actor_id VARCHAR NOT NULL, label VARCHAR, parent_id VARCHAR, uri VARCHAR,
        categories VARCHAR[], jurisdictions VARCHAR[], context JSON, import_id BIGINT)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.actor_aliases (
        actor_id VARCHAR NOT NULL, alias VARCHAR NOT NULL, import_id BIGINT)""",
]


def ensure_schema(ledger: Ledger) -> None:
    for stmt in DDL:
        ledger.con.execute(stmt)


def table_exists(ledger: Ledger, schema: str, table: str) -> bool:
    return ledger.has_table(schema, table)


@dataclass
class TagColumns:
    """Column lists of tag rows being built by an importer (one list per column)."""

    cols: dict[str, list[Any]] = field(default_factory=lambda: {c: [] for c in TAG_COLUMNS})

    def __len__(self) -> int:
        return len(self.cols["address"])

    def add(self, **values: Any) -> None:
        for name, col in self.cols.items():
            if name in ("tag_id", "import_id"):
                continue
            col.append(values.get(name))

    def extend(self, other: TagColumns) -> None:
        for name, col in self.cols.items():
            col.extend(other.cols[name])

    def to_arrow(self, import_id: int, first_tag_id: int) -> pa.Table:
        n = len(self)
        data = dict(self.cols)
        data["tag_id"] = list(range(first_tag_id, first_tag_id + n))
        data["import_id"] = [import_id] * n
        data["context"] = [
            c if c is None or isinstance(c, str) else json.dumps(c, sort_keys=True, default=str)
            for c in data["context"]
        ]
        return pa.table({k: pa.array(data[k], type=t) for k, t in TAG_COLUMNS.items()})


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def write_import(
    ledger: Ledger,
    kind: str,
    path: Path,
    tags: TagColumns,
    *,
    actors: Sequence[Mapping[str, Any]] = (),
    warnings: Sequence[str] = (),
) -> int:
    """Replace the previous import of this source by ``tags``/``actors``; returns import_id."""
    ensure_schema(ledger)
    con = ledger.con
    sha = file_sha256(path)
    key = str(path.resolve())
    con.execute("BEGIN TRANSACTION")
    try:
        old = [
            r[0]
            for r in con.execute(
                f"SELECT import_id FROM {SCHEMA}.imports WHERE kind = ? AND (path = ? OR sha256 = ?)",
                [kind, key, sha],
            ).fetchall()
        ]
        for table in ("tags", "actors", "actor_aliases", "imports"):
            if old:
                con.execute(
                    f"DELETE FROM {SCHEMA}.{table} WHERE import_id IN ({','.join('?' * len(old))})",
                    old,
                )
        row = con.execute(
            f"SELECT coalesce(max(import_id), 0) + 1 FROM {SCHEMA}.imports"
        ).fetchone()
        import_id = int(row[0]) if row else 1
        row = con.execute(f"SELECT coalesce(max(tag_id), 0) + 1 FROM {SCHEMA}.tags").fetchone()
        first_tag = int(row[0]) if row else 1
        arrow = tags.to_arrow(import_id, first_tag)  # noqa: F841 - read by DuckDB's replacement scan
        con.execute(f"INSERT INTO {SCHEMA}.tags SELECT * FROM arrow")
        if actors:
            actor_rows = pa.table({  # noqa: F841 - read by DuckDB's replacement scan
                "actor_id": [str(a["id"]) for a in actors],
                "label": [a.get("label") for a in actors],
                "parent_id": [a.get("parent") for a in actors],
                "uri": [a.get("uri") for a in actors],
                "categories": [list(a.get("categories") or []) for a in actors],
                "jurisdictions": [list(a.get("jurisdictions") or []) for a in actors],
                "context": [json.dumps(a.get("context") or {}, sort_keys=True, default=str) for a in actors],
                "import_id": [import_id] * len(actors),
            })  # fmt: skip
            con.execute(f"INSERT INTO {SCHEMA}.actors SELECT * FROM actor_rows")
            alias_ids: list[str] = []
            alias_names: list[str] = []
            for a in actors:
                names = {str(x).lower().strip() for x in a.get("aliases") or [] if str(x).strip()}
                names |= {str(a["id"]).lower(), str(a.get("label") or a["id"]).lower()}
                alias_ids += [str(a["id"])] * len(names)
                alias_names += sorted(names)
            alias_rows = pa.table({"actor_id": alias_ids, "alias": alias_names,  # noqa: F841
                                   "import_id": [import_id] * len(alias_ids)})  # fmt: skip
            con.execute(f"INSERT INTO {SCHEMA}.actor_aliases SELECT * FROM alias_rows")
        con.execute(
            f"INSERT INTO {SCHEMA}.imports (import_id, kind, path, sha256, rows, warnings) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [import_id, kind, key, sha, len(tags) + len(actors), json.dumps(list(warnings))],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return import_id
