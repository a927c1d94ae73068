"""Columnar batches that heuristics read, and the evidence rows they return.

A :class:`UtxoBatch` is a block range of a UTXO chain's ``transfers`` view in
CSR form: transactions in chain order, their ``input`` legs and ``output`` legs
as flat arrays with per-transaction offsets. Addresses are dense int64 ids from
the registry (-1: no address, e.g. an unresolved prevout or OP_RETURN).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]

# Script type codes derived from the address text (see ADDRESS_TYPE_SQL).
TYPE_UNKNOWN, TYPE_P2PKH, TYPE_P2SH, TYPE_P2WPKH, TYPE_P2WSH, TYPE_P2TR, TYPE_MULTISIG = range(7)

# Address format -> script type; legacy mainnet/testnet prefixes and bech32 by length
# (BIP 173: a v0 P2WPKH program is 20 bytes, P2WSH 32; BIP 350: v1 is Taproot).
ADDRESS_TYPE_SQL = """CASE
    WHEN {a} IS NULL THEN 0
    WHEN {a} LIKE 'multisig:%' THEN 6
    WHEN regexp_matches({a}, '^(bc|tb|bcrt|ltc|tltc|rltc)1q') AND length({a}) - length(split_part({a}, '1', 1)) <= 40 THEN 3
    WHEN regexp_matches({a}, '^(bc|tb|bcrt|ltc|tltc|rltc)1q') THEN 4
    WHEN regexp_matches({a}, '^(bc|tb|bcrt|ltc|tltc|rltc)1p') THEN 5
    WHEN regexp_matches({a}, '^[1mnLM]') THEN 1
    WHEN regexp_matches({a}, '^[23Q]') THEN 2
    ELSE 0 END"""


@dataclass
class UtxoBatch:
    """Transactions ``0..n_tx-1`` of a block range with their inputs and outputs."""

    tx_hash: npt.NDArray[np.object_]
    tx_block: I64
    tx_coinbase: Bool
    in_ptr: I64  # n_tx + 1 offsets into in_*
    in_addr: I64
    in_value: I64  # satoshi; -1 when unknown
    in_type: I8
    in_prev_peel: Bool  # the spent coin came from a 1-input, 2-output transaction
    out_ptr: I64
    out_addr: I64
    out_value: I64
    out_type: I8
    out_fresh: Bool  # the address is first seen in this transaction
    out_position: I64 = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def n_tx(self) -> int:
        return int(self.tx_block.shape[0])

    @classmethod
    def build(
        cls,
        tx_hash: list[str] | npt.NDArray[np.object_],
        tx_block: list[int] | I64,
        inputs: list[list[tuple[int, int]]] | list[list[tuple[int, int, int]]],
        outputs: list[list[tuple[int, int]]] | list[list[tuple[int, int, int]]],
        coinbase: list[bool] | None = None,
    ) -> UtxoBatch:
        """Small batches by hand (tests, docs): per tx a list of ``(addr, value[, type])``."""
        n = len(tx_hash)

        def flat(rows: list[list[tuple[int, ...]]]) -> tuple[I64, I64, I64, I8]:
            ptr = np.zeros(n + 1, np.int64)
            ptr[1:] = np.cumsum([len(r) for r in rows])
            addr = np.array([x[0] for r in rows for x in r], np.int64)
            val = np.array([x[1] for r in rows for x in r], np.int64)
            typ = np.array([x[2] if len(x) > 2 else TYPE_P2PKH for r in rows for x in r], np.int8)
            return ptr, addr, val, typ

        ip, ia, iv, it = flat(inputs)  # type: ignore[arg-type]
        op, oa, ov, ot = flat(outputs)  # type: ignore[arg-type]
        return cls(
            tx_hash=np.array(tx_hash, dtype=object),
            tx_block=np.asarray(tx_block, np.int64),
            tx_coinbase=np.asarray(coinbase if coinbase is not None else [False] * n, np.bool_),
            in_ptr=ip, in_addr=ia, in_value=iv, in_type=it,
            in_prev_peel=np.zeros(ia.shape[0], np.bool_),
            out_ptr=op, out_addr=oa, out_value=ov, out_type=ot,
            out_fresh=np.zeros(oa.shape[0], np.bool_),
            out_position=np.concatenate([np.arange(len(r)) for r in outputs]).astype(np.int64)
            if oa.shape[0] else np.zeros(0, np.int64),
        )


@dataclass
class Evidence:
    """Evidence rows ``(address_a, address_b, transaction, heuristic, confidence)``.

    ``tx`` indexes the batch's transactions; addresses are registry ids.
    """

    tx: I64
    a: I64
    b: I64
    confidence: F64
    heuristic: npt.NDArray[np.object_]

    @classmethod
    def empty(cls) -> Evidence:
        z = np.zeros(0, np.int64)
        return cls(z, z, z, np.zeros(0, np.float64), np.zeros(0, dtype=object))

    @classmethod
    def of(cls, tx: I64, a: I64, b: I64, confidence: F64 | float, heuristic: str | npt.NDArray[np.object_]) -> Evidence:
        n = tx.shape[0]
        conf = np.broadcast_to(np.asarray(confidence, np.float64), (n,)).copy()
        if isinstance(heuristic, str):
            names = np.empty(n, dtype=object)
            names[:] = heuristic
        else:
            names = heuristic
        return cls(tx.astype(np.int64), a.astype(np.int64), b.astype(np.int64), conf, names)

    def __len__(self) -> int:
        return int(self.tx.shape[0])

    @staticmethod
    def concat(parts: list[Evidence]) -> Evidence:
        """Join evidence sets, ordered by transaction (stable within one)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return Evidence.empty()
        tx = np.concatenate([p.tx for p in parts])
        order = np.argsort(tx, kind="stable")
        return Evidence(
            tx[order],
            np.concatenate([p.a for p in parts])[order],
            np.concatenate([p.b for p in parts])[order],
            np.concatenate([p.confidence for p in parts])[order],
            np.concatenate([p.heuristic for p in parts])[order],
        )
