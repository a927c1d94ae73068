"""The multi-input (co-spend) heuristic.

Sources: Nakamoto (2008), *Bitcoin*, §10 "Privacy" ("multi-input transactions ...
necessarily reveal that their inputs were owned by the same owner"); Reid &
Harrigan (2011), *An Analysis of Anonymity in the Bitcoin System*; Meiklejohn et
al. (2013), *A Fistful of Bitcoins*, Heuristic 1; BlockSci (Kalodner et al. 2020)
``cluster`` with the default multi-input rule.

False positives: transactions built jointly by several owners (CoinJoin and
PayJoin/P2EP, where the receiver adds an input; shared-custody services signing
for many users; exchanges batching user coins). CoinJoins that match a detector
in :mod:`.coinjoin` are excluded by the caller; PayJoins are undetectable by
design and remain a known source of false merges.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .batch import I64, Bool, Evidence, UtxoBatch

HEURISTIC = "multi_input"
CONFIDENCE = 1.0  # a signature per input: certain unless a joint transaction


@njit(cache=True, nogil=True)
def _cospend_pairs(in_ptr: I64, in_addr: I64, skip: Bool) -> tuple[I64, I64, I64]:
    n_tx = in_ptr.shape[0] - 1
    total = 0
    for t in range(n_tx):
        if not skip[t]:
            total += max(in_ptr[t + 1] - in_ptr[t] - 1, 0)
    tx = np.empty(total, np.int64)
    a = np.empty(total, np.int64)
    b = np.empty(total, np.int64)
    k = 0
    for t in range(n_tx):
        if skip[t]:
            continue
        anchor = -1
        for j in range(in_ptr[t], in_ptr[t + 1]):
            x = in_addr[j]
            if x < 0:
                continue
            if anchor < 0:
                anchor = x
            elif x != anchor:
                tx[k] = t
                a[k] = anchor
                b[k] = x
                k += 1
    return tx[:k], a[:k], b[:k]


def multi_input(batch: UtxoBatch, exclude: Bool | None = None) -> Evidence:
    """Evidence joining every input address of a transaction to its first one.

    ``exclude`` marks transactions to skip (detected CoinJoins). Repeated
    addresses yield repeated pairs; the union-find keeps only the unions that
    join two different sets, so the stored evidence is a spanning forest.
    """
    skip = batch.tx_coinbase.copy() if exclude is None else (batch.tx_coinbase | exclude)
    tx, a, b = _cospend_pairs(batch.in_ptr, batch.in_addr, skip)
    return Evidence.of(tx, a, b, CONFIDENCE, HEURISTIC)
