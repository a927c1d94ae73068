"""Backward attribution on account chains: where did the value of some legs come from.

On an account chain an outgoing transfer at time t is paid from the sender's
balance at t, and that balance is made of earlier incoming transfers (minus what
earlier outgoing transfers removed). Attributing a leg backward means splitting
its value over those earlier inflows under a taint model, then repeating for
each inflow's own sender, hop by hop. The mirror of the forward rules of
:mod:`.models` / :mod:`.propagate`:

* **haircut** (Möser et al. 2014): the outflow has the balance's composition at
  t. Each earlier outflow removed the same fraction of every inflow, so an
  inflow's share of the balance is its amount times its *survival factor*.
  Computed without fractions: per account a demand ``U`` (units of its current
  balance being traced) walks back in time; an inflow ``a`` into a balance ``B``
  (after the inflow) receives ``floor(U * a / B)`` and ``U`` drops by as much; a
  demanded outflow adds its demand to ``U``. The first inflow of an account
  takes the whole remaining demand (``a == B``), so nothing is lost to rounding.
* **FIFO** (Clayton's rule, Anderson et al. 2019): the outflow consumed the
  earliest remaining inflow lots; **LIFO**: the latest. Exact per unit: a
  forward pass records, for each outflow, the lots it consumed as pieces (which
  units of which inflow leg, in order; LIFO takes a lot's last units first); the
  backward pass carries, per leg, the *intervals* of its units that are
  demanded and maps them through those pieces onto the earlier legs, so a leg
  passed on in part hands back exactly the units it passed (property-tested
  against a unit-by-unit simulation).
* **poison** (Möser et al. 2014): every inflow still (partly) in the balance at
  t, i.e. since the balance was last empty, is attributed in full. An upper
  bound: it creates value (the attributions exceed the leg's value).

A debit larger than the known balance draws the shortfall from before the
ledger (or the time window): that part is an *origin* at the sender (value held
before), as is value minted to an account (a leg with no sender: rewards,
mints). Stops (service accounts, e.g. exchanges) end the walk: what came from
them is an *endpoint*. Limits as forward: hops, ``min_value``, fan-in (an
account with more distinct senders than ``max_fanout`` is not walked through).

The kernel is written once and runs compiled (``int64``) or over Python ints
(``object`` arrays, for wei beyond ``int64``), like :mod:`.propagate`. Its FIFO/LIFO
lot lists are linked and unlinked by the same lines as ``propagate._account_kernel``'s,
written out in both on purpose: shared ``njit`` helpers (also with ``inline="always"``)
made both kernels 40-50% slower on 2M legs (measured; per-call array reference counting
in the innermost loop).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from .propagate import _FAN, _HOPS, _MINV, MODEL_CODES, _muldivmod_128, python_twin

NO_HOP = 1 << 30
muldivmod = _muldivmod_128  # the name the kernel calls (see propagate.python_twin)


def _backward_kernel(src, dst, amount, is_fee, seed_row, stop_src, blocked, n_states, model,
                    max_hops, min_value, dem, hop_leg, origin_mint, origin_before, endpoint,
                    left, totals, limited, limit_of, bal, bal_after, short, bal_short, lot_amt, lot_leg, lot_next,
                    lot_prev, head, tail, rec_ptr, rec_leg, rec_amt, want, flag, hop_state, lot_off,
                    rec_off, iv_lo, iv_hi, iv_next, iv_head, status):  # fmt: skip
    """Attribute the seed legs' value backward over all legs (in time order).

    Inputs per leg: ``src``/``dst`` state (-1: none), ``amount``, ``is_fee``,
    ``seed_row`` (demanded in full), ``stop_src`` (the sender is a stop).
    Outputs per leg: ``dem`` (the value of the leg attributed: the edge),
    ``hop_leg``, ``origin_mint`` (value minted to ``dst`` by a sender-less
    leg), ``origin_before`` (value ``src`` held before the ledger, drawn at
    this leg), ``endpoint`` (value that came from the stop ``src``).
    ``left`` per limit; ``totals[0]``: the seed value; ``limited`` per leg: the
    value a limit stopped at this leg (hops, min value: the leg was not
    followed; fan-in: its sender was not walked through) and ``limit_of`` which
    limit (a :data:`~.propagate.LIMITS` index). The rest are scratch
    arrays (see :func:`run_account_backward`).
    """
    n = amount.shape[0]
    zero = amount[0] - amount[0]
    # -- forward pass: balances after each credit, shortfalls, FIFO/LIFO consumption records
    # (bal_after: dst balance right after the leg's credit; short: shortfall the sender drew
    # at the leg, bal_short: its balance then; lot_leg: the inflow leg, or -2-r for the
    # shortfall drawn at leg r)
    lots = model >= 2
    n_lots = 0
    k = 0
    for r in range(n):
        a = amount[r]
        s = src[r]
        rec_ptr[r] = k
        if s >= 0:
            if bal[s] < a:
                short[r] = a - bal[s]
                bal[s] = a
                bal_short[r] = a
                if lots:  # the shortfall is older than anything known: the head lot
                    li = n_lots
                    n_lots += 1
                    lot_amt[li] = short[r]
                    lot_leg[li] = -2 - r
                    lot_off[li] = zero
                    lot_prev[li] = -1
                    lot_next[li] = head[s]
                    if head[s] >= 0:
                        lot_prev[head[s]] = li
                    else:
                        tail[s] = li
                    head[s] = li
            bal[s] -= a
            if lots:
                need = a
                while need > 0:
                    li = head[s] if model == 2 else tail[s]
                    take = lot_amt[li] if lot_amt[li] < need else need
                    rec_leg[k] = lot_leg[li]
                    rec_amt[k] = take
                    if model == 2:  # FIFO: the lot's first units, in order
                        rec_off[k] = lot_off[li]
                        lot_off[li] += take
                    else:  # LIFO: its last units, last first (rec_off: the unit taken first)
                        rec_off[k] = lot_off[li] + lot_amt[li] - 1
                    k += 1
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
        d = dst[r]
        if d >= 0 and not is_fee[r]:
            bal[d] += a
            bal_after[r] = bal[d]
            if lots and a > 0:
                li = n_lots
                n_lots += 1
                lot_amt[li] = a
                lot_leg[li] = r
                lot_off[li] = zero
                ti = tail[d]
                lot_next[li] = -1
                lot_prev[li] = ti
                if ti >= 0:
                    lot_next[ti] = li
                else:
                    head[d] = li
                tail[d] = li
    rec_ptr[n] = k
    # -- backward pass, newest leg first (want: haircut demand on the current balance; flag:
    # poison, a demanded outflow is still ahead)
    for r in range(n - 1, -1, -1):
        a = amount[r]
        d = dst[r]
        s = src[r]
        if is_fee[r]:
            continue  # fees are paid to no one traced: never demanded, only debited
        y = zero
        h = NO_HOP
        if d >= 0:
            if model == 0:
                if want[d] > 0:
                    y, _ = muldivmod(want[d], a, bal_after[r])
                    want[d] -= y
                    h = hop_state[d] + 1
            elif model == 1:
                if flag[d] == 1:
                    y = a
                    h = hop_state[d] + 1
                    if bal_after[r] == a:  # the balance was empty before: older inflows are gone
                        flag[d] = 0
            else:
                y = dem[r]
                h = hop_leg[r]
        if y > 0:
            if h > max_hops:
                left[_HOPS] += y
                limited[r] += y
                limit_of[r] = _HOPS
                y = zero
            elif y < min_value:
                left[_MINV] += y
                limited[r] += y
                limit_of[r] = _MINV
                y = zero
        if seed_row[r]:
            totals[0] += a - y
            y = a
            h = 1
        dem[r] = y
        hop_leg[r] = h if y > 0 else NO_HOP
        if y > 0:
            if s < 0:
                origin_mint[r] += y
            elif stop_src[r]:
                endpoint[r] += y
            elif blocked[s]:
                left[_FAN] += y
                limited[r] += y
                limit_of[r] = _FAN
            elif model == 0:
                want[s] += y
                if h < hop_state[s]:
                    hop_state[s] = h
            elif model == 1:
                flag[s] = 1
                if h < hop_state[s]:
                    hop_state[s] = h
            else:
                # The demanded units of leg r (intervals of [0, a); all of it for a seed)
                # are mapped through the lots it consumed onto those lots' legs.
                if seed_row[r]:
                    cnt = 1
                    lo_t = np.empty_like(amount[:1])
                    hi_t = np.empty_like(amount[:1])
                    lo_t[0] = zero
                    hi_t[0] = a
                else:
                    cnt = 0
                    node = iv_head[r]
                    while node >= 0:
                        cnt += 1
                        node = iv_next[node]
                    lo_u = np.empty_like(amount[:cnt])
                    hi_u = np.empty_like(amount[:cnt])
                    node = iv_head[r]
                    c = 0
                    while node >= 0:
                        lo_u[c] = iv_lo[node]
                        hi_u[c] = iv_hi[node]
                        c += 1
                        node = iv_next[node]
                    order = np.argsort(lo_u)
                    lo_t = lo_u[order]
                    hi_t = hi_u[order]
                p = zero
                ii = 0
                for kk in range(rec_ptr[r], rec_ptr[r + 1]):
                    pe = p + rec_amt[kk]
                    lj = rec_leg[kk]
                    while ii < cnt and lo_t[ii] < pe:
                        u = lo_t[ii] if lo_t[ii] > p else p
                        v = hi_t[ii] if hi_t[ii] < pe else pe
                        if v > u:
                            length = v - u
                            if lj < 0:
                                origin_before[-2 - lj] += length
                            else:
                                if model == 2:
                                    jl = rec_off[kk] + (u - p)
                                    jh = jl + length
                                else:
                                    jh = rec_off[kk] - (u - p) + 1
                                    jl = jh - length
                                dem[lj] += length
                                if h + 1 < hop_leg[lj]:
                                    hop_leg[lj] = h + 1
                                hd = iv_head[lj]
                                if hd >= 0 and iv_hi[hd] == jl:
                                    iv_hi[hd] = jh
                                elif hd >= 0 and iv_lo[hd] == jh:
                                    iv_lo[hd] = jl
                                else:
                                    nn = status[1]
                                    if nn >= iv_lo.shape[0]:
                                        status[0] = 1  # the interval pool is full: rerun larger
                                        return
                                    status[1] = nn + 1
                                    iv_lo[nn] = jl
                                    iv_hi[nn] = jh
                                    iv_next[nn] = hd
                                    iv_head[lj] = nn
                        if hi_t[ii] <= pe:
                            ii += 1
                        else:
                            break
                    p = pe
        if s >= 0 and short[r] > 0:  # undo the shortfall drawn at this leg
            if model == 0 and want[s] > 0:
                o, _ = muldivmod(want[s], short[r], bal_short[r])
                want[s] -= o
                origin_before[r] += o
            elif model == 1 and flag[s] == 1:
                origin_before[r] += short[r]
                if bal_short[r] == short[r]:
                    flag[s] = 0
    # anything still demanded (cannot happen: every balance starts empty) is held from before
    for s in range(n_states):
        if model == 0 and want[s] > 0:
            left[3] += want[s]


_backward_py = python_twin(_backward_kernel)
_backward_jit = numba.njit(cache=True)(_backward_kernel)


def run_account_backward(
    src: np.ndarray, dst: np.ndarray, amount: np.ndarray, is_fee: np.ndarray, seed_row: np.ndarray,
    stop_src: np.ndarray, blocked: np.ndarray, n_states: int, *, model: str, max_hops: int, min_value: int,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Run the backward kernel over one asset's legs in time order; returns the per-leg arrays
    (``dem``, ``hop_leg``, ``origin_mint``, ``origin_before``, ``endpoint``, ``limited``,
    ``limit_of``),
    ``left`` (per :data:`~.propagate.LIMITS`) and ``totals`` ([seed value])."""
    n_all = amount.shape[0]
    seeds = np.flatnonzero(seed_row)
    # Nothing after the last seed leg can have paid for it: run on the legs up to it only.
    n = int(seeds[-1]) + 1 if seeds.shape[0] else 0
    if n < n_all:
        out = run_account_backward(src[:n], dst[:n], amount[:n], is_fee[:n], seed_row[:n], stop_src[:n], blocked,
                                   n_states, model=model, max_hops=max_hops, min_value=min_value)  # fmt: skip
        for k, v in out.items():
            if k not in ("left", "totals"):
                pad = np.full(n_all - n, NO_HOP if k == "hop_leg" else -1 if k == "limit_of" else 0, dtype=v.dtype)
                out[k] = np.concatenate([v, pad])
        return out
    dt = amount.dtype
    lots = MODEL_CODES[model] >= 2
    n_lot = 2 * n + 2 if lots else 1
    n_rec = 3 * n + 3 if lots else 1
    m = n_states if lots else 1
    fn: Any = _backward_py if amount.dtype.kind == "O" else _backward_jit
    # Demanded unit intervals (FIFO/LIFO) live in a pool; when a trace needs more, the
    # kernel stops and runs again with twice the room (rare: a trace touches few legs).
    cap = max(1024, n // 8) if lots else 1
    while True:
        out = {
            "dem": np.zeros(n, dtype=dt), "hop_leg": np.full(n, NO_HOP, dtype=np.int64),
            "origin_mint": np.zeros(n, dtype=dt), "origin_before": np.zeros(n, dtype=dt),
            "endpoint": np.zeros(n, dtype=dt), "left": np.zeros(4, dtype=dt), "totals": np.zeros(1, dtype=dt),
            "limited": np.zeros(n, dtype=dt), "limit_of": np.full(n, -1, dtype=np.int8),
        }  # fmt: skip
        if n == 0:
            return out
        # lot and record slots are written before they are read: np.empty, no fill
        scratch = (
            np.zeros(n_states, dtype=dt), np.zeros(n, dtype=dt), np.zeros(n, dtype=dt), np.zeros(n, dtype=dt),
            np.empty(n_lot, dtype=dt), np.empty(n_lot, dtype=np.int64), np.empty(n_lot, dtype=np.int64),
            np.empty(n_lot, dtype=np.int64), np.full(m, -1, dtype=np.int64), np.full(m, -1, dtype=np.int64),
            np.zeros(n + 1, dtype=np.int64), np.empty(n_rec, dtype=np.int64), np.empty(n_rec, dtype=dt),
            np.zeros(n_states, dtype=dt), np.zeros(n_states, dtype=np.int8), np.full(n_states, NO_HOP, dtype=np.int64),
            np.empty(n_lot, dtype=dt), np.empty(n_rec, dtype=dt),
            np.empty(cap, dtype=dt), np.empty(cap, dtype=dt), np.empty(cap, dtype=np.int64),
            np.full(n if lots else 1, -1, dtype=np.int64), np.zeros(2, dtype=np.int64),
        )  # fmt: skip
        fn(src, dst, amount, is_fee, seed_row, stop_src, blocked, n_states, MODEL_CODES[model], max_hops,
           min_value, out["dem"], out["hop_leg"], out["origin_mint"], out["origin_before"], out["endpoint"],
           out["left"], out["totals"], out["limited"], out["limit_of"], *scratch)  # fmt: skip
        if scratch[-1][0] == 0:
            return out
        cap *= 2
