"""Order the legs inside one transaction so that funds arrive before they leave.

An account-chain transaction is recorded as separate streams, each in its own
execution order: the top-level value transfer (executed first), the internal value
transfers of the call tree (``traces``, depth-first call order), and the token
``Transfer`` logs (log index). How the streams interleave is not recorded:
ethereum-etl exports traces and logs as separate datasets, and receipts place a
log in the log sequence only, not in the call tree; recovering the interleaving
needs the full call tree with each call's logs (e.g. geth's ``callTracer`` with
``withLog``), which the ledger does not keep. The ``transfers`` view therefore
orders a transaction's legs by kind (native < internal < token), a convention,
and the legs that :mod:`.trace` adds for wrapped-native conversions (WETH9 mints
and burns without a ``Transfer`` event) are placed next to their native leg, by
another convention.

A taint kernel that runs the legs in that order can move value out of an
address before it arrives: a router swapping a token for ETH receives WETH from
the pair (a token log) and unwraps it (an added burn placed with the internal
ETH legs, before every token log), so its burn spends no tainted WETH and the
taint stays on the router for later, unrelated swaps to pick up.

The rule here: *an address pays only what it has received*. Within a
transaction, a leg of asset X out of address A comes after the legs of X into A
whose relative order is not recorded (legs of different streams, or an added
leg), and a conversion's input leg comes before its output leg; legs of one
stream keep their recorded (execution) order. The legs are then put in a
topological order of these constraints, ties kept in the original order; a
cycle (legs that each wait for another, e.g. a flash loan paid back in the same
transaction) is broken at its earliest leg in the original order.

False-positive / limits: the rule assumes an intermediary forwards received
value rather than paying from an earlier balance; where a contract pays out
first from its own balance and is refilled later in the same transaction (a
flash-loan provider, a batch payout topped up at the end), the reordered legs
move more of the received taint on than happened. Within one stream the
recorded order is kept, so the rule only moves legs whose position was a
convention.
"""

from __future__ import annotations

import heapq

import numpy as np

UNKNOWN_STREAM = -1  # a leg whose position among the transaction's legs is not recorded


def _flagged_transactions(tx: np.ndarray, key: np.ndarray, src: np.ndarray, dst: np.ndarray,
                          asset: np.ndarray, stream: np.ndarray, before: np.ndarray) -> np.ndarray:  # fmt: skip
    """Transactions that may need reordering (vectorised): an (address, asset) of the
    transaction pays out before it is paid in, by legs of more than one stream or with a
    leg of unknown position; or a ``before`` pair is in the wrong order."""
    n = key.shape[0]
    legs = np.arange(n, dtype=np.int64)
    out_m, in_m = src >= 0, dst >= 0
    ev_leg = np.concatenate([legs[out_m], legs[in_m]])
    ev_addr = np.concatenate([src[out_m], dst[in_m]])
    ev_out = np.concatenate([np.ones(int(out_m.sum()), dtype=np.bool_), np.zeros(int(in_m.sum()), dtype=np.bool_)])
    flagged = np.zeros(0, dtype=np.int64)
    if ev_leg.shape[0]:
        ev_tx, ev_asset = tx[ev_leg], asset[ev_leg]
        order = np.lexsort((ev_addr, ev_asset, ev_tx))
        ev_leg, ev_addr, ev_out, ev_tx, ev_asset = (a[order] for a in (ev_leg, ev_addr, ev_out, ev_tx, ev_asset))
        new_group = np.ones(ev_leg.shape[0], dtype=np.bool_)
        new_group[1:] = (ev_tx[1:] != ev_tx[:-1]) | (ev_asset[1:] != ev_asset[:-1]) | (ev_addr[1:] != ev_addr[:-1])
        starts = np.nonzero(new_group)[0]
        ev_key = key[ev_leg]
        big = np.iinfo(np.int64).max
        first_out = np.minimum.reduceat(np.where(ev_out, ev_key, big), starts)
        last_in = np.maximum.reduceat(np.where(ev_out, -big, ev_key), starts)
        ev_stream = stream[ev_leg]
        mixed = (np.minimum.reduceat(ev_stream, starts) == UNKNOWN_STREAM) | (
            np.minimum.reduceat(ev_stream, starts) != np.maximum.reduceat(ev_stream, starts))  # fmt: skip
        flagged = ev_tx[starts[(first_out < last_in) & mixed]]
    if before.shape[0]:
        late = key[before[:, 0]] > key[before[:, 1]]
        flagged = np.concatenate([flagged, tx[before[late, 0]]])
    return np.unique(flagged)


def _constraints(legs: np.ndarray, src: np.ndarray, dst: np.ndarray, asset: np.ndarray,
                 stream: np.ndarray, before: list[tuple[int, int]]) -> list[set[int]]:  # fmt: skip
    """Successor sets over local indices (``legs`` sorted by key): recorded order within
    each stream, funds first where the order is not recorded, and the ``before`` pairs.
    A self-transfer (src == dst) neither brings nor needs funds, so it constrains nothing."""
    m = legs.shape[0]
    local = {int(g): i for i, g in enumerate(legs.tolist())}
    succ: list[set[int]] = [set() for _ in range(m)]
    last_of_stream: dict[int, int] = {}
    for i, g in enumerate(legs.tolist()):  # recorded order within each stream
        s = int(stream[g])
        if s != UNKNOWN_STREAM:
            if s in last_of_stream:
                succ[last_of_stream[s]].add(i)
            last_of_stream[s] = i
    for i, u in enumerate(legs.tolist()):  # funds first, where the order is not recorded
        if dst[u] < 0 or src[u] == dst[u]:
            continue
        for j, v in enumerate(legs.tolist()):
            if i != j and src[v] == dst[u] and src[v] != dst[v] and asset[v] == asset[u] and (
                    stream[u] == UNKNOWN_STREAM or stream[u] != stream[v]):  # fmt: skip
                succ[i].add(j)
    for u, v in before:
        if u in local and v in local and u != v:
            succ[local[u]].add(local[v])
    return succ


def _components(succ: list[set[int]]) -> list[int]:
    """Strongly connected component id per node (Tarjan, iterative; graphs of a few legs)."""
    m = len(succ)
    index, low, comp = [-1] * m, [0] * m, [-1] * m
    on_stack = [False] * m
    stack: list[int] = []
    counter = n_comp = 0
    for root in range(m):
        if index[root] >= 0:
            continue
        work = [(root, iter(sorted(succ[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if index[nxt] < 0:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack[nxt] = True
                    work.append((nxt, iter(sorted(succ[nxt]))))
                elif on_stack[nxt]:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                while True:
                    w = stack.pop()
                    on_stack[w] = False
                    comp[w] = n_comp
                    if w == node:
                        break
                n_comp += 1
    return comp


def _order_one(legs: np.ndarray, key: np.ndarray, src: np.ndarray, dst: np.ndarray, asset: np.ndarray,
               stream: np.ndarray, before: list[tuple[int, int]]) -> list[int]:  # fmt: skip
    """A topological order of one transaction's legs (``legs`` sorted by key). Legs that
    wait for each other (a cycle) form one component and keep their original order; the
    components are ordered topologically, the earliest ready component first."""
    succ = _constraints(legs, src, dst, asset, stream, before)
    comp = _components(succ)
    n_comp = max(comp) + 1 if comp else 0
    members: list[list[int]] = [[] for _ in range(n_comp)]
    for i, c in enumerate(comp):
        members[c].append(i)  # ascending local index = original order
    csucc: list[set[int]] = [set() for _ in range(n_comp)]
    for i, js in enumerate(succ):
        for j in js:
            if comp[i] != comp[j]:
                csucc[comp[i]].add(comp[j])
    indeg = [0] * n_comp
    for c in range(n_comp):
        for d in csucc[c]:
            indeg[d] += 1
    ready = [(members[c][0], c) for c in range(n_comp) if indeg[c] == 0]
    heapq.heapify(ready)
    out: list[int] = []
    while ready:
        _, c = heapq.heappop(ready)
        out.extend(int(legs[i]) for i in members[c])
        for d in csucc[c]:
            indeg[d] -= 1
            if indeg[d] == 0:
                heapq.heappush(ready, (members[d][0], d))
    return out


def funds_first_keys(tx: np.ndarray, key: np.ndarray, src: np.ndarray, dst: np.ndarray, asset: np.ndarray,
                     stream: np.ndarray, before: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Sort keys that put each transaction's legs in funds-first order (module docstring).

    Per leg: ``tx`` (transaction id), ``key`` (unique sort key; a transaction's legs
    need not be adjacent in it), ``src``/``dst`` (address ids, -1 for none), ``asset``,
    ``stream`` (legs of one transaction with the same stream >= 0 keep their order;
    :data:`UNKNOWN_STREAM` for a leg whose position is not recorded). ``before``: (k, 2)
    leg index pairs that must stay in that order (a conversion's input and output legs).

    Returns a copy of ``key`` in which each reordered transaction's legs trade their key
    slots among themselves; the transactions are found by a vectorised test and only those
    are ordered (in Python, a few legs each).
    """
    before = np.zeros((0, 2), dtype=np.int64) if before is None else np.asarray(before, dtype=np.int64).reshape(-1, 2)
    new_key = np.array(key, dtype=np.int64, copy=True)
    flagged = _flagged_transactions(tx, key, src, dst, asset, stream, before)
    if flagged.shape[0] == 0:
        return new_key
    in_flagged = np.isin(tx, flagged)
    rows = np.nonzero(in_flagged)[0]
    rows = rows[np.lexsort((key[rows], tx[rows]))]
    bounds = np.nonzero(np.diff(tx[rows]))[0] + 1
    pairs_of: dict[int, list[tuple[int, int]]] = {}
    for u, v in before.tolist():
        if in_flagged[u]:
            pairs_of.setdefault(int(tx[u]), []).append((int(u), int(v)))
    for group in np.split(rows, bounds):
        order = _order_one(group, key, src, dst, asset, stream, pairs_of.get(int(tx[group[0]]), []))
        new_key[np.asarray(order, dtype=np.int64)] = key[group]  # group is sorted by key: its slots in order
    return new_key
