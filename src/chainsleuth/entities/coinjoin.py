"""CoinJoin detection: tag the transaction and exclude it from co-spend clustering.

A CoinJoin has inputs of several owners, so the multi-input heuristic would merge
strangers. Each detector below is a compiled pass over a :class:`UtxoBatch` that
returns one boolean per transaction; :func:`detect_coinjoins` applies them in
order of specificity and returns one tag per transaction.

Detectors and their sources:

* ``coinjoin:whirlpool`` - Samourai Whirlpool mix: exactly 5 inputs and 5 outputs,
  all outputs of one pool denomination (0.001, 0.01, 0.05, 0.5 BTC; Samourai's
  Whirlpool docs), every input at least that value. Port of the rule in Dumplings
  (nopara73) as used by BlockSci's ``isWhirlpoolCoinJoin``.
* ``whirlpool:tx0`` - the Tx0 that enters a pool: an OP_RETURN output (the
  coordinator's encrypted fee payload), at least one premix output of equal
  value slightly above a pool denomination (denomination + mix miner fee, up to
  1%), and a coordinator fee output of at most 5% of the denomination (Samourai
  "Whirlpool Tx0" docs). A Tx0 is one owner's transaction: it is tagged but NOT
  excluded from co-spend.
* ``coinjoin:wasabi2`` - WabiSabi (Wasabi 2.0; Ficsór et al. 2021 "WabiSabi:
  Centrally Coordinated CoinJoins with Variable Amounts"): Dumplings' rule as
  ported to BlockSci ``isWasabi2CoinJoin``: >= 50 inputs, inputs and outputs
  all native segwit (P2WPKH/P2TR), both sorted by value descending, and more
  than 80% of outputs at a standard denomination (powers of 2, 3, 2x3^n, and the
  1-2-5 series, 5,000 sat to 1,343.75 BTC).
* ``coinjoin:wasabi1`` - Wasabi 1.x (ZeroLink, Ficsór 2017): at least 10 equal
  outputs at the round's base denomination of about 0.1 BTC (0.08-0.12 BTC), at
  least as many inputs (Dumplings; Stockinger et al. 2024 "Pitfalls of
  CoinJoin heuristics"). Higher mixing levels (2x, 4x the base) are not needed
  for detection: the base level is always present.
* ``coinjoin:joinmarket`` - JoinMarket (Belcher; Möser & Böhme 2017 "Anonymous
  alone?"): n >= 2 equal outputs plus n-1 or n change outputs, at least n inputs
  from at least n distinct addresses, and every input and output of one script
  type (JoinMarket wallets are single-type).
* ``coinjoin:generic`` - BlockSci ``isCoinjoin`` (Kalodner et al. 2020, after
  Goldfeder et al.): >= 2 inputs, >= 3 outputs, participants p = (outputs+1)//2
  with p <= inputs and p <= distinct input addresses, the most common output
  value occurring exactly p times, and that value not dust (546, 2730 sat).

False positives: exchange or payroll batches paying several equal amounts
(e.g. 0.1 BTC withdrawals) from pooled inputs look like generic/JoinMarket or
Wasabi 1 joins; an owner splitting coins into equal parts; mainnet height gates
(e.g. no WabiSabi before block 741,213) are not applied so regtest works, so a
2015 transaction can match a 2022 pattern. False negatives: WabiSabi rounds with
fewer than 50 inputs, PayJoins, and any join built to look ordinary.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from .batch import (
    F64,
    I8,
    I64,
    TYPE_MULTISIG,
    TYPE_P2TR,
    TYPE_P2WPKH,
    Bool,
    UtxoBatch,
)

WHIRLPOOL_DENOMINATIONS = np.array([100_000, 1_000_000, 5_000_000, 50_000_000], np.int64)
DUST_VALUES = (546, 2730)

# Tag per code; 0 = not a CoinJoin. Order = precedence (specific first).
TAGS = (
    "",
    "coinjoin:whirlpool",
    "coinjoin:wasabi2",
    "coinjoin:wasabi1",
    "coinjoin:joinmarket",
    "coinjoin:generic",
    "whirlpool:tx0",
)
CONFIDENCE = (0.0, 0.99, 0.95, 0.9, 0.8, 0.7, 0.95)
# Tags whose transactions join several owners (excluded from co-spend).
JOINT_TAGS = frozenset(t for t in TAGS[1:] if t.startswith("coinjoin:"))


def wasabi2_denominations() -> I64:
    """WabiSabi standard denominations (Wasabi ``StandardDenomination``)."""
    lo, hi = 5_000, 134_375_000_000
    values = {lo, hi}
    for base, mults in ((2, (1,)), (3, (1, 2)), (10, (1, 2, 5))):
        p = 1
        while p <= hi:
            for m in mults:
                if lo <= p * m <= hi:
                    values.add(p * m)
            p *= base
    return np.array(sorted(values), np.int64)


WASABI2_DENOMINATIONS = wasabi2_denominations()


@njit(cache=True, nogil=True)
def _top_value(values: I64, lo: int, hi: int) -> tuple[int, int]:
    """Most common value among values[lo:hi] and its count (ties: the larger value)."""
    n = hi - lo
    if n <= 0:
        return -1, 0
    s = np.sort(values[lo:hi])
    best_v = s[0]
    best_c = 1
    cur_v = s[0]
    cur_c = 1
    for i in range(1, n):
        if s[i] == cur_v:
            cur_c += 1
        else:
            cur_v = s[i]
            cur_c = 1
        if cur_c >= best_c:
            best_c = cur_c
            best_v = cur_v
    return best_v, best_c


@njit(cache=True, nogil=True)
def _distinct(values: I64, lo: int, hi: int) -> int:
    if hi <= lo:
        return 0
    s = np.sort(values[lo:hi])
    c = 1
    for i in range(1, hi - lo):
        if s[i] != s[i - 1]:
            c += 1
    return c


@njit(cache=True, nogil=True)
def _whirlpool(in_ptr: I64, in_value: I64, out_ptr: I64, out_value: I64, denoms: I64) -> Bool:
    n_tx = in_ptr.shape[0] - 1
    res = np.zeros(n_tx, np.bool_)
    for t in range(n_tx):
        i0, i1, o0, o1 = in_ptr[t], in_ptr[t + 1], out_ptr[t], out_ptr[t + 1]
        if i1 - i0 != 5 or o1 - o0 != 5:
            continue
        v = out_value[o0]
        ok = False
        for d in denoms:
            if v == d:
                ok = True
        for j in range(o0, o1):
            if out_value[j] != v:
                ok = False
        for j in range(i0, i1):
            if in_value[j] < v:
                ok = False
        res[t] = ok
    return res


@njit(cache=True, nogil=True)
def _tx0(out_ptr: I64, out_addr: I64, out_value: I64, denoms: I64) -> Bool:
    n_tx = out_ptr.shape[0] - 1
    res = np.zeros(n_tx, np.bool_)
    for t in range(n_tx):
        o0, o1 = out_ptr[t], out_ptr[t + 1]
        if o1 - o0 < 3:
            continue
        has_op_return = False
        for j in range(o0, o1):
            if out_addr[j] < 0 and out_value[j] == 0:
                has_op_return = True
        if not has_op_return:
            continue
        v, c = _top_value(out_value, o0, o1)
        if c < 1:
            continue
        denom = -1
        for d in denoms:
            if d < v <= d + d // 100:
                denom = d
        if denom < 0:
            continue
        fee_ok = False
        for j in range(o0, o1):
            w = out_value[j]
            if 0 < w <= denom * 5 // 100 and out_addr[j] >= 0:
                fee_ok = True
        res[t] = fee_ok
    return res


@njit(cache=True, nogil=True)
def _wasabi2(
    in_ptr: I64, in_value: I64, in_type: I8, out_ptr: I64, out_value: I64, out_type: I8,
    denoms: I64, min_inputs: int,
) -> Bool:
    n_tx = in_ptr.shape[0] - 1
    res = np.zeros(n_tx, np.bool_)
    for t in range(n_tx):
        i0, i1, o0, o1 = in_ptr[t], in_ptr[t + 1], out_ptr[t], out_ptr[t + 1]
        if i1 - i0 < min_inputs or o1 <= o0:
            continue
        ok = True
        for j in range(i0, i1):
            if in_type[j] != TYPE_P2WPKH and in_type[j] != TYPE_P2TR:
                ok = False
            if j > i0 and in_value[j] > in_value[j - 1]:
                ok = False
        for j in range(o0, o1):
            if out_type[j] != TYPE_P2WPKH and out_type[j] != TYPE_P2TR:
                ok = False
            if j > o0 and out_value[j] > out_value[j - 1]:
                ok = False
        if not ok:
            continue
        hits = 0
        for j in range(o0, o1):
            k = np.searchsorted(denoms, out_value[j])
            if k < denoms.shape[0] and denoms[k] == out_value[j]:
                hits += 1
        res[t] = hits * 10 > (o1 - o0) * 8
    return res


@njit(cache=True, nogil=True)
def _wasabi1(in_ptr: I64, out_ptr: I64, out_value: I64) -> Bool:
    n_tx = in_ptr.shape[0] - 1
    res = np.zeros(n_tx, np.bool_)
    for t in range(n_tx):
        o0, o1 = out_ptr[t], out_ptr[t + 1]
        v, c = _top_value(out_value, o0, o1)
        res[t] = c >= 10 and 8_000_000 <= v <= 12_000_000 and in_ptr[t + 1] - in_ptr[t] >= c
    return res


@njit(cache=True, nogil=True)
def _generic(
    in_ptr: I64, in_addr: I64, in_type: I8, out_ptr: I64, out_value: I64, out_type: I8,
    joinmarket: bool,
) -> Bool:
    """BlockSci ``isCoinjoin``; with ``joinmarket`` also single script type."""
    n_tx = in_ptr.shape[0] - 1
    res = np.zeros(n_tx, np.bool_)
    for t in range(n_tx):
        i0, i1, o0, o1 = in_ptr[t], in_ptr[t + 1], out_ptr[t], out_ptr[t + 1]
        n_in, n_out = i1 - i0, o1 - o0
        if n_in < 2 or n_out < 3:
            continue
        p = (n_out + 1) // 2
        if p > n_in or p > _distinct(in_addr, i0, i1):
            continue
        v, c = _top_value(out_value, o0, o1)
        if c != p or v == 546 or v == 2730:
            continue
        if joinmarket:
            typ = in_type[i0]
            same = typ != 0 and typ != TYPE_MULTISIG
            for j in range(i0, i1):
                if in_type[j] != typ:
                    same = False
            for j in range(o0, o1):
                if out_type[j] != typ:
                    same = False
            if not same:
                continue
        res[t] = True
    return res


def is_whirlpool_mix(batch: UtxoBatch) -> Bool:
    return _whirlpool(batch.in_ptr, batch.in_value, batch.out_ptr, batch.out_value,
                      WHIRLPOOL_DENOMINATIONS)


def is_whirlpool_tx0(batch: UtxoBatch) -> Bool:
    return _tx0(batch.out_ptr, batch.out_addr, batch.out_value, WHIRLPOOL_DENOMINATIONS)


def is_wasabi2(batch: UtxoBatch, min_inputs: int = 50) -> Bool:
    return _wasabi2(batch.in_ptr, batch.in_value, batch.in_type, batch.out_ptr,
                    batch.out_value, batch.out_type, WASABI2_DENOMINATIONS, min_inputs)


def is_wasabi1(batch: UtxoBatch) -> Bool:
    return _wasabi1(batch.in_ptr, batch.out_ptr, batch.out_value)


def is_joinmarket(batch: UtxoBatch) -> Bool:
    return _generic(batch.in_ptr, batch.in_addr, batch.in_type, batch.out_ptr,
                    batch.out_value, batch.out_type, True)


def is_generic_coinjoin(batch: UtxoBatch) -> Bool:
    return _generic(batch.in_ptr, batch.in_addr, batch.in_type, batch.out_ptr,
                    batch.out_value, batch.out_type, False)


def detect_coinjoins(batch: UtxoBatch) -> tuple[I8, F64]:
    """Per transaction: a tag code (index into :data:`TAGS`, 0 = none) and confidence."""
    code = np.zeros(batch.n_tx, np.int8)
    detectors = (
        (1, is_whirlpool_mix),
        (2, is_wasabi2),
        (3, is_wasabi1),
        (4, is_joinmarket),
        (5, is_generic_coinjoin),
        (6, is_whirlpool_tx0),
    )
    for c, fn in detectors:
        hit = fn(batch) & (code == 0) & ~batch.tx_coinbase
        code[hit] = c
    conf = np.asarray(CONFIDENCE, np.float64)[code]
    return code, conf


def joint_mask(code: npt.NDArray[np.int8]) -> Bool:
    """Transactions whose inputs belong to several owners (to exclude from co-spend)."""
    joint = np.array([t in JOINT_TAGS for t in TAGS], np.bool_)
    result: Bool = joint[code]
    return result
