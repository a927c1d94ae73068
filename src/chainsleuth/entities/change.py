"""Change-address heuristics: guess which output of a payment returns to the payer.

Each heuristic is a compiled pass over a :class:`UtxoBatch` returning, per
transaction, the chosen output (index into ``out_*``, -1 = no opinion) and its
confidence. :func:`change_evidence` combines the chosen heuristics: votes for
one output combine as ``1 - prod(1 - c)``, votes for different outputs cancel,
and an output vetoed by ``reuse`` cannot be change. The union joins the change
address to the first input address.

The confidences are priors taken from the cited studies' reported behaviour,
not calibrated on this data; the accuracy harness measures them. All change
heuristics are OFF by default: their false-positive rate is far above the
multi-input heuristic's, and one wrong change link can merge two large clusters.

Only the past is used (address first-seen, the shape of the spent transaction),
so an incremental run decides exactly as a full run does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit

from .batch import F64, I8, I64, TYPE_UNKNOWN, Bool, Evidence, UtxoBatch

ChangeHeuristic = Callable[[UtxoBatch], tuple[I64, F64]]


@njit(cache=True, nogil=True)
def _unique_output(flags: Bool, o0: int, o1: int) -> int:
    hit = -1
    for j in range(o0, o1):
        if flags[j]:
            if hit >= 0:
                return -1
            hit = j
    return hit


@njit(cache=True, nogil=True)
def _address_type(in_ptr: I64, in_type: I8, out_ptr: I64, out_type: I8) -> I64:
    n_tx = in_ptr.shape[0] - 1
    res = np.full(n_tx, -1, np.int64)
    for t in range(n_tx):
        i0, i1, o0, o1 = in_ptr[t], in_ptr[t + 1], out_ptr[t], out_ptr[t + 1]
        if i1 <= i0 or o1 - o0 < 2:
            continue
        typ = in_type[i0]
        if typ == TYPE_UNKNOWN:
            continue
        same = True
        for j in range(i0, i1):
            if in_type[j] != typ:
                same = False
        if not same:
            continue
        hit = -1
        n_hit = 0
        for j in range(o0, o1):
            if out_type[j] == typ:
                hit = j
                n_hit += 1
        if n_hit == 1:
            res[t] = hit
    return res


def address_type(batch: UtxoBatch) -> tuple[I64, F64]:
    """Address type match: when all inputs share a script type and exactly one
    output has that type, it is the change.

    Source: Ermilov et al. (2017) "Automatic Bitcoin address clustering"; BlockSci
    ``ChangeHeuristic.address_type`` (Kalodner et al. 2020); Möser & Narayanan
    (2022) "Resurrecting address clustering in Bitcoin".
    False positives: a payee using the same wallet software (same type), and
    wallets that pay change to a different type (e.g. Electrum P2WPKH change
    from P2SH inputs). Confidence 0.6.
    """
    return _address_type(batch.in_ptr, batch.in_type, batch.out_ptr, batch.out_type), np.full(
        batch.n_tx, 0.6)


@njit(cache=True, nogil=True)
def _optimal(in_ptr: I64, in_value: I64, out_ptr: I64, out_value: I64) -> I64:
    n_tx = in_ptr.shape[0] - 1
    res = np.full(n_tx, -1, np.int64)
    for t in range(n_tx):
        i0, i1, o0, o1 = in_ptr[t], in_ptr[t + 1], out_ptr[t], out_ptr[t + 1]
        if i1 <= i0 or o1 - o0 < 2:
            continue
        smallest = in_value[i0]
        for j in range(i0, i1):
            if in_value[j] < 0:
                smallest = -1
                break
            smallest = min(smallest, in_value[j])
        if smallest < 0:
            continue
        hit = -1
        n_hit = 0
        for j in range(o0, o1):
            if out_value[j] < smallest:
                hit = j
                n_hit += 1
        if n_hit == 1:
            res[t] = hit
    return res


def optimal_change(batch: UtxoBatch) -> tuple[I64, F64]:
    """Optimal change: an output smaller than every input is the change (if
    change were larger than an input, that input would not have been needed).

    Source: Nick (2015) "Data-driven de-anonymization in Bitcoin" (ETH Zürich
    MSc thesis); BlockSci ``ChangeHeuristic.optimal_change``.
    False positives: wallets that do not minimise inputs (consolidating coin
    selection, privacy wallets spending whole address groups), and payments
    smaller than every input. Confidence 0.6.
    """
    return _optimal(batch.in_ptr, batch.in_value, batch.out_ptr, batch.out_value), np.full(
        batch.n_tx, 0.6)


@njit(cache=True, nogil=True)
def _power_of_ten(out_ptr: I64, out_value: I64, unit: int) -> I64:
    n_tx = out_ptr.shape[0] - 1
    res = np.full(n_tx, -1, np.int64)
    for t in range(n_tx):
        o0, o1 = out_ptr[t], out_ptr[t + 1]
        if o1 - o0 < 2:
            continue
        hit = -1
        n_hit = 0
        for j in range(o0, o1):
            if out_value[j] % unit != 0:
                hit = j
                n_hit += 1
        if n_hit == 1:
            res[t] = hit
    return res


def power_of_ten(batch: UtxoBatch, digits: int = 6) -> tuple[I64, F64]:
    """Round payment: when every output but one is a multiple of 10^digits
    satoshi (default 10^6 = 0.01 BTC), the odd one is the change.

    Source: Androulaki et al. (2013) "Evaluating user privacy in Bitcoin";
    BlockSci ``ChangeHeuristic.power_of_ten_value`` (digits default 6).
    False positives: payments priced in fiat (not round in BTC) with round
    change by chance; a round change. Confidence 0.5.
    """
    return _power_of_ten(batch.out_ptr, batch.out_value, 10**digits), np.full(batch.n_tx, 0.5)


@njit(cache=True, nogil=True)
def _reuse_veto(in_ptr: I64, in_addr: I64, out_ptr: I64, out_addr: I64, out_fresh: Bool) -> Bool:
    """Outputs that cannot be change: to an input address (self-change) or to
    an address seen in an earlier transaction."""
    veto = np.zeros(out_addr.shape[0], np.bool_)
    n_tx = in_ptr.shape[0] - 1
    for t in range(n_tx):
        for j in range(out_ptr[t], out_ptr[t + 1]):
            x = out_addr[j]
            if x < 0:
                veto[j] = True
                continue
            if not out_fresh[j]:
                veto[j] = True
            for k in range(in_ptr[t], in_ptr[t + 1]):
                if in_addr[k] == x:
                    veto[j] = True
    return veto


@njit(cache=True, nogil=True)
def _reuse(in_ptr: I64, in_addr: I64, out_ptr: I64, out_addr: I64, veto: Bool) -> I64:
    n_tx = in_ptr.shape[0] - 1
    res = np.full(n_tx, -1, np.int64)
    for t in range(n_tx):
        o0, o1 = out_ptr[t], out_ptr[t + 1]
        if o1 - o0 < 2:
            continue
        self_change = False
        n_veto = 0
        for j in range(o0, o1):
            if veto[j]:
                n_veto += 1
            for k in range(in_ptr[t], in_ptr[t + 1]):
                if in_addr[k] == out_addr[j] and out_addr[j] >= 0:
                    self_change = True
        if self_change or n_veto == 0:
            continue
        res[t] = _unique_output(~veto, o0, o1)
    return res


def reuse(batch: UtxoBatch) -> tuple[I64, F64]:
    """Address reuse: an output to an address seen before is not change; when
    exactly one output is to a never-seen address (and others are reused), it
    is the change. Also a veto on the other heuristics' choices.

    Source: Androulaki et al. (2013) (shadow addresses); Meiklejohn et al.
    (2013) Heuristic 2 conditions; BlockSci ``ChangeHeuristic.address_reuse``.
    False positives: payees that reuse one deposit address while the payer's
    change goes to a fresh one is the *intended* case; a payee with a fresh
    address and a payer reusing its change address flips it. Confidence 0.7.
    """
    veto = _reuse_veto(batch.in_ptr, batch.in_addr, batch.out_ptr, batch.out_addr, batch.out_fresh)
    return _reuse(batch.in_ptr, batch.in_addr, batch.out_ptr, batch.out_addr, veto), np.full(
        batch.n_tx, 0.7)


@njit(cache=True, nogil=True)
def _fresh(in_ptr: I64, in_addr: I64, out_ptr: I64, out_addr: I64, out_fresh: Bool) -> I64:
    n_tx = in_ptr.shape[0] - 1
    res = np.full(n_tx, -1, np.int64)
    for t in range(n_tx):
        o0, o1 = out_ptr[t], out_ptr[t + 1]
        if o1 - o0 < 2:
            continue
        self_change = False
        for j in range(o0, o1):
            for k in range(in_ptr[t], in_ptr[t + 1]):
                if in_addr[k] == out_addr[j] and out_addr[j] >= 0:
                    self_change = True
        if not self_change:
            res[t] = _unique_output(out_fresh, o0, o1)
    return res


def fresh_address(batch: UtxoBatch) -> tuple[I64, F64]:
    """Fresh address: the only output whose address appears for the first time
    is the change (wallets make a new change address each time), provided no
    output pays back to an input address.

    Source: Meiklejohn et al. (2013) "A Fistful of Bitcoins", Heuristic 2;
    BlockSci ``ChangeHeuristic.client_change_address_behavior``.
    False positives: a payee handing out a fresh invoice address while the
    payer reuses its change address; first payments to new users. Meiklejohn
    et al. report it needed manual refinement to avoid giant clusters.
    Confidence 0.6.
    """
    return _fresh(batch.in_ptr, batch.in_addr, batch.out_ptr, batch.out_addr,
                  batch.out_fresh), np.full(batch.n_tx, 0.6)


@njit(cache=True, nogil=True)
def _peeling(in_ptr: I64, in_prev_peel: Bool, out_ptr: I64, out_value: I64) -> I64:
    n_tx = in_ptr.shape[0] - 1
    res = np.full(n_tx, -1, np.int64)
    for t in range(n_tx):
        i0, o0, o1 = in_ptr[t], out_ptr[t], out_ptr[t + 1]
        if in_ptr[t + 1] - i0 != 1 or o1 - o0 != 2 or not in_prev_peel[i0]:
            continue
        a, b = out_value[o0], out_value[o0 + 1]
        if a == b:
            continue
        res[t] = o0 if a > b else o0 + 1
    return res


def peeling_chain(batch: UtxoBatch) -> tuple[I64, F64]:
    """Peeling chain: a 1-input, 2-output transaction spending a coin made by
    another 1-input, 2-output transaction continues a peel; the larger output
    carries the remaining balance on (change), the smaller is peeled off.

    Source: Meiklejohn et al. (2013) §4.2 (peeling chains); BlockSci
    ``ChangeHeuristic.peeling_chain`` / ``isPeelingChain``. Only the spent
    (past) transaction is looked at, so incremental runs decide identically.
    False positives: ordinary wallets paying large amounts from one coin (the
    payment is the larger output); exchange withdrawals. Confidence 0.55.
    """
    return _peeling(batch.in_ptr, batch.in_prev_peel, batch.out_ptr, batch.out_value), np.full(
        batch.n_tx, 0.55)


CHANGE_HEURISTICS: dict[str, ChangeHeuristic] = {
    "address_type": address_type,
    "optimal": optimal_change,
    "power_of_ten": power_of_ten,
    "reuse": reuse,
    "fresh": fresh_address,
    "peeling": peeling_chain,
}


def parse_change_list(text: str | None) -> list[str]:
    """``"all"`` or a comma list of names -> validated heuristic names."""
    from ..errors import ConfigError

    if not text:
        return []
    if text.strip() == "all":
        return list(CHANGE_HEURISTICS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in CHANGE_HEURISTICS]
    if bad:
        raise ConfigError(
            f"unknown change heuristic(s) {', '.join(bad)}; choose from "
            f"{', '.join(CHANGE_HEURISTICS)} or 'all'"
        )
    return names


@njit(cache=True, nogil=True)
def _first_input(in_ptr: I64, in_addr: I64) -> I64:
    n_tx = in_ptr.shape[0] - 1
    res = np.full(n_tx, -1, np.int64)
    for t in range(n_tx):
        for j in range(in_ptr[t], in_ptr[t + 1]):
            if in_addr[j] >= 0:
                res[t] = in_addr[j]
                break
    return res


def change_evidence(
    batch: UtxoBatch,
    names: list[str],
    min_confidence: float,
    exclude: Bool | None = None,
) -> Evidence:
    """Combine the named change heuristics into evidence rows
    (first input address, change address), one per decided transaction."""
    if not names or batch.n_tx == 0:
        return Evidence.empty()
    n = batch.n_tx
    skip = batch.tx_coinbase.copy() if exclude is None else (batch.tx_coinbase | exclude)
    choice = np.full(n, -1, np.int64)
    keep = np.ones(n, np.float64)  # prod(1 - c)
    conflict = np.zeros(n, np.bool_)
    votes: dict[str, I64] = {}
    veto = _reuse_veto(batch.in_ptr, batch.in_addr, batch.out_ptr, batch.out_addr,
                       batch.out_fresh) if "reuse" in names else None
    for name in names:
        pick, conf = CHANGE_HEURISTICS[name](batch)
        pick = pick.copy()
        if veto is not None:
            valid = pick >= 0
            vetoed = np.zeros(n, np.bool_)
            vetoed[valid] = veto[pick[valid]]
            pick[vetoed] = -1
        votes[name] = pick
        has = pick >= 0
        first = has & (choice < 0)
        choice[first] = pick[first]
        conflict |= has & (choice >= 0) & (pick != choice)
        keep[has] *= 1.0 - conf[has]
    combined = 1.0 - keep
    decided = (choice >= 0) & ~conflict & ~skip & (combined >= min_confidence)
    first_in = _first_input(batch.in_ptr, batch.in_addr)
    decided &= first_in >= 0
    tx = np.flatnonzero(decided).astype(np.int64)
    change_addr = batch.out_addr[choice[tx]] if tx.shape[0] else np.zeros(0, np.int64)
    ok = change_addr >= 0
    tx, change_addr = tx[ok], change_addr[ok]
    labels = np.empty(tx.shape[0], dtype=object)
    for i, t in enumerate(tx):
        labels[i] = "change:" + "+".join(nm for nm in names if votes[nm][t] >= 0)
    return Evidence.of(tx, first_in[tx], change_addr, combined[tx], labels)
