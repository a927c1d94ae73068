"""Funds-first order of the legs inside a transaction (``flows.leg_order``) and what it does
to traces through conversions: a router swapping a token for ETH (its WETH burn comes
after the WETH reaches it), a contract that unwraps WETH and forwards the ETH, and the
default stop list that lets a trace through DEX contracts when swaps are decoded. Values
are computed by hand in the comments."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from chainsleuth.flows.leg_order import UNKNOWN_STREAM, funds_first_keys
from chainsleuth.flows.trace import STOP_CATEGORIES, default_stop_categories, trace
from chainsleuth.store import Ledger
from test_flows_trace_conversions import add_swaps, by, conserved, tag, tx_hash

T = "0x00000000000000000000000000000000000000aa"  # a token (USDT-like)
WETH = "0x00000000000000000000000000000000000000ee"


COLUMNS = {
    "transactions": ("hash", "block_number", "block_timestamp", "transaction_index", "from_address",
                     "to_address", "value", "gas_price"),
    "receipts": ("transaction_hash", "transaction_index", "block_number", "gas_used", "status",
                 "effective_gas_price"),
    "token_transfers": ("token_address", "from_address", "to_address", "value", "transaction_hash",
                        "log_index", "block_number", "block_timestamp"),
    "traces": ("block_number", "transaction_hash", "transaction_index", "from_address", "to_address",
               "value", "trace_type", "call_type", "trace_address", "status", "block_timestamp"),
}  # fmt: skip


def write_blocks(led: Ledger, chain: str, blocks: Sequence[Sequence[dict[str, Any]]]) -> None:
    """Each tx: {from, to, value, tokens: [(token, from, to, value)], internal: [(from, to, value)]};
    hash ``tx_hash(block, index)``; internal legs are calls in the order given."""
    led.ensure_chain(chain, "ethereum", network="dev")
    cols = COLUMNS
    for h, txs in enumerate(blocks):
        ts = 1_600_000_000 + 12 * h
        t: dict[str, dict[str, list[Any]]] = {name: {k: [] for k in c} for name, c in cols.items()}

        def add(name: str, *values: Any, t: dict[str, dict[str, list[Any]]] = t) -> None:
            for k, v in zip(cols[name], values, strict=True):
                t[name][k].append(v)

        for i, tx in enumerate(txs):
            hsh = tx_hash(h, i)
            add("transactions", hsh, h, ts, i, tx["from"], tx["to"], tx.get("value", 0), 1)
            add("receipts", hsh, i, h, 0, 1, 1)
            for j, (token, f, to, v) in enumerate(tx.get("tokens", [])):
                add("token_transfers", token, f, to, v, hsh, j, h, ts)
            for j, (f, to, v) in enumerate(tx.get("internal", [])):
                add("traces", h, hsh, i, f, to, v, "call", "call", str(j), 1, ts)
        tables: dict[str, Any] = {
            "blocks": {"number": [h], "hash": [f"0xb{h}"], "timestamp": [ts], "miner": ["0xminer"],
                       "base_fee_per_gas": [0]},
            **{name: d for name, d in t.items() if d[cols[name][0]]},
        }  # fmt: skip
        led.write_batch(chain, tables, (h, h))


def router_ledger(tmp_path: Path) -> Ledger:
    """A Uniswap-V2-style token -> ETH swap through a router, as the chain records it:
    token logs (user -> pair T, pair -> router WETH) and internal traces (WETH -> router
    ETH when the router unwraps, router -> user ETH); the burn of the router's WETH has
    no Transfer log (WETH9 emits Withdrawal)."""
    led = Ledger(tmp_path / "r.duckdb")
    write_blocks(led, "eth", [
        [{"from": "0xlp", "to": T, "tokens": [(T, "0xmint", "0xthief", 100), (T, "0xmint", "0xclean", 100),
                                              (WETH, "0xmint", "0xpair", 1000)]}],
        # the user holds 200 T, 100 of them stolen
        [{"from": "0xthief", "to": T, "tokens": [(T, "0xthief", "0xuser", 100)]},
         {"from": "0xclean", "to": T, "tokens": [(T, "0xclean", "0xuser", 100)]}],
        # swapExactTokensForETH: 200 T in, 80 WETH out to the router, unwrapped, 80 ETH to the user
        [{"from": "0xuser", "to": "0xrouter",
          "tokens": [(T, "0xuser", "0xpair", 200), (WETH, "0xpair", "0xrouter", 80)],
          "internal": [(WETH, "0xrouter", 80), ("0xrouter", "0xuser", 80)]}],
        # the user pays 50 ETH to an exchange
        [{"from": "0xuser", "to": "0xex", "value": 50}],
    ])  # fmt: skip
    add_swaps(led, "eth", [
        (tx_hash(2, 0), "0xpair", "0xuser", "0xrouter", T, 200, WETH, 80, "uniswap_v2"),
        (tx_hash(2, 0), WETH, "0xrouter", "0xrouter", WETH, 80, "ETH", 80, "wrapped_native"),
    ])  # fmt: skip
    tag(led, tmp_path, [("0xex", "ETH", "exchange"), ("0xrouter", "ETH", "defi_dex"), ("0xpair", "ETH", "defi_dex")])
    return led


def test_router_token_to_eth(tmp_path: Path) -> None:
    with router_ledger(tmp_path) as led:
        r = trace(led, "eth", ["0xthief"])
        # 100 of the 200 T swapped are stolen -> 100 * 80 // 200 = 40 of the 80 WETH at the router;
        # the router's burn of its 80 WETH comes after they arrive: 40 tainted, unwrapped into
        # 40 of the 80 ETH, all paid to the user; the user pays 50 of its 80 ETH:
        # 40 * 50 / 80 = 25 reach the exchange, 15 stay
        assert r.seed_value == {T: 100}
        assert r.converted_out == {T: 100, WETH: 40} and r.converted_in == {WETH: 40, "ETH": 40}
        assert by(r.endpoints) == {("0xex", "ETH"): 25}
        assert by(r.holdings) == {("0xuser", "ETH"): 15}  # nothing stays on the router (WETH)
        assert [(c["from"], c["to"], c["asset_in"], c["value_in"], c["asset_out"], c["value_out"])
                for c in r.conversions] == [("0xuser", "0xrouter", T, 100, WETH, 40),
                                            ("0xrouter", "0xrouter", WETH, 40, "ETH", 40)]  # fmt: skip
        conserved(r)
        # FIFO: the user's first 100 T (stolen) leave first: all 100 converted -> 40 WETH ->
        # 40 ETH lot at the router, paid first; the user's 40 tainted ETH lot leaves first
        r = trace(led, "eth", ["0xthief"], model="fifo")
        assert by(r.endpoints) == {("0xex", "ETH"): 40} and r.holdings == []
        conserved(r)
        # an explicit stop list with defi_dex: the taint ends at the router, in WETH
        r = trace(led, "eth", ["0xthief"], stop_categories=STOP_CATEGORIES)
        assert by(r.endpoints) == {("0xrouter", WETH): 40} and r.holdings == []
        conserved(r)


def test_contract_unwraps_and_forwards(tmp_path: Path) -> None:
    """Not a DEX: a contract receives WETH (a token log), unwraps it and forwards the ETH
    (internal traces) in one transaction."""
    with Ledger(tmp_path / "f.duckdb") as led:
        write_blocks(led, "eth", [
            [{"from": "0xlp", "to": WETH, "tokens": [(WETH, "0xmint", "0xthief", 100), (WETH, "0xmint", "0xclean", 300)]}],
            [{"from": "0xthief", "to": WETH, "tokens": [(WETH, "0xthief", "0xuser", 100)]},
             {"from": "0xclean", "to": WETH, "tokens": [(WETH, "0xclean", "0xuser", 300)]}],
            [{"from": "0xuser", "to": "0xfwd", "tokens": [(WETH, "0xuser", "0xfwd", 200)],
              "internal": [(WETH, "0xfwd", 200), ("0xfwd", "0xdest", 200)]}],
        ])  # fmt: skip
        add_swaps(led, "eth", [(tx_hash(2, 0), WETH, "0xfwd", "0xfwd", WETH, 200, "ETH", 200, "wrapped_native")])
        r = trace(led, "eth", ["0xthief"])
        # the user holds 400 WETH, 100 stolen; 200 go to the contract: 50 tainted, burnt
        # after they arrive -> 50 of the 200 ETH, forwarded to 0xdest
        assert r.converted_out == {WETH: 50} and r.converted_in == {"ETH": 50}
        assert by(r.holdings) == {("0xuser", WETH): 50, ("0xdest", "ETH"): 50}
        conserved(r)
        r = trace(led, "eth", ["0xthief"], model="fifo")  # the stolen 100 leave the user first
        assert by(r.holdings) == {("0xdest", "ETH"): 100}
        conserved(r)


def test_default_stops(tmp_path: Path) -> None:
    with router_ledger(tmp_path) as led:
        assert default_stop_categories(led, "eth") == tuple(c for c in STOP_CATEGORIES if c != "defi_dex")
        assert default_stop_categories(led, "eth", follow_conversions=False) == STOP_CATEGORIES
        # without conversions the router stops the taint, as T at the pair (the DEX is a stop)
        r = trace(led, "eth", ["0xthief"], follow_conversions=False)
        assert by(r.endpoints) == {("0xpair", T): 100}
    with Ledger(tmp_path / "plain.duckdb") as led:  # no decoded swaps: a DEX contract stays a stop
        write_blocks(led, "eth", [[{"from": "0xa", "to": "0xb", "value": 1}]])
        assert default_stop_categories(led, "eth") == STOP_CATEGORIES


def keys_of(*legs: tuple[int, int, int, int, int, int], before: Sequence[tuple[int, int]] = ()) -> list[int]:
    """legs: (tx, key, src, dst, asset, stream) -> the funds-first keys."""
    a = np.array(legs, dtype=np.int64).reshape(-1, 6)
    got = funds_first_keys(a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4], a[:, 5], np.array(before, dtype=np.int64))
    return [int(k) for k in got]


U = UNKNOWN_STREAM


def test_funds_first_keys_by_hand() -> None:
    # the router case in ids: router 1, pair 2, user 3, WETH contract 4; assets 0 ETH, 5 WETH;
    # legs: the burn router -> WETH (position unknown, placed first), WETH -> router ETH and
    # router -> user ETH (traces), pair -> router WETH (a log); the burn is the unwrap's input,
    # the WETH -> router ETH its output
    router = [(0, 1, 1, 4, 5, U), (0, 2, 4, 1, 0, 0), (0, 4, 1, 3, 0, 0), (0, 6, 2, 1, 5, 1)]
    # WETH in, burn, ETH in, ETH out: the legs trade slots 1, 2, 4, 6
    assert keys_of(*router, before=[(0, 1)]) == [2, 4, 6, 1]
    # without the conversion pair only the burn waits for the WETH
    assert keys_of(*router) == [6, 1, 2, 4]
    # within one stream the recorded order stands, even paying before receiving
    assert keys_of((0, 1, 1, 2, 0, 1), (0, 2, 3, 1, 0, 1)) == [1, 2]
    # a leg of unknown position is moved after the leg into its sender
    assert keys_of((0, 1, 1, 2, 0, U), (0, 2, 3, 1, 0, 1)) == [2, 1]
    # a cycle of unknown-position legs (A pays B, B pays A) keeps the original order
    assert keys_of((0, 1, 1, 2, 0, U), (0, 2, 2, 1, 0, U)) == [1, 2]
    # other transactions and other assets do not constrain a leg
    assert keys_of((0, 1, 1, 5, 7, U), (0, 2, 6, 1, 0, 0), (1, 3, 6, 1, 7, 1)) == [1, 2, 3]
    # a conversion's input comes before its output
    assert keys_of((0, 1, 9, 2, 0, 1), (0, 2, 1, 9, 5, U), before=[(1, 0)]) == [2, 1]


legs_st = st.lists(st.tuples(st.integers(0, 3), st.integers(-1, 4), st.integers(-1, 4), st.integers(0, 1),
                             st.sampled_from([UNKNOWN_STREAM, 0, 1])), min_size=1, max_size=30)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(legs=legs_st, seed=st.integers(0, 2**16))
def test_funds_first_keys_properties(legs: list[tuple[int, int, int, int, int]], seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = np.array(legs, dtype=np.int64)
    tx, src, dst, asset, stream = (a[:, i] for i in range(5))
    key = rng.permutation(3 * len(legs))[: len(legs)].astype(np.int64)
    got = funds_first_keys(tx, key, src, dst, asset, stream)
    for t in np.unique(tx):  # each transaction's legs trade their key slots among themselves
        m = tx == t
        assert sorted(got[m].tolist()) == sorted(key[m].tolist())
        for s in (0, 1):  # legs of one recorded stream keep their order
            ms = m & (stream == s)
            assert np.array_equal(np.argsort(got[ms]), np.argsort(key[ms]))
        # after the reorder no leg of unknown position pays out of an address before a leg
        # into it arrives, unless the two wait for each other (a cycle); self-transfers
        # neither bring nor need funds
        idx = np.nonzero(m)[0]
        pos = {int(g): i for i, g in enumerate(idx)}
        k = idx.shape[0]
        reach = np.eye(k, dtype=np.bool_)  # reach[i, j]: leg i must come (transitively) before leg j
        for u in idx:
            if dst[u] < 0 or src[u] == dst[u]:
                continue
            for v in idx:
                if u != v and src[v] == dst[u] and src[v] != dst[v] and asset[v] == asset[u] and (
                        stream[u] == UNKNOWN_STREAM or stream[u] != stream[v]):  # fmt: skip
                    reach[pos[int(u)], pos[int(v)]] = True
        for s in (0, 1):
            ms = idx[stream[idx] == s]
            ms = ms[np.argsort(key[ms])]
            for a_, b_ in itertools.pairwise(ms):
                reach[pos[int(a_)], pos[int(b_)]] = True
        for _ in range(k):  # transitive closure (k <= 30)
            reach = reach | ((reach.astype(np.int64) @ reach.astype(np.int64)) > 0)
        for u in idx:
            for v in idx:
                i, j = pos[int(u)], pos[int(v)]
                if reach[i, j] and got[v] < got[u]:
                    assert reach[j, i], (int(u), int(v))  # only inside a cycle
    # each asset's legs in one recorded stream (no added legs): nothing moves, which is why
    # the trace orders only the transactions with conversions
    assert np.array_equal(funds_first_keys(tx, key, src, dst, asset, asset), key)
