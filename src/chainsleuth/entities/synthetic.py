"""Build small UTXO ledgers from a compact description (tests, examples, harnesses).

Everything goes through :meth:`Ledger.write_batch`, so the ledger resolves the
inputs' addresses and values from the stored outputs exactly as for real data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..store import Ledger


@dataclass
class Tx:
    """A transaction: ``inputs`` spend ``(txid, output index)``; ``outputs`` pay
    ``(address or None for OP_RETURN, satoshi)``. No inputs = coinbase."""

    txid: str
    inputs: list[tuple[str, int]] = field(default_factory=list)
    outputs: list[tuple[str | None, int]] = field(default_factory=list)


def write_utxo_blocks(
    ledger: Ledger,
    chain: str,
    blocks: Sequence[Sequence[Tx]],
    *,
    first_height: int = 0,
    block_time: int = 1_500_000_000,
    hash_prefix: str = "b",
) -> None:
    """Write ``blocks`` (a list of blocks, each a list of transactions) at
    heights ``first_height, first_height + 1, ...`` (one batch per block)."""
    ledger.ensure_chain(chain, "bitcoin", network="regtest")
    for k, txs in enumerate(blocks):
        h = first_height + k
        bh = f"{hash_prefix}{h}"
        ts = block_time + 600 * h
        tables: dict[str, dict[str, list[Any]]] = {
            "blocks": {"number": [h], "hash": [bh], "timestamp": [ts],
                       "transaction_count": [len(txs)],
                       "previous_block_hash": [f"{hash_prefix}{h - 1}" if h else None]},
            "transactions": {k2: [] for k2 in ("hash", "block_number", "block_hash", "block_timestamp",
                                                "index", "is_coinbase", "input_count",
                                                "output_count", "output_value")},
            "outputs": {k2: [] for k2 in ("transaction_hash", "block_number", "block_hash",
                                           "block_timestamp", "index", "type", "addresses",
                                           "value", "required_signatures")},
            "inputs": {k2: [] for k2 in ("transaction_hash", "block_number", "block_hash",
                                          "block_timestamp", "index", "spent_transaction_hash",
                                          "spent_output_index")},
        }
        for i, tx in enumerate(txs):
            t = tables["transactions"]
            row: tuple[tuple[str, Any], ...] = (("hash", tx.txid), ("block_number", h), ("block_hash", bh),
                           ("block_timestamp", ts), ("index", i),
                           ("is_coinbase", not tx.inputs), ("input_count", len(tx.inputs)),
                           ("output_count", len(tx.outputs)),
                           ("output_value", sum(v for _, v in tx.outputs)))
            for col, v in row:
                t[col].append(v)
            for j, (addr, value) in enumerate(tx.outputs):
                o = tables["outputs"]
                orow: tuple[tuple[str, Any], ...] = (
                               ("transaction_hash", tx.txid), ("block_number", h),
                               ("block_hash", bh), ("block_timestamp", ts), ("index", j),
                               ("type", "nulldata" if addr is None else "pubkeyhash"),
                               ("addresses", [] if addr is None else [addr]), ("value", value),
                               ("required_signatures", None if addr is None else 1))
                for col, v in orow:
                    o[col].append(v)
            for j, (prev, idx) in enumerate(tx.inputs):
                n = tables["inputs"]
                for col, v in (("transaction_hash", tx.txid), ("block_number", h),
                               ("block_hash", bh), ("block_timestamp", ts), ("index", j),
                               ("spent_transaction_hash", prev), ("spent_output_index", idx)):
                    n[col].append(v)
        if not tables["inputs"]["transaction_hash"]:
            del tables["inputs"]
        ledger.write_batch(chain, tables, (h, h))
