"""The foundation demo: ingest real blocks from the shared data and summarise them.

Until the heist lab lands (a later issue), the README's main job is this smaller
real run: the real Bitcoin mainnet/testnet blocks in ``raw_blocks/`` through the
raw-file parser, and two real Ethereum mainnet blocks (May 2023: 298
transactions, 291 token transfers) from ethereum-etl's exports, then a summary
computed from the ledger with SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .ingest.base import IngestResult, NullProgress, Progress
from .ingest.blk_files import ingest_blk_files
from .ingest.etl_files import ingest_etl_files
from .store import Ledger

# Real blocks (hadoopcryptoledger test data, see shared/data/PROVENANCE.md), with the
# height where neither genesis linkage nor BIP34 gives it. ``block176149.blk`` is
# mainnet block 176,149 (version 1, before BIP34). ``version1.blk`` (a 2010 block)
# and ``multiblock.blk`` (which holds it) have no knowable height offline; skipped.
BITCOIN_MAINNET_FILES: list[tuple[str, int | None]] = [
    ("genesis.blk", None),
    ("block176149.blk", 176149),
    ("version2.blk", None),
    ("version3.blk", None),
    ("version4.blk", None),
    ("scriptwitness.blk", None),
]
BITCOIN_TESTNET_FILES = ["testnet3genesis.blk"]
ETHEREUM_ETL_EXPORT = "ethereum_etl_test_resources/test_stream/blocks_17173049_17173050"


@dataclass
class DemoSummary:
    results: list[IngestResult] = field(default_factory=list)
    bitcoin_by_type: list[dict[str, Any]] = field(default_factory=list)
    bitcoin_largest: list[dict[str, Any]] = field(default_factory=list)
    bitcoin_conservation: dict[str, Any] = field(default_factory=dict)
    ethereum_by_kind: list[dict[str, Any]] = field(default_factory=list)
    ethereum_top_tokens: list[dict[str, Any]] = field(default_factory=list)


def _rows(ledger: Ledger, sql: str) -> list[dict[str, Any]]:
    rel = ledger.con.execute(sql)
    names = [d[0] for d in rel.description]
    return [dict(zip(names, r, strict=True)) for r in rel.fetchall()]


def run_demo(ledger: Ledger, data: Path, progress: Progress | None = None) -> DemoSummary:
    """Ingest the real demo data into ``ledger`` and compute the summary."""
    progress = progress or NullProgress()
    raw = data / "raw_blocks"
    if not raw.is_dir():
        raise ConfigError(f"{raw} not found: set CHAINSLEUTH_DATA to the shared data folder")
    out = DemoSummary()
    for name, height in BITCOIN_MAINNET_FILES:
        out.results.append(
            ingest_blk_files(ledger, [raw / name], network="mainnet", chain="bitcoin",
                             first_height=height, progress=progress)
        )
    out.results.append(
        ingest_blk_files(ledger, [raw / f for f in BITCOIN_TESTNET_FILES], network="testnet",
                         chain="bitcoin_testnet", progress=progress)
    )
    out.results.append(
        ingest_etl_files(ledger, data / ETHEREUM_ETL_EXPORT, chain="ethereum", progress=progress)
    )

    out.bitcoin_by_type = _rows(ledger, """
        SELECT type, count(*) AS outputs, sum(value) AS satoshi
        FROM bitcoin.outputs GROUP BY type ORDER BY outputs DESC""")
    out.bitcoin_largest = _rows(ledger, """
        SELECT to_address AS address, amount AS satoshi, block_number, transaction_hash
        FROM bitcoin.transfers WHERE kind = 'output' AND to_address IS NOT NULL
        ORDER BY amount DESC LIMIT 5""")
    out.bitcoin_conservation = _rows(ledger, """
        WITH per_tx AS (
          SELECT transaction_hash,
                 sum(CASE WHEN kind = 'input' THEN amount END) AS inputs,
                 sum(CASE WHEN kind = 'output' THEN amount END) AS outputs,
                 coalesce(sum(CASE WHEN kind = 'fee' THEN amount END), 0) AS fee,
                 count(*) FILTER (WHERE kind = 'input' AND amount IS NULL) AS unresolved
          FROM bitcoin.transfers GROUP BY transaction_hash)
        SELECT count(*) FILTER (WHERE inputs IS NOT NULL AND unresolved = 0) AS resolved_spends,
               count(*) FILTER (WHERE unresolved > 0) AS spends_with_unknown_prevouts,
               count(*) FILTER (WHERE inputs IS NOT NULL AND unresolved = 0
                                AND inputs <> outputs + fee) AS violations
        FROM per_tx""")[0]
    out.ethereum_by_kind = _rows(ledger, """
        SELECT kind, CASE WHEN asset = 'ETH' THEN 'ETH' ELSE 'tokens' END AS asset,
               count(*) AS legs,
               sum(CASE WHEN asset = 'ETH' THEN amount END) AS wei
        FROM ethereum.transfers GROUP BY ALL ORDER BY legs DESC""")
    out.ethereum_top_tokens = _rows(ledger, """
        SELECT asset AS token, count(*) AS transfers, count(DISTINCT from_address) AS senders,
               count(DISTINCT to_address) AS receivers
        FROM ethereum.transfers WHERE kind = 'token'
        GROUP BY asset ORDER BY transfers DESC LIMIT 5""")
    return out
