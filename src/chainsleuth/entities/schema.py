"""The ``entities`` schema: address registry, clusters, evidence, tags, runs.

Global tables (one set for all chains, keyed by ``chain``) created on first use.
Columns beyond the shared contract (``address_id``/``first_*`` on the registry,
``id_a``/``id_b``/``block_number`` on the evidence) let a run reload its state
without string joins and roll back cleanly after a reorg.
"""

from __future__ import annotations

import duckdb

SCHEMA = "entities"

DDL = [
    f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"',
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.addresses (
        chain VARCHAR NOT NULL, address VARCHAR NOT NULL, address_id BIGINT NOT NULL,
        first_block BIGINT, first_transaction_hash VARCHAR)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.address_clusters (
        chain VARCHAR NOT NULL, address VARCHAR NOT NULL, cluster_id BIGINT NOT NULL,
        address_id BIGINT NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.cluster_evidence (
        chain VARCHAR NOT NULL, cluster_id BIGINT NOT NULL,
        address_a VARCHAR NOT NULL, address_b VARCHAR NOT NULL,
        transaction_hash VARCHAR, block_number BIGINT, heuristic VARCHAR NOT NULL,
        confidence DOUBLE, id_a BIGINT NOT NULL, id_b BIGINT NOT NULL, run_id BIGINT)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.clusters (
        chain VARCHAR NOT NULL, cluster_id BIGINT NOT NULL, size BIGINT NOT NULL,
        first_seen TIMESTAMP, last_seen TIMESTAMP, received HUGEINT, sent HUGEINT,
        transaction_count BIGINT)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.transaction_tags (
        chain VARCHAR NOT NULL, transaction_hash VARCHAR NOT NULL, tag VARCHAR NOT NULL,
        confidence DOUBLE, details VARCHAR, block_number BIGINT)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.runs (
        chain VARCHAR NOT NULL, run_id BIGINT NOT NULL, mode VARCHAR,
        first_block BIGINT, last_block BIGINT, settings JSON,
        started_at TIMESTAMP, finished_at TIMESTAMP, unions BIGINT,
        refused_merges BIGINT, supercluster_merges BIGINT)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.refused_merges (
        chain VARCHAR NOT NULL, run_id BIGINT NOT NULL,
        address_a VARCHAR, address_b VARCHAR, transaction_hash VARCHAR, block_number BIGINT,
        heuristic VARCHAR, size_a BIGINT, size_b BIGINT, refused BOOLEAN)""",
    # Deposit addresses (Victor 2020, entities/deposit.py): D forwards (nearly) all it gets
    # to one sink E that sweeps several such D. Rewritten by each account-chain run.
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.deposit_addresses (
        chain VARCHAR NOT NULL, address VARCHAR NOT NULL, sink VARCHAR NOT NULL,
        first_forward_tx VARCHAR, first_forward_block BIGINT, n_forwards BIGINT,
        heuristic VARCHAR NOT NULL, confidence DOUBLE, run_id BIGINT)""",
    # Hash of every block a run has processed: a changed or missing hash is a reorg.
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.processed_blocks (
        chain VARCHAR NOT NULL, number BIGINT NOT NULL, hash VARCHAR)""",
]


def ensure_entities_schema(con: duckdb.DuckDBPyConnection) -> None:
    for stmt in DDL:
        con.execute(stmt).fetchall()


def entities_schema_exists(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = ? AND table_name = 'address_clusters'",
        [SCHEMA],
    ).fetchone()
    return bool(row and row[0])
