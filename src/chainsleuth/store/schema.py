"""The canonical ledger schema.

Table and column names follow blockchain-etl (bitcoin-etl, ethereum-etl) and the
BigQuery ``crypto_*`` public datasets, so that exports of either load unchanged
and queries written for BigQuery read naturally here. Each chain lives in its
own DuckDB schema (``bitcoin``, ``bitcoin_regtest``, ``ethereum_anvil``, ...).

Amounts are exact integers in base units (satoshi, wei, token units) stored as
``HUGEINT`` (signed 128-bit). Bitcoin-family values are uint64 on the wire and
always fit. Ethereum ``value`` fields are uint256: a value that does not fit is
stored as NULL with its exact decimal digits in the ``<column>_overflow``
column, so it is kept exactly and is flagged rather than truncated.

Additions to blockchain-etl's columns are few and named here:
``blocks.previous_block_hash`` (Bitcoin; for reorg detection) and the
``*_overflow`` columns.
"""

from __future__ import annotations

from typing import Literal

Family = Literal["bitcoin", "ethereum"]
FAMILIES: tuple[Family, ...] = ("bitcoin", "ethereum")

# Largest value a HUGEINT column holds; larger amounts go to *_overflow.
HUGEINT_MAX = (1 << 127) - 1
HUGEINT_MIN = -(1 << 127)

Columns = list[tuple[str, str]]

BITCOIN_TABLES: dict[str, Columns] = {
    "blocks": [
        ("hash", "VARCHAR NOT NULL"),
        ("size", "BIGINT"),
        ("stripped_size", "BIGINT"),
        ("weight", "BIGINT"),
        ("number", "BIGINT NOT NULL"),
        ("version", "BIGINT"),
        ("merkle_root", "VARCHAR"),
        ("timestamp", "TIMESTAMP"),
        ("nonce", "VARCHAR"),
        ("bits", "VARCHAR"),
        ("coinbase_param", "VARCHAR"),
        ("transaction_count", "BIGINT"),
        ("previous_block_hash", "VARCHAR"),
    ],
    "transactions": [
        ("hash", "VARCHAR NOT NULL"),
        ("size", "BIGINT"),
        ("virtual_size", "BIGINT"),
        ("version", "BIGINT"),
        ("lock_time", "BIGINT"),
        ("block_hash", "VARCHAR"),
        ("block_number", "BIGINT NOT NULL"),
        ("block_timestamp", "TIMESTAMP"),
        ("index", "BIGINT"),
        ("is_coinbase", "BOOLEAN"),
        ("input_count", "BIGINT"),
        ("output_count", "BIGINT"),
        ("input_value", "HUGEINT"),
        ("output_value", "HUGEINT"),
        ("fee", "HUGEINT"),
    ],
    "inputs": [
        ("transaction_hash", "VARCHAR NOT NULL"),
        ("block_hash", "VARCHAR"),
        ("block_number", "BIGINT NOT NULL"),
        ("block_timestamp", "TIMESTAMP"),
        ("index", "BIGINT NOT NULL"),
        ("spent_transaction_hash", "VARCHAR"),
        ("spent_output_index", "BIGINT"),
        ("script_asm", "VARCHAR"),
        ("script_hex", "VARCHAR"),
        ("sequence", "BIGINT"),
        ("witness", "VARCHAR[]"),
        # The spent output's script type, addresses and value (resolved prevout).
        ("required_signatures", "BIGINT"),
        ("type", "VARCHAR"),
        ("addresses", "VARCHAR[]"),
        ("value", "HUGEINT"),
    ],
    "outputs": [
        ("transaction_hash", "VARCHAR NOT NULL"),
        ("block_hash", "VARCHAR"),
        ("block_number", "BIGINT NOT NULL"),
        ("block_timestamp", "TIMESTAMP"),
        ("index", "BIGINT NOT NULL"),
        ("script_asm", "VARCHAR"),
        ("script_hex", "VARCHAR"),
        ("required_signatures", "BIGINT"),
        ("type", "VARCHAR"),
        ("addresses", "VARCHAR[]"),
        ("value", "HUGEINT"),
    ],
}

ETHEREUM_TABLES: dict[str, Columns] = {
    "blocks": [
        ("number", "BIGINT NOT NULL"),
        ("hash", "VARCHAR NOT NULL"),
        ("parent_hash", "VARCHAR"),
        ("nonce", "VARCHAR"),
        ("sha3_uncles", "VARCHAR"),
        ("logs_bloom", "VARCHAR"),
        ("transactions_root", "VARCHAR"),
        ("state_root", "VARCHAR"),
        ("receipts_root", "VARCHAR"),
        ("miner", "VARCHAR"),
        ("difficulty", "HUGEINT"),
        ("total_difficulty", "HUGEINT"),
        ("size", "BIGINT"),
        ("extra_data", "VARCHAR"),
        ("gas_limit", "BIGINT"),
        ("gas_used", "BIGINT"),
        ("timestamp", "TIMESTAMP"),
        ("transaction_count", "BIGINT"),
        ("base_fee_per_gas", "HUGEINT"),
        ("withdrawals_root", "VARCHAR"),
        ("blob_gas_used", "BIGINT"),
        ("excess_blob_gas", "BIGINT"),
    ],
    "transactions": [
        ("hash", "VARCHAR NOT NULL"),
        ("nonce", "BIGINT"),
        ("block_hash", "VARCHAR"),
        ("block_number", "BIGINT NOT NULL"),
        ("transaction_index", "BIGINT"),
        ("from_address", "VARCHAR"),
        ("to_address", "VARCHAR"),
        ("value", "HUGEINT"),
        ("value_overflow", "VARCHAR"),
        ("gas", "BIGINT"),
        ("gas_price", "HUGEINT"),
        ("input", "VARCHAR"),
        ("block_timestamp", "TIMESTAMP"),
        ("max_fee_per_gas", "HUGEINT"),
        ("max_priority_fee_per_gas", "HUGEINT"),
        ("transaction_type", "BIGINT"),
    ],
    "receipts": [
        ("transaction_hash", "VARCHAR NOT NULL"),
        ("transaction_index", "BIGINT"),
        ("block_hash", "VARCHAR"),
        ("block_number", "BIGINT NOT NULL"),
        ("cumulative_gas_used", "BIGINT"),
        ("gas_used", "BIGINT"),
        ("contract_address", "VARCHAR"),
        ("root", "VARCHAR"),
        ("status", "BIGINT"),
        ("effective_gas_price", "HUGEINT"),
    ],
    "logs": [
        ("log_index", "BIGINT NOT NULL"),
        ("transaction_hash", "VARCHAR NOT NULL"),
        ("transaction_index", "BIGINT"),
        ("block_hash", "VARCHAR"),
        ("block_number", "BIGINT NOT NULL"),
        ("address", "VARCHAR"),
        ("data", "VARCHAR"),
        ("topics", "VARCHAR[]"),
    ],
    "token_transfers": [
        ("token_address", "VARCHAR NOT NULL"),
        ("from_address", "VARCHAR"),
        ("to_address", "VARCHAR"),
        ("value", "HUGEINT"),
        ("value_overflow", "VARCHAR"),
        ("transaction_hash", "VARCHAR NOT NULL"),
        ("log_index", "BIGINT NOT NULL"),
        ("block_number", "BIGINT NOT NULL"),
        ("block_hash", "VARCHAR"),
        ("block_timestamp", "TIMESTAMP"),
    ],
    "traces": [
        ("block_number", "BIGINT NOT NULL"),
        ("transaction_hash", "VARCHAR"),
        ("transaction_index", "BIGINT"),
        ("from_address", "VARCHAR"),
        ("to_address", "VARCHAR"),
        ("value", "HUGEINT"),
        ("value_overflow", "VARCHAR"),
        ("input", "VARCHAR"),
        ("output", "VARCHAR"),
        ("trace_type", "VARCHAR"),
        ("call_type", "VARCHAR"),
        ("reward_type", "VARCHAR"),
        ("gas", "BIGINT"),
        ("gas_used", "BIGINT"),
        ("subtraces", "BIGINT"),
        ("trace_address", "VARCHAR"),
        ("error", "VARCHAR"),
        ("status", "BIGINT"),
        ("trace_id", "VARCHAR"),
        ("block_hash", "VARCHAR"),
        ("block_timestamp", "TIMESTAMP"),
    ],
}

TABLES: dict[Family, dict[str, Columns]] = {
    "bitcoin": BITCOIN_TABLES,
    "ethereum": ETHEREUM_TABLES,
}

# The column of each table that holds the block height (for range deletes / rollback).
BLOCK_COLUMN = {"blocks": "number"}

# Native asset symbol per well-known chain name prefix; others default by family.
NATIVE_ASSET: dict[Family, str] = {"bitcoin": "BTC", "ethereum": "ETH"}


def block_column(table: str) -> str:
    return BLOCK_COLUMN.get(table, "block_number")


def table_ddl(schema: str, table: str, columns: Columns) -> str:
    cols = ",\n  ".join(f'"{name}" {typ}' for name, typ in columns)
    return f'CREATE TABLE IF NOT EXISTS "{schema}"."{table}" (\n  {cols}\n)'


def split_amount(value: int | None) -> tuple[int | None, str | None]:
    """Return ``(hugeint_value, overflow_text)`` for an exact integer amount.

    A value that fits a HUGEINT is returned as is with no overflow text; a larger
    one (uint256 token amounts can be) is returned as ``(None, "<decimal digits>")``.
    """
    if value is None:
        return None, None
    if HUGEINT_MIN <= value <= HUGEINT_MAX:
        return value, None
    return None, str(value)
