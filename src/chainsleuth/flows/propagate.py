"""Compiled taint propagation over UTXO coins and account balances.

Both kernels are written once and run two ways: compiled by Numba over
``int64`` arrays when every amount fits (all of Bitcoin, most token ledgers),
or as plain Python over object arrays of Python ints when some amount does not
(wei balances above 9.2 ETH): the same code, so results are exact either way.
Products like ``taint * amount`` can exceed 64 bits even when both factors fit;
:func:`_muldivmod` computes them with a 128-bit long division in the compiled
path.

Model codes: 0 haircut, 1 poison, 2 fifo, 3 lifo (see :mod:`.models`).
Limit codes for value left untraced: see :data:`LIMITS`.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

MODEL_CODES = {"haircut": 0, "poison": 1, "fifo": 2, "lifo": 3}
LIMITS = ("hops", "min_value", "max_fanout", "history")
_HOPS, _MINV, _FAN, _HIST = 0, 1, 2, 3
INT64_MAX = 2**63 - 1


def _muldivmod_py(a: Any, b: Any, c: Any) -> tuple[Any, Any]:
    p = a * b
    return p // c, p % c


@numba.njit(cache=True)
def _muldivmod_128(a: int, b: int, c: int) -> tuple[Any, Any]:
    """floor(a*b/c) and the remainder for 0 <= a, b, c < 2**63 and a*b/c < 2**63."""
    if a == 0 or b == 0:
        return 0, 0
    if a <= INT64_MAX // b:
        p = a * b
        return p // c, p % c
    ua, ub = np.uint64(a), np.uint64(b)
    m32 = np.uint64(0xFFFFFFFF)
    s32 = np.uint64(32)
    a0, a1, b0, b1 = ua & m32, ua >> s32, ub & m32, ub >> s32
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> s32) + (p01 & m32) + (p10 & m32)
    lo = (p00 & m32) | ((mid & m32) << s32)
    hi = p11 + (p01 >> s32) + (p10 >> s32) + (mid >> s32)
    uc = np.uint64(c)
    rem = np.uint64(0)
    q = np.uint64(0)
    one = np.uint64(1)
    for i in range(127, -1, -1):
        bit = (hi >> np.uint64(i - 64)) & one if i >= 64 else (lo >> np.uint64(i)) & one
        rem = (rem << one) | bit  # rem < c < 2**63, so this fits in 64 bits
        if rem >= uc:
            rem -= uc
            if i < 64:
                q |= one << np.uint64(i)
    return np.int64(q), np.int64(rem)


# The kernels call ``muldivmod`` by this global name: compiled, it is the 128-bit
# version (a module-level global, so Numba can cache the compiled kernels on disk;
# closures over it could not be cached and cost ~1 s of compiling per process).
muldivmod = _muldivmod_128


def python_twin(kernel: Callable[..., Any]) -> Callable[..., Any]:
    """The same kernel code as plain Python, with ``muldivmod`` bound to exact Python-int
    arithmetic (for object arrays of amounts beyond int64)."""
    glb = dict(kernel.__globals__)
    glb["muldivmod"] = _muldivmod_py
    return types.FunctionType(kernel.__code__, glb, kernel.__name__)


def _utxo_kernel(src_ptr, src_coin, dst_ptr, dst_coin, value, stop, is_fee, taint, hop, received,
                from_coin, left, share, rems, src_taint, model, max_hops, min_value,
                max_fanout):  # fmt: skip
    """Propagate coin taint through pools (steps) in order.

    Step k pools the coins ``src_coin[src_ptr[k]:src_ptr[k+1]]`` and pays the
    coins ``dst_coin[dst_ptr[k]:dst_ptr[k+1]]`` (forward: inputs -> outputs
    and the fee pseudo-coin; backward: outputs and fee -> inputs). Updates in
    place: ``taint`` (current, spent coins drop to 0), ``hop``, ``received``
    (taint a coin got: the edges), ``from_coin`` (the source coin that gave
    most taint), ``left`` (value left untraced per limit). ``share``,
    ``rems``, ``src_taint`` are scratch buffers as long as the widest step.
    """
    n_steps = src_ptr.shape[0] - 1
    zero = value[0] - value[0]
    for k in range(n_steps):
        s0, s1 = src_ptr[k], src_ptr[k + 1]
        total = zero
        pool = zero
        h = 1 << 30
        best = -1
        for j in range(s0, s1):
            c = src_coin[j]
            pool += value[c]
            t = taint[c] if stop[c] == 0 else zero
            src_taint[j - s0] = t
            if t > 0:
                total += t
                if hop[c] < h:
                    h = hop[c]
                if best < 0 or t > taint[best]:
                    best = c
        d0, d1 = dst_ptr[k], dst_ptr[k + 1]
        nd = d1 - d0
        if total == 0 or nd == 0:  # nothing to move, or nowhere to go (backward: coinbase)
            continue
        for j in range(s0, s1):  # the pooled coins are spent: their taint moves on
            if stop[src_coin[j]] == 0:
                taint[src_coin[j]] = zero
        if h + 1 > max_hops:
            left[_HOPS] += total
            continue
        if max_fanout > 0 and nd > max_fanout:
            left[_FAN] += total
            continue
        for i in range(nd):
            share[i] = zero
        if model == 1:
            for i in range(nd):
                share[i] = value[dst_coin[d0 + i]]
        elif model == 0:
            given = zero
            for i in range(nd):
                q, r = muldivmod(total, value[dst_coin[d0 + i]], pool)
                share[i] = q
                rems[i] = r
                given += q
            extra = total - given
            while extra > 0:  # largest remainder, ties to the lowest index
                bi = 0
                for i in range(1, nd):
                    if rems[i] > rems[bi]:
                        bi = i
                share[bi] += 1
                rems[bi] = zero - 1
                extra -= 1
        else:
            # FIFO/LIFO: pour the source coins (tainted part first) into the sinks in order
            i = 0
            room = value[dst_coin[d0]] if nd > 0 else zero
            for jj in range(s1 - s0):
                j = jj if model == 2 else s1 - s0 - 1 - jj
                t = src_taint[j]
                for part in range(2):
                    amt = t if part == 0 else value[src_coin[s0 + j]] - t
                    while amt > 0 and i < nd:
                        if room == 0:
                            i += 1
                            if i < nd:
                                room = value[dst_coin[d0 + i]]
                            continue
                        take = amt if amt < room else room
                        if part == 0:
                            share[i] += take
                        amt -= take
                        room -= take
        for i in range(nd):
            c = dst_coin[d0 + i]
            s = share[i]
            if s <= 0:
                continue
            if s < min_value and is_fee[c] == 0:  # fees are accounted, never "too small"
                left[_MINV] += s
                continue
            taint[c] += s
            received[c] += s
            hop[c] = h + 1
            from_coin[c] = best


_utxo_py = python_twin(_utxo_kernel)
_utxo_jit = numba.njit(cache=True)(_utxo_kernel)


def _account_kernel(src_state, dst_state, amount, is_fee, seed_row, stop_row, is_seed_state,
                   blocked, bal, tnt, hop, lot_amt, lot_t, lot_next, lot_prev, head, tail,
                   n_lots, received, left, totals, model, max_hops, min_value, inject,
                   inject_hop, divert, diverted, injected, leg_hop, conv):  # fmt: skip
    """Propagate balance taint over transfer legs in time order.

    Each (account, asset) is a state: ``bal``/``tnt`` for haircut and poison,
    or a linked list of lots (``head``/``tail``; ``lot_t`` 1 = tainted) for
    FIFO/LIFO. A debit larger than the known balance (history before the
    ledger) draws the shortfall as clean, or as tainted when the account is
    a seed. ``received[r]`` is the taint leg r carried (the edges; for a leg
    into a stop account, the endpoint amount). ``totals``: [fees and
    burns, seeded, stopped, converted out, converted in, conversion excess].

    Conversions (swaps, bridges; see :mod:`.trace`): the taint a leg with
    ``divert[r]`` carries leaves this asset (``diverted[r]``, at hop
    ``leg_hop[r]``) instead of reaching the pool or bridge; a leg gets
    ``inject[r]`` taint converted from another asset (at hop
    ``inject_hop[r]``) on top of what its sender's balance gives, up to
    the leg's amount (``injected[r]``; the rest is the excess). With ``conv``
    0 (no conversions) these six arrays are not read or written (they may be
    one element long: allocating 10M-long ones costs more than the loop).
    """
    zero = amount[0] - amount[0]
    for r in range(amount.shape[0]):
        a = amount[r]
        s = src_state[r]
        moved = zero
        h = 1 << 30
        if s >= 0:
            if bal[s] < a:  # shortfall: value from before the ledger
                short = a - bal[s]
                bal[s] += short
                if is_seed_state[s]:
                    tnt[s] += short
                    totals[1] += short
                    if hop[s] > 0:
                        hop[s] = 0
                if model >= 2:
                    li = n_lots[0]
                    n_lots[0] += 1
                    lot_amt[li] = short
                    lot_t[li] = is_seed_state[s]
                    lot_prev[li] = -1
                    lot_next[li] = head[s]
                    if head[s] >= 0:
                        lot_prev[head[s]] = li
                    else:
                        tail[s] = li
                    head[s] = li
            h = hop[s]
            if model == 0:
                if tnt[s] > 0:
                    moved, _ = muldivmod(tnt[s], a, bal[s])
                tnt[s] -= moved
                bal[s] -= a
            elif model == 1:
                bal[s] -= a
                if tnt[s] > 0:
                    moved = a
                    tnt[s] = bal[s]
            else:
                need = a
                while need > 0:
                    li = head[s] if model == 2 else tail[s]
                    take = lot_amt[li] if lot_amt[li] < need else need
                    if lot_t[li] == 1:
                        moved += take
                    lot_amt[li] -= take
                    need -= take
                    if lot_amt[li] == 0:
                        nx, pv = lot_next[li], lot_prev[li]
                        if pv >= 0:
                            lot_next[pv] = nx
                        else:
                            head[s] = nx
                        if nx >= 0:
                            lot_prev[nx] = pv
                        else:
                            tail[s] = pv
                tnt[s] -= moved
                bal[s] -= a
        credit = zero
        if moved > 0:
            if is_fee[r]:
                totals[0] += moved
            elif blocked[s]:
                left[_FAN] += moved
            elif h + 1 > max_hops:
                left[_HOPS] += moved
            elif moved < min_value:
                left[_MINV] += moved
            else:
                credit = moved
        nh = h + 1
        if conv and inject[r] > 0:
            add = inject[r] if inject[r] < a - credit else a - credit
            totals[4] += add
            totals[5] += inject[r] - add
            if add > 0:
                injected[r] = add
                credit += add
                if inject_hop[r] < nh:
                    nh = inject_hop[r]
        if conv and divert[r] and credit > 0:  # converted (after any taint converted into it, a
            # multi-hop route): the pool/bridge does not get it
            diverted[r] = credit
            leg_hop[r] = nh
            totals[3] += credit
            credit = zero
        if seed_row[r] and not is_fee[r]:
            totals[1] += a - credit
            credit = a
            nh = 0
        d = dst_state[r]
        if d < 0 and not is_fee[r]:
            totals[0] += credit  # paid to no one (burnt): accounted with the fees
        if d < 0 or is_fee[r]:
            continue
        received[r] = credit
        if credit > 0 and stop_row[r]:
            totals[2] += credit
            credit = zero
        bal[d] += a
        if credit > 0:
            tnt[d] += credit
            if nh < hop[d]:
                hop[d] = nh
        if model == 1 and tnt[d] > 0:
            tnt[d] = bal[d]
        if model >= 2:
            for part in range(2):
                amt = credit if part == 0 else a - credit
                if amt <= 0:
                    continue
                flag = 1 - part
                ti = tail[d]
                if ti >= 0 and lot_t[ti] == flag:
                    lot_amt[ti] += amt
                    continue
                li = n_lots[0]
                n_lots[0] += 1
                lot_amt[li] = amt
                lot_t[li] = flag
                lot_next[li] = -1
                lot_prev[li] = ti
                if ti >= 0:
                    lot_next[ti] = li
                else:
                    head[d] = li
                tail[d] = li


_account_py = python_twin(_account_kernel)
_account_jit = numba.njit(cache=True)(_account_kernel)


def run_utxo(
    src_ptr: np.ndarray, src_coin: np.ndarray, dst_ptr: np.ndarray, dst_coin: np.ndarray,
    value: np.ndarray, stop: np.ndarray, is_fee: np.ndarray, taint: np.ndarray, hop: np.ndarray, *,
    model: str, max_hops: int, min_value: int, max_fanout: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Run the UTXO kernel (compiled for int64 values); returns (received, from_coin, left)."""
    exact = value.dtype == object
    received = np.zeros_like(taint)
    from_coin = np.full(value.shape[0], -1, dtype=np.int64)
    left = np.zeros(4, dtype=value.dtype)
    width = int(max(np.diff(src_ptr).max(initial=0), np.diff(dst_ptr).max(initial=0))) + 1
    share = np.zeros(width, dtype=value.dtype)
    rems = np.zeros(width, dtype=value.dtype)
    src_taint = np.zeros(width, dtype=value.dtype)
    fn = _utxo_py if exact else _utxo_jit
    if value.shape[0] > 0:
        fn(src_ptr, src_coin, dst_ptr, dst_coin, value, stop, is_fee, taint, hop, received, from_coin,
           left, share, rems, src_taint, MODEL_CODES[model], max_hops, min_value, max_fanout)  # fmt: skip
    return received, from_coin, left


def run_account(
    src_state: np.ndarray, dst_state: np.ndarray, amount: np.ndarray, is_fee: np.ndarray,
    seed_row: np.ndarray, stop_row: np.ndarray, is_seed_state: np.ndarray, blocked: np.ndarray,
    n_states: int, *, model: str, max_hops: int, min_value: int, inject: np.ndarray | None = None,
    inject_hop: np.ndarray | None = None, divert: np.ndarray | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Run the account kernel; returns the final state arrays and the per-leg taint.

    ``inject``/``inject_hop``/``divert`` (per leg, optional): conversion taint in and out,
    see the kernel's docstring; outputs ``diverted``, ``injected``, ``leg_hop`` per leg
    (``leg_hop`` only when one of the three is given; else it has one element).
    """
    exact = amount.dtype == object
    dt = amount.dtype
    n = amount.shape[0]
    conv = inject is not None or inject_hop is not None or divert is not None
    m = n if conv else 1  # without conversions the per-leg conversion arrays are not used
    out = {
        "bal": np.zeros(n_states, dtype=dt), "tnt": np.zeros(n_states, dtype=dt),
        "hop": np.full(n_states, 1 << 30, dtype=np.int64), "received": np.zeros(n, dtype=dt),
        "left": np.zeros(4, dtype=dt), "totals": np.zeros(6, dtype=dt),
        "diverted": np.zeros(n, dtype=dt), "injected": np.zeros(n, dtype=dt),
        "leg_hop": np.full(m, 1 << 30, dtype=np.int64),
    }  # fmt: skip
    if inject is None:
        inject = np.zeros(m, dtype=dt)
    if inject_hop is None:
        inject_hop = np.full(m, 1 << 30, dtype=np.int64)
    if divert is None:
        divert = np.zeros(m, dtype=np.int8)
    n_lot = 2 * n + 2 if MODEL_CODES[model] >= 2 else 1
    lot_amt = np.zeros(n_lot, dtype=dt)
    lot_t = np.zeros(n_lot, dtype=np.int8)
    lot_next = np.full(n_lot, -1, dtype=np.int64)
    lot_prev = np.full(n_lot, -1, dtype=np.int64)
    head = np.full(n_states, -1, dtype=np.int64)
    tail = np.full(n_states, -1, dtype=np.int64)
    n_lots = np.zeros(1, dtype=np.int64)
    fn = _account_py if exact else _account_jit
    if n > 0:
        fn(src_state, dst_state, amount, is_fee, seed_row, stop_row, is_seed_state, blocked,
           out["bal"], out["tnt"], out["hop"], lot_amt, lot_t, lot_next, lot_prev, head, tail,
           n_lots, out["received"], out["left"], out["totals"], MODEL_CODES[model], max_hops,
           min_value, inject, inject_hop, divert, out["diverted"], out["injected"],
           out["leg_hop"], 1 if conv else 0)  # fmt: skip
    return out
