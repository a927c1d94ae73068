"""Taint models: hand-computed cases on both ledger models, and property tests.

UTXO cases run the pure rules of ``flows.models`` and the compiled trace over a
ledger written with ``entities.synthetic``; account cases write transactions,
receipts and token transfers into a real ledger and trace them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainsleuth.entities.synthetic import Tx, write_utxo_blocks
from chainsleuth.errors import ChainsleuthError
from chainsleuth.flows import propagate
from chainsleuth.flows.models import fifo, haircut, largest_remainder, lifo, poison, rule
from chainsleuth.flows.trace import TraceResult, trace
from chainsleuth.store import Ledger

# -- the pure rules, by hand ------------------------------------------------------------------


def test_largest_remainder_exact() -> None:
    assert largest_remainder(10, [1, 1, 1]) == [4, 3, 3]  # ties go to the lowest index
    assert largest_remainder(7, [2, 5]) == [2, 5]
    assert largest_remainder(0, [3, 4]) == [0, 0]
    assert largest_remainder(5, [0, 0]) == [0, 0]


def test_mixed_inputs_split_with_fee() -> None:
    # inputs: 1000 tainted + 3000 clean; outputs 2000 and 1900; fee 100
    vin, tin, vout, fee = [1000, 3000], [1000, 0], [2000, 1900], 100
    assert haircut(vin, tin, vout, fee) == ([500, 475], 25)
    assert poison(vin, tin, vout, fee) == ([2000, 1900], 100)
    assert fifo(vin, tin, vout, fee) == ([1000, 0], 0)  # the first 1000 units are tainted
    assert lifo(vin, tin, vout, fee) == ([0, 900], 100)  # clean 3000 leaves first


def test_merge_and_partial_taint() -> None:
    # two partly tainted inputs merge into one output (a consolidation), fee 10
    vin, tin = [600, 400], [300, 100]
    assert haircut(vin, tin, [990], 10) == ([396], 4)
    assert fifo(vin, tin, [990], 10) == ([400], 0)
    assert lifo(vin, tin, [990], 10) == ([400], 0)
    assert poison(vin, tin, [990], 10) == ([990], 10)


def test_split_rounding_conserves() -> None:
    # 1 tainted unit of 3 split three ways: largest remainder gives it to the first output
    assert haircut([3], [1], [1, 1, 1], 0) == ([1, 0, 0], 0)
    assert haircut([10], [7], [3, 3, 3], 1) == ([2, 2, 2], 1)
    assert sum(haircut([10], [7], [3, 3, 3], 1)[0]) + 1 == 7


def test_fifo_order_inside_outputs() -> None:
    # clean input first, tainted second: FIFO pays the tainted part to the later output
    assert fifo([50, 50], [0, 50], [60, 40], 0) == ([10, 40], 0)
    assert lifo([50, 50], [0, 50], [60, 40], 0) == ([50, 0], 0)


def test_rule_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="inputs must equal"):
        haircut([10], [5], [9], 0)
    with pytest.raises(ValueError, match="taint outside"):
        haircut([10], [11], [10], 0)
    with pytest.raises(ChainsleuthError, match="unknown taint model"):
        rule("median")


def test_muldivmod_128_matches_python() -> None:
    for a, b, c in [(2**62 + 5, 2**62 + 7, 2**62 + 9), (2**63 - 1, 2**63 - 1, 2**63 - 1), (3, 5, 7)]:
        assert propagate._muldivmod_128(a, b, c) == divmod(a * b, c)


# -- property tests on the pure rules ---------------------------------------------------------


@st.composite
def pools(draw: Any) -> tuple[list[int], list[int], list[int], int]:
    vin = draw(st.lists(st.integers(0, 10**20), min_size=1, max_size=6))
    tin = [draw(st.integers(0, v)) for v in vin]
    total = sum(vin)
    fee = draw(st.integers(0, total))
    n = draw(st.integers(1, 6))
    cuts = sorted(draw(st.lists(st.integers(0, total - fee), min_size=n - 1, max_size=n - 1)))
    bounds = [0, *cuts, total - fee]
    vout = [bounds[i + 1] - bounds[i] for i in range(n)]
    return vin, tin, vout, fee


@given(pools())
@settings(max_examples=300, deadline=None)
def test_properties(pool: tuple[list[int], list[int], list[int], int]) -> None:
    vin, tin, vout, fee = pool
    t = sum(tin)
    hc, hf = haircut(vin, tin, vout, fee)
    pc, pf = poison(vin, tin, vout, fee)
    for r in (haircut, fifo, lifo):
        out, f = r(vin, tin, vout, fee)
        assert sum(out) + f == t  # never created, never lost beyond the fee
        assert all(0 <= o <= v for o, v in zip(out, vout, strict=True)) and 0 <= f <= fee
    assert all(p >= h >= 0 for p, h in zip(pc, hc, strict=True)) and pf >= hf >= 0


# -- synthetic ledgers ------------------------------------------------------------------------


def _utxo_ledger(tmp_path: Path) -> Ledger:
    led = Ledger(tmp_path / "u.duckdb")
    write_utxo_blocks(led, "btc", [
        [Tx("c0", [], [("thief", 1000)]), Tx("c1", [], [("clean", 3000)])],
        # mixed inputs, split, fee 100
        [Tx("t1", [("c0", 0), ("c1", 0)], [("a", 2000), ("b", 1900)])],
        # partial spend of a's coin to the exchange, change back to a (self-transfer), fee 0
        [Tx("t2", [("t1", 0)], [("ex", 1500), ("a", 500)])],
        # a spends its change back to itself twice (a cycle a -> a -> a), fee 20 then 0
        [Tx("t3", [("t2", 1)], [("a", 480)])],
        [Tx("t4", [("t3", 0)], [("a", 480)])],
    ])  # fmt: skip
    return led


def _tag_exchange(led: Ledger, tmp_path: Path, currency: str, address: str) -> None:
    from chainsleuth.tags import import_tags

    f = tmp_path / "tags.csv"
    f.write_text(f"address,currency,label,category,confidence\n{address},{currency},Test Exchange,exchange,service_data\n")
    import_tags(led, "csv", f)


def _by(rows: list[dict[str, Any]], key: str = "address") -> dict[str, int]:
    return {r[key]: r["value"] for r in rows}


def test_utxo_trace_all_models(tmp_path: Path) -> None:
    led = _utxo_ledger(tmp_path)
    _tag_exchange(led, tmp_path, "BTC", "ex")
    expect = {
        # haircut: t1 gives a 500 and b 475, fee 25; t2 sends 375 to ex, 125 back to a;
        # t3 pays 5 of a's 125 as fee (125*20/500)
        "haircut": ({"ex": 375}, {"a": 120, "b": 475}, 30),
        "fifo": ({"ex": 1000}, {}, 0),
        "lifo": ({}, {"b": 900}, 100),
    }
    for model, (endpoints, holdings, fee) in expect.items():
        r = trace(led, "btc", ["thief"], model=model)
        assert _by(r.endpoints) == endpoints, model
        assert _by(r.holdings) == holdings, model
        assert r.fees.get("BTC", 0) == fee, model
        assert r.seed_value == {"BTC": 1000}
        assert r.accounted("BTC") == 1000 and r.accounted_share("BTC") == 1
    r = trace(led, "btc", ["thief"], model="poison")
    assert _by(r.endpoints) == {"ex": 1500} and _by(r.holdings) == {"a": 480, "b": 1900}
    assert r.endpoints[0]["category"] == "exchange" and r.endpoints[0]["labels"] == ["Test Exchange"]
    led.close()


def test_utxo_seeds_limits_and_backward(tmp_path: Path) -> None:
    led = _utxo_ledger(tmp_path)
    # output seed and txid seed
    r = trace(led, "btc", ["t1:1"], stop_categories=())
    assert r.seed_value == {"BTC": 1900} and _by(r.holdings) == {"b": 1900}
    r = trace(led, "btc", ["t2"], stop_categories=())
    assert r.seed_value == {"BTC": 2000} and r.fees == {"BTC": 20}
    assert _by(r.holdings) == {"ex": 1500, "a": 480}
    # hops: one hop reaches a and b; t2 would be hop 2 -> 500 left untraced at a's coin
    r = trace(led, "btc", ["thief"], hops=1, stop_categories=())
    assert r.left == {"hops": {"BTC": 500}} and _by(r.holdings) == {"b": 475}
    assert r.accounted("BTC") + 500 == 1000
    # min-value: the 125 change share and everything below 400 is not followed
    r = trace(led, "btc", ["thief"], min_value=400, stop_categories=())
    assert r.left == {"min_value": {"BTC": 375 + 125}}
    # max-fanout 1: t1 has two outputs
    r = trace(led, "btc", ["thief"], max_fanout=1, stop_categories=())
    assert r.left == {"max_fanout": {"BTC": 1000}}
    # time window: until block 1 (t1) only
    r = trace(led, "btc", ["thief"], until=1_500_000_000 + 600, stop_categories=())
    assert _by(r.holdings) == {"a": 500, "b": 475}
    # backward from the exchange deposit: 1500 = 375 from thief + 1125 from clean
    r = trace(led, "btc", ["t2:0"], backward=True, stop_categories=())
    assert _by(r.holdings) == {"thief": 375, "clean": 1125}
    with pytest.raises(ChainsleuthError, match="does not occur"):
        trace(led, "btc", ["nobody"])
    with pytest.raises(ChainsleuthError, match="not in chain"):
        trace(led, "btc", ["t9:0"])
    led.close()


@given(st.lists(st.tuples(st.integers(1, 5), st.integers(0, 50)), min_size=1, max_size=8))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fifo_equals_haircut_on_single_input_chains(tmp_path: Path, steps: list[tuple[int, int]]) -> None:
    """A chain of single-input transactions from a fully tainted coin: every
    output is fully tainted under both FIFO and haircut."""
    import uuid

    blocks: list[list[Tx]] = [[Tx("s", [], [("seed", 10**8)])]]
    prev, value = ("s", 0), 10**8
    for k, (n_out, fee) in enumerate(steps):
        fee = min(fee, value - n_out)
        each = (value - fee) // n_out
        outs: list[tuple[str | None, int]] = [(f"x{k}_{i}", each) for i in range(n_out)]
        outs[0] = (outs[0][0], value - fee - each * (n_out - 1))
        blocks.append([Tx(f"t{k}", [prev], outs)])
        prev, value = (f"t{k}", 0), outs[0][1]
    with Ledger(tmp_path / f"{uuid.uuid4().hex}.duckdb") as led:
        write_utxo_blocks(led, "btc", blocks)
        a = trace(led, "btc", ["seed"], model="fifo", stop_categories=())
        b = trace(led, "btc", ["seed"], model="haircut", stop_categories=())
        assert _by(a.holdings) == _by(b.holdings) and a.fees == b.fees
        assert a.accounted("BTC") == 10**8


# -- account ledgers --------------------------------------------------------------------------

TOKEN = "0x00000000000000000000000000000000000000tt"


def write_account_blocks(led: Ledger, chain: str, blocks: Sequence[Sequence[dict[str, Any]]]) -> None:
    """Each tx: {from, to, value, gas_fee?, tokens: [(from, to, value)]}; one batch per block."""
    led.ensure_chain(chain, "ethereum", network="dev")
    for h, txs in enumerate(blocks):
        ts = 1_600_000_000 + 12 * h
        t: dict[str, list[Any]] = {k: [] for k in ("hash", "block_number", "block_timestamp", "transaction_index",
                                                   "from_address", "to_address", "value", "gas_price")}  # fmt: skip
        rc: dict[str, list[Any]] = {k: [] for k in ("transaction_hash", "transaction_index", "block_number",
                                                    "gas_used", "status", "effective_gas_price")}  # fmt: skip
        tt: dict[str, list[Any]] = {k: [] for k in ("token_address", "from_address", "to_address", "value",
                                                    "transaction_hash", "log_index", "block_number",
                                                    "block_timestamp")}  # fmt: skip
        for i, tx in enumerate(txs):
            hsh = f"0x{h:04x}{i:04x}"
            for k, v in (("hash", hsh), ("block_number", h), ("block_timestamp", ts), ("transaction_index", i),
                         ("from_address", tx["from"]), ("to_address", tx["to"]), ("value", tx.get("value", 0)),
                         ("gas_price", 1)):  # fmt: skip
                t[k].append(v)
            for k, v in (("transaction_hash", hsh), ("transaction_index", i), ("block_number", h),
                         ("gas_used", tx.get("gas_fee", 0)), ("status", 1), ("effective_gas_price", 1)):  # fmt: skip
                rc[k].append(v)
            for j, (f, to, v) in enumerate(tx.get("tokens", [])):
                for k, x in (("token_address", TOKEN), ("from_address", f), ("to_address", to), ("value", v),
                             ("transaction_hash", hsh), ("log_index", j), ("block_number", h),
                             ("block_timestamp", ts)):  # fmt: skip
                    tt[k].append(x)
        tables: dict[str, Any] = {
            "blocks": {"number": [h], "hash": [f"0xb{h}"], "timestamp": [ts], "miner": ["0xminer"],
                       "base_fee_per_gas": [0]},
            "transactions": t, "receipts": rc,
        }  # fmt: skip
        if tt["token_address"]:
            tables["token_transfers"] = tt
        led.write_batch(chain, tables, (h, h))


def _acct(tmp_path: Path) -> Ledger:
    led = Ledger(tmp_path / "a.duckdb")
    write_account_blocks(led, "eth", [
        [{"from": "0xfund", "to": "0xthief", "value": 100}],  # the heist lands at the thief
        [{"from": "0xclean", "to": "0xmule", "value": 300}],  # mule has 300 clean
        [{"from": "0xthief", "to": "0xmule", "value": 100}],  # ... then 100 tainted
        # mule pays 200 to the exchange, gas 8 from its balance
        [{"from": "0xmule", "to": "0xex", "value": 200, "gas_fee": 8}],
        # self-transfer and a cycle mule -> other -> mule
        [{"from": "0xmule", "to": "0xmule", "value": 50}],
        [{"from": "0xmule", "to": "0xother", "value": 92}],
        [{"from": "0xother", "to": "0xmule", "value": 92}],
    ])  # fmt: skip
    return led


def _check_conservation(r: TraceResult) -> None:
    for asset, seed in r.seed_value.items():
        left = sum(d.get(asset, 0) for d in r.left.values())
        assert r.accounted(asset) + left == seed


def test_account_models_by_hand(tmp_path: Path) -> None:
    led = _acct(tmp_path)
    _tag_exchange(led, tmp_path, "ETH", "0xex")
    # haircut: mule holds 400 (100 tainted); gas 8 carries floor(100*8/400)=2 (gas is debited
    # after the value leg: 200 carries 50, leaving 50 of 200; then 8 carries 2 -> 48 of 192);
    # the self-transfer keeps 48 of 192; 92 to other carries floor(48*92/192)=23, and it comes back.
    r = trace(led, "eth", ["0xthief"], model="haircut")
    assert _by(r.endpoints) == {"0xex": 50} and r.fees == {"ETH": 2}
    assert _by(r.holdings) == {"0xmule": 48}
    _check_conservation(r)
    # FIFO: mule's lots are 300 clean then 100 tainted: 200 + 8 are clean, 92 of the
    # remaining (92 clean, 100 tainted) ... self-transfer of 50 takes clean 50 and re-adds it at the end
    r = trace(led, "eth", ["0xthief"], model="fifo")
    assert _by(r.endpoints) == {} and r.fees == {}
    # lots after the self-transfer: clean 42, tainted 100, clean 50; 92 to other = 42 clean + 50 tainted
    assert [(e["from"], e["to"], e["value"]) for e in r.edges] == [
        ("0xthief", "0xmule", 100), ("0xmule", "0xother", 50), ("0xother", "0xmule", 50)]
    assert _by(r.holdings) == {"0xmule": 100}
    # LIFO: the tainted 100 arrived last and leaves first: 100 of the 200 go to the exchange
    r = trace(led, "eth", ["0xthief"], model="lifo")
    assert _by(r.endpoints) == {"0xex": 100} and _by(r.holdings) == {}
    _check_conservation(r)
    r = trace(led, "eth", ["0xthief"], model="poison")
    assert _by(r.endpoints) == {"0xex": 200} and r.fees == {"ETH": 8}
    assert _by(r.holdings) == {"0xmule": 192}  # other sent its 92 back
    # backward (tests/test_flows_backward_account.py): the exchange's 200 = 150 clean + 50 via the thief
    r = trace(led, "eth", ["0xex"], backward=True)
    assert _by(r.holdings) == {"0xclean": 150, "0xfund": 50}
    with pytest.raises(ChainsleuthError, match="does not occur"):
        trace(led, "eth", ["0xnobody"])
    with pytest.raises(ChainsleuthError, match="account chain"):
        trace(led, "eth", ["0xabc:1"])
    led.close()


def test_account_tokens_and_big_values(tmp_path: Path) -> None:
    big = 10**24  # beyond int64: the exact (Python int) path of the kernel
    with Ledger(tmp_path / "t.duckdb") as led:
        write_account_blocks(led, "eth", [
            [{"from": "0xfund", "to": "0xthief", "value": 3 * big,
              "tokens": [("0xmint", "0xthief", 1000)]}],
            [{"from": "0xthief", "to": "0xa", "value": big, "tokens": [("0xthief", "0xa", 400)]}],
            [{"from": "0xclean", "to": "0xa", "value": 2 * big, "tokens": [("0xclean", "0xa", 600)]}],
            [{"from": "0xa", "to": "0xb", "value": 3 * big // 2, "tokens": [("0xa", "0xb", 500)]}],
        ])  # fmt: skip
        r = trace(led, "eth", ["0xthief"], model="haircut", stop_categories=())
        assert r.seed_value == {"ETH": 3 * big, TOKEN: 1000}
        h = {(x["address"], x["asset"]): x["value"] for x in r.holdings}
        assert h == {("0xthief", "ETH"): 2 * big, ("0xa", "ETH"): big // 2, ("0xb", "ETH"): big // 2,
                     ("0xthief", TOKEN): 600, ("0xa", TOKEN): 200, ("0xb", TOKEN): 200}  # fmt: skip
        _check_conservation(r)


@st.composite
def seeded_pools(draw: Any) -> tuple[list[int], list[bool], list[int], int]:
    vin = draw(st.lists(st.integers(1, 10**15), min_size=1, max_size=5))
    seeded = draw(st.lists(st.booleans(), min_size=len(vin), max_size=len(vin)))
    total = sum(vin)
    fee = draw(st.integers(0, total // 10))
    n = draw(st.integers(1, 5))
    cuts = sorted(draw(st.lists(st.integers(0, total - fee), min_size=n - 1, max_size=n - 1)))
    bounds = [0, *cuts, total - fee]
    return vin, seeded, [bounds[i + 1] - bounds[i] for i in range(n)], fee


@given(seeded_pools(), st.sampled_from(["haircut", "poison", "fifo", "lifo"]))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_compiled_kernel_matches_rules(
    tmp_path: Path, pool: tuple[list[int], list[bool], list[int], int], model: str
) -> None:
    """The compiled UTXO propagation gives exactly the reference rule's outputs and fee."""
    import uuid

    vin, seeded, vout, fee = pool
    if not any(seeded):
        seeded[0] = True
    coinbases = [Tx(f"c{i}", [], [(f"in{i}", v)]) for i, v in enumerate(vin)]
    spend = Tx("s", [(f"c{i}", 0) for i in range(len(vin))], [(f"out{j}", v) for j, v in enumerate(vout)])
    with Ledger(tmp_path / f"{uuid.uuid4().hex}.duckdb") as led:
        write_utxo_blocks(led, "btc", [coinbases, [spend]])
        r = trace(led, "btc", [f"c{i}:0" for i in range(len(vin)) if seeded[i]], model=model, stop_categories=())
    want, want_fee = rule(model)(vin, [v if s else 0 for v, s in zip(vin, seeded, strict=True)], vout, fee)
    got = _by(r.holdings)
    assert [got.get(f"out{j}", 0) for j in range(len(vout))] == want
    assert r.fees.get("BTC", 0) == want_fee


@st.composite
def account_legs(draw: Any) -> tuple[list[tuple[int, int, int, bool]], int]:
    """Random legs (src, dst, amount, is_fee) among 5 accounts; account 0 is the seed."""
    n = draw(st.integers(1, 25))
    legs = []
    for _ in range(n):
        src = draw(st.integers(-1, 4))
        dst = draw(st.integers(-1, 4))
        legs.append((src, dst, draw(st.integers(0, 10**6)), src >= 0 and draw(st.booleans())))
    return legs, 5


def _run_legs(legs: list[tuple[int, int, int, bool]], n: int, model: str, big: bool = False) -> dict[str, Any]:
    import numpy as np

    scale = 10**20 if big else 1  # big: the exact Python-int path of the same kernel
    src = np.array([x[0] for x in legs], dtype=np.int64)
    dst = np.array([x[1] for x in legs], dtype=np.int64)
    amount = np.array([x[2] * scale for x in legs], dtype=object if big else np.int64)
    is_fee = np.array([x[3] for x in legs], dtype=np.bool_)
    seed_row = dst == 0
    seed_state = np.zeros(n, dtype=np.int8)
    seed_state[0] = 1
    no = np.zeros(len(legs), dtype=np.bool_)
    return propagate.run_account(src, dst, amount, is_fee, seed_row, no, seed_state, np.zeros(n, dtype=np.bool_), n,
                                 model=model, max_hops=1 << 29, min_value=0)  # fmt: skip


@given(account_legs(), st.sampled_from(["haircut", "fifo", "lifo"]), st.booleans())
@settings(max_examples=200, deadline=None)
def test_account_kernel_conserves(case: tuple[list[tuple[int, int, int, bool]], int], model: str, big: bool) -> None:
    """Balance-level taint is never created or lost: seeded = held + fees, and never above balance."""
    legs, n = case
    out = _run_legs(legs, n, model, big)
    held = sum(int(x) for x in out["tnt"])
    assert held + int(out["totals"][0]) == int(out["totals"][1])
    assert all(0 <= int(t) <= int(b) for t, b in zip(out["tnt"], out["bal"], strict=True))
    poison = _run_legs(legs, n, "poison", big)
    if model == "haircut":  # poison >= haircut >= 0 per account
        assert all(int(p) >= int(h) >= 0 for p, h in zip(poison["tnt"], out["tnt"], strict=True))


@given(st.lists(st.tuples(st.integers(1, 10**6), st.integers(0, 10**4)), min_size=1, max_size=10))
@settings(max_examples=100, deadline=None)
def test_account_fifo_equals_haircut_on_single_source_chains(steps: list[tuple[int, int]]) -> None:
    """A chain seed -> 1 -> 2 -> ... where each account has one (tainted) source."""
    legs: list[tuple[int, int, int, bool]] = [(-1, 0, sum(a + f for a, f in steps) + 1, False)]
    for k, (amount, fee) in enumerate(steps):
        legs += [(k, k + 1, amount + sum(a + f for a, f in steps[k + 1:]), False), (k, -1, fee, True)]
    n = len(steps) + 1
    a, b = _run_legs(legs, n, "fifo"), _run_legs(legs, n, "haircut")
    assert [int(x) for x in a["tnt"]] == [int(x) for x in b["tnt"]]
    assert int(a["totals"][0]) == int(b["totals"][0])
