"""Exposure on hand-built UTXO and account ledgers; every expected value computed by hand
(the arithmetic is in the comments)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chainsleuth.entities.schema import ensure_entities_schema
from chainsleuth.errors import ConfigError, StoreError
from chainsleuth.flows.categories import CATEGORY_INDEX, category_of_tags
from chainsleuth.flows.exposure import (
    ExposureInput,
    build_exposure,
    entity_exposure_of,
    exposure_of,
    run_sweeps,
)
from chainsleuth.store import Ledger
from chainsleuth.tags import import_tags


def _tags(ledger: Ledger, tmp_path: Path, rows: list[tuple[str, str, str]]) -> None:
    f = tmp_path / "tags.csv"
    f.write_text("address,currency,label,category,confidence\n"
                 + "".join(f"{a},{c},{a} label,{cat},forensic\n" for a, c, cat in rows))  # fmt: skip
    import_tags(ledger, "csv", f)


def _pick(result: dict[str, Any], direction: str, category: str, asset: str | None = None) -> tuple:
    rows = [r for r in result["exposure"] if r["direction"] == direction
            and r["category"] == category and (asset is None or r["asset"] == asset)]  # fmt: skip
    if not rows:
        return (0, 0)
    (r,) = rows
    return (r["direct_value"], r["indirect_value"])


# ---------------------------------------------------------------------------------------
# UTXO
# ---------------------------------------------------------------------------------------
def _btc(ledger: Ledger) -> None:
    """b0: coinbases pay 1Thief 100_000 and 1A1ice 300_000.
    b1: tx1 spends both -> 1Bob 200_000, 1Caro1 199_000 (fee 1_000).
    b2: tx2 spends 1Bob -> 1Exch 150_000, 1Dave 49_500 (fee 500).
    b3: tx3 spends 1Dave -> 1Exch 49_000 (fee 500)."""
    ledger.ensure_chain("btc", "bitcoin", network="regtest")
    txs = [  # (hash, block, index, inputs [(tx, n)], outputs [(address, value)])
        ("cb0", 0, 0, [], [("1Thief", 100_000)]),
        ("cb1", 0, 1, [], [("1A1ice", 300_000)]),
        ("tx1", 1, 0, [("cb0", 0), ("cb1", 0)], [("1Bob", 200_000), ("1Caro1", 199_000)]),
        ("tx2", 2, 0, [("tx1", 0)], [("1Exch", 150_000), ("1Dave", 49_500)]),
        ("tx3", 3, 0, [("tx2", 1)], [("1Exch", 49_000)]),
    ]
    for height in range(4):
        block = [t for t in txs if t[1] == height]
        tables: dict[str, dict[str, list[Any]]] = {
            "blocks": {"number": [height], "hash": [f"h{height}"], "timestamp": [1000 + height],
                       "previous_block_hash": [f"h{height - 1}" if height else None]},
            "transactions": {k: [] for k in ("hash", "block_number", "block_hash", "is_coinbase",
                                             "input_count", "output_count", "output_value",
                                             "index")},
            "outputs": {k: [] for k in ("transaction_hash", "block_number", "index", "type",
                                        "required_signatures", "addresses", "value")},
            "inputs": {k: [] for k in ("transaction_hash", "block_number", "index",
                                       "spent_transaction_hash", "spent_output_index")},
        }  # fmt: skip
        for h, b, idx, ins, outs in block:
            t = tables["transactions"]
            for k, v in (("hash", h), ("block_number", b), ("block_hash", f"h{b}"),
                         ("is_coinbase", not ins), ("input_count", len(ins)),
                         ("output_count", len(outs)), ("output_value", sum(v for _, v in outs)),
                         ("index", idx)):  # fmt: skip
                t[k].append(v)
            for n, (addr, value) in enumerate(outs):
                o = tables["outputs"]
                items: tuple[tuple[str, Any], ...] = (("transaction_hash", h), ("block_number", b), ("index", n),
                             ("type", "pubkeyhash"), ("required_signatures", 1),
                             ("addresses", [addr]), ("value", value))  # fmt: skip
                for k, v in items:
                    o[k].append(v)
            for n, (ptx, pn) in enumerate(ins):
                i = tables["inputs"]
                for k, v in (("transaction_hash", h), ("block_number", b), ("index", n),
                             ("spent_transaction_hash", ptx), ("spent_output_index", pn)):  # fmt: skip
                    i[k].append(v)
        ledger.write_batch("btc", tables, (height, height))


@pytest.fixture
def btc(ledger: Ledger, tmp_path: Path) -> Ledger:
    _btc(ledger)
    _tags(ledger, tmp_path, [("1Thief", "BTC", "service_hack"), ("1Exch", "BTC", "exchange")])
    return ledger


def test_utxo_direct_is_pro_rata_and_exact(btc: Ledger) -> None:
    run = build_exposure(btc, "btc", hops=4)
    assert (run.events, run.nodes, run.labelled_nodes, run.untraced_legs) == (5, 6, 2, 0)
    bob = exposure_of(btc, "btc", "1Bob")
    # tx1: 200_000 * 100_000 (1Thief's input) // 400_000 (all inputs) = 50_000
    assert _pick(bob, "in", "stolen_funds") == (50_000, 0)
    (row,) = [r for r in bob["exposure"] if r["direction"] == "in"]
    assert row["direct_share"] == 0.25 and row["risk"] is True and row["total_value"] == 200_000
    # 199_000 * 100_000 // 400_000 = 49_750 (the fee keeps its share)
    assert _pick(exposure_of(btc, "btc", "1Caro1"), "in", "stolen_funds") == (49_750, 0)
    # outgoing: tx2 paid 150_000 of Bob's 200_000 to the exchange directly; share 0.75
    # indirect: 1Dave (all of its 49_500 spent) sent 49_000 to the exchange -> 49_000
    assert _pick(bob, "out", "exchange") == (150_000, 49_000)
    assert bob["totals"] == [{"asset": "BTC", "total_in": 200_000, "total_out": 200_000}]


def test_utxo_indirect_and_hop_limit(btc: Ledger) -> None:
    build_exposure(btc, "btc", hops=4)
    exch = exposure_of(btc, "btc", "1Exch")
    assert exch["category"] == "exchange"
    # tx2: Bob's balance carries 50_000 stolen (hop 2); 150_000/200_000 of it -> 37_500
    # tx3: Dave got 49_500/200_000 * 50_000 = 12_375 (hop 2); all of it spent, 49_000/49_500
    #      of it -> 12_250 at hop 3.  37_500 + 12_250 = 49_750 of 199_000 received
    assert _pick(exch, "in", "stolen_funds") == (0, 49_750)
    (row,) = exch["exposure"]
    assert row["indirect_share"] == pytest.approx(49_750 / 199_000)
    assert _pick(exposure_of(btc, "btc", "1Dave"), "in", "stolen_funds") == (0, 12_375)
    # backward: Bob sent all it got: exchange direct 150_000 (hop 2 for tx1's inputs) and via
    # Dave 49_000 (hop 3); 1Thief put in 100_000 of 400_000: a quarter of 199_000 = 49_750
    assert _pick(exposure_of(btc, "btc", "1Thief"), "out", "exchange") == (0, 49_750)
    assert _pick(exposure_of(btc, "btc", "1A1ice"), "out", "exchange") == (0, 149_250)

    build_exposure(btc, "btc", hops=2)  # rebuild replaces; hop 3 (via Dave) no longer counts
    assert _pick(exposure_of(btc, "btc", "1Exch"), "in", "stolen_funds") == (0, 37_500)
    assert _pick(exposure_of(btc, "btc", "1Thief"), "out", "exchange") == (0, 37_500)
    assert exposure_of(btc, "btc", "1Exch")["hops"] == 2

    build_exposure(btc, "btc", hops=1)  # direct only
    assert _pick(exposure_of(btc, "btc", "1Exch"), "in", "stolen_funds") == (0, 0)
    assert _pick(exposure_of(btc, "btc", "1Bob"), "in", "stolen_funds") == (50_000, 0)


def test_utxo_entity_aggregation(btc: Ledger) -> None:
    ensure_entities_schema(btc.con)
    btc.con.execute("INSERT INTO entities.address_clusters VALUES "
                    "('btc', '1Bob', 7, 1), ('btc', '1Dave', 7, 2)")  # fmt: skip
    build_exposure(btc, "btc", hops=4)
    ent = entity_exposure_of(btc, "btc", 7)
    rows = {(r["direction"], r["category"]): r for r in ent["exposure"]}
    # in: Bob 50_000 direct + Dave 12_375 indirect, of 200_000 + 49_500 received
    assert (rows["in", "stolen_funds"]["direct_value"], rows["in", "stolen_funds"]["indirect_value"],
            rows["in", "stolen_funds"]["total_value"]) == (50_000, 12_375, 249_500)  # fmt: skip
    # out: Bob 150_000 + Dave 49_000 direct; Bob 49_000 indirect (through Dave)
    assert (rows["out", "exchange"]["direct_value"], rows["out", "exchange"]["indirect_value"]) == (
        199_000, 49_000)  # fmt: skip
    assert rows["out", "exchange"]["direct_share"] == pytest.approx(199_000 / 249_500)


def test_entity_category_propagates_to_all_its_addresses(btc: Ledger) -> None:
    ensure_entities_schema(btc.con)
    # 1Caro1 belongs to the thief's entity: it is a stop now, and tx1 pays it "stolen_funds"
    btc.con.execute("INSERT INTO entities.address_clusters VALUES "
                    "('btc', '1Thief', 3, 1), ('btc', '1Caro1', 3, 2)")  # fmt: skip
    build_exposure(btc, "btc", hops=4)
    assert exposure_of(btc, "btc", "1Caro1")["category"] == "stolen_funds"
    # 1A1ice's outputs: tx1 paid 199_000 to 1Caro1 (now categorised): 300_000 * 199_000 // 400_000
    assert _pick(exposure_of(btc, "btc", "1A1ice"), "out", "stolen_funds") == (149_250, 0)


def test_errors(ledger: Ledger, tmp_path: Path) -> None:
    _btc(ledger)
    with pytest.raises(StoreError, match="exposure build"):
        exposure_of(ledger, "btc", "1Bob")
    with pytest.raises(StoreError, match="unknown chain 'nope'"):
        build_exposure(ledger, "nope")
    with pytest.raises(ConfigError, match="hops"):
        build_exposure(ledger, "btc", hops=0)
    build_exposure(ledger, "btc")  # no tags at all: totals only, no exposure rows
    assert exposure_of(ledger, "btc", "1Bob")["exposure"] == []
    with pytest.raises(ConfigError, match="no transfers"):
        exposure_of(ledger, "btc", "1Nobody")


# ---------------------------------------------------------------------------------------
# Account
# ---------------------------------------------------------------------------------------
A, Z, M, U1, U2, X, T = (f"0x{c * 40}" for c in "a2dbcef")  # sanctioned, plain, mixer, ..., token


def _eth(ledger: Ledger) -> None:
    """b1: A->U1 1000, Z->U1 3000.  b2: U1->U2 2000, M->U2 1000.
    b3: U2->X 1500, token T: A->U2 700 (a token transfer inside a 0-value call)."""
    ledger.ensure_chain("eth", "ethereum", network="anvil")
    txs = [(1, 0, A, U1, 1000), (1, 1, Z, U1, 3000), (2, 0, U1, U2, 2000), (2, 1, M, U2, 1000),
           (3, 0, U2, X, 1500), (3, 1, A, T, 0)]  # fmt: skip
    for b in (1, 2, 3):
        rows = [t for t in txs if t[0] == b]
        tables: dict[str, dict[str, list[Any]]] = {
            "blocks": {"number": [b], "hash": [f"b{b}"], "timestamp": [100 * b]},
            "transactions": {
                "hash": [f"t{b}{i}" for _, i, *_ in rows], "block_number": [b] * len(rows),
                "block_hash": [f"b{b}"] * len(rows), "transaction_index": [i for _, i, *_ in rows],
                "from_address": [f for *_, f, _, _ in rows], "to_address": [t for *_, t, _ in rows],
                "value": [v for *_, v in rows], "block_timestamp": [100 * b] * len(rows)},
        }  # fmt: skip
        if b == 3:
            tables["token_transfers"] = {
                "token_address": [T], "from_address": [A], "to_address": [U2], "value": [700],
                "transaction_hash": ["t31"], "log_index": [0], "block_number": [3],
                "block_hash": ["b3"], "block_timestamp": [300]}  # fmt: skip
        ledger.write_batch("eth", tables, (b, b))


@pytest.fixture
def eth(ledger: Ledger, tmp_path: Path) -> Ledger:
    _eth(ledger)
    _tags(ledger, tmp_path, [(A, "ETH", "sanction"), (M, "ETH", "mixing_service"),
                             (X, "ETH", "exchange")])  # fmt: skip
    return ledger


def test_account_incoming(eth: Ledger) -> None:
    build_exposure(eth, "eth", hops=4)
    u1 = exposure_of(eth, "eth", U1)
    assert _pick(u1, "in", "sanctions") == (1000, 0)  # direct edge, exact
    # U1 holds 1000 sanctioned of 4000 and sends 2000: half of it, 500, at hop 2
    u2 = exposure_of(eth, "eth", U2.upper().replace("0X", "0x"))  # any spelling of the address
    assert _pick(u2, "in", "sanctions", "ETH") == (0, 500)
    assert _pick(u2, "in", "mixer", "ETH") == (1000, 0)
    # token transfers are their own asset: 700 of 700 T received from A, directly
    assert _pick(u2, "in", "sanctions", T) == (700, 0)
    (tok,) = [r for r in u2["exposure"] if r["asset"] == T]
    assert (tok["direct_share"], tok["total_value"]) == (1.0, 700)
    # U2 holds 1000 mixer (hop 1) + 500 sanctions (hop 2) of 3000, sends half to X
    x = exposure_of(eth, "eth", X)
    assert _pick(x, "in", "mixer") == (0, 500)
    assert _pick(x, "in", "sanctions") == (0, 250)  # hop 3
    build_exposure(eth, "eth", hops=2)
    assert _pick(exposure_of(eth, "eth", X), "in", "sanctions") == (0, 0)
    assert _pick(exposure_of(eth, "eth", X), "in", "mixer") == (0, 500)


def test_account_outgoing(eth: Ledger) -> None:
    build_exposure(eth, "eth", hops=4)
    # reverse time: U2's later outflow 1500 (to X) is matched to its receipts by value:
    # M's 1000 of U2's 3000 received -> 500; U1's 2000 -> the remaining 1000
    assert _pick(exposure_of(eth, "eth", U2), "out", "exchange", "ETH") == (1500, 0)
    assert _pick(exposure_of(eth, "eth", M), "out", "exchange") == (0, 500)
    u1 = exposure_of(eth, "eth", U1)
    assert _pick(u1, "out", "exchange") == (0, 1000)
    # U1 sent 2000 of the 4000 it got: Z's 3000 carries 3/4 of the 1000, A's 1000 a quarter
    assert _pick(exposure_of(eth, "eth", Z), "out", "exchange") == (0, 750)
    a = exposure_of(eth, "eth", A)
    assert _pick(a, "out", "exchange", "ETH") == (0, 250)
    (row,) = [r for r in a["exposure"] if r["direction"] == "out"]
    assert row["indirect_share"] == 0.25 and row["total_value"] == 1000
    assert a["category"] == "sanctions"
    # conservation: the 1500 X received is exactly M's 500 + Z's 750 + A's 250
    assert 500 + 750 + 250 == 1500


def test_overflow_legs_are_reported_untraced(eth: Ledger) -> None:
    huge = 2**130  # beyond HUGEINT: stored in value_overflow, the view's amount is NULL
    eth.write_batch("eth", {
        "blocks": {"number": [4], "hash": ["b4"], "timestamp": [400]},
        "transactions": {"hash": ["t40"], "block_number": [4], "block_hash": ["b4"],
                         "transaction_index": [0], "from_address": [A], "to_address": [U1],
                         "value": [huge], "block_timestamp": [400]}}, (4, 4))  # fmt: skip
    run = build_exposure(eth, "eth", hops=4)
    assert run.untraced_legs == 1 and run.untraced_overflow == {"t40": str(huge)}
    # the leg is left out, not half-counted: U1's incoming is as before
    assert _pick(exposure_of(eth, "eth", U1), "in", "sanctions") == (1000, 0)
    assert exposure_of(eth, "eth", U1)["totals"][0]["total_in"] == 4000


def test_kernel_conserves_value_on_random_ledgers() -> None:
    """Random UTXO-shaped events with three categorised nodes: no node is attributed more
    than it received (sent), direct incoming never exceeds what the categorised nodes
    sent, and direct outgoing is exactly what was paid to them."""
    rng = np.random.default_rng(7)
    n_nodes, n_events = 50, 400
    cat = np.full(n_nodes, -1, np.int32)
    cat[:3] = [CATEGORY_INDEX["sanctions"], CATEGORY_INDEX["mixer"], CATEGORY_INDEX["scam"]]
    src_counts = rng.integers(1, 4, n_events)
    dst_counts = rng.integers(1, 4, n_events)
    sp = np.concatenate([[0], np.cumsum(src_counts)]).astype(np.int64)
    dp = np.concatenate([[0], np.cumsum(dst_counts)]).astype(np.int64)
    sn = rng.integers(0, n_nodes, sp[-1]).astype(np.int64)
    dn = rng.integers(0, n_nodes, dp[-1]).astype(np.int64)
    sa = rng.integers(1, 1000, sp[-1]).astype(np.float64)
    da = np.empty(dp[-1])
    for e in range(n_events):  # outputs share the inputs minus a small fee
        tin = sa[sp[e] : sp[e + 1]].sum()
        w = rng.random(dst_counts[e]) + 0.1
        da[dp[e] : dp[e + 1]] = tin * 0.99 * w / w.sum()
    data = ExposureInput(sp, sn, sa, dp, dn, da, cat, int(sp[-1] + dp[-1]))
    present, expo_in, total_in, expo_out, total_out = run_sweeps(data, 6)
    # compact columns follow CATEGORIES order: sanctions (node 0), scam (node 2), mixer (node 1)
    assert list(present) == sorted(cat[:3].tolist())
    sent_by_cat = np.array([sa[sn == i].sum() for i in (0, 2, 1)])
    # incoming: nobody ever holds more than was put in by the categorised senders
    assert np.all(expo_in.sum(axis=(1, 2)) <= total_in + 1e-6)
    assert np.all(expo_in[:, 0, :].sum(axis=0) <= sent_by_cat + 1e-6)
    assert np.all(expo_out.sum(axis=(1, 2)) <= total_out + 1e-6)
    # outgoing direct exposure of everyone to category c = what was paid to c's nodes
    paid_to = np.array([da[dn == i].sum() for i in (0, 2, 1)])
    assert paid_to.min() > 0
    assert expo_out[:, 0, :].sum(axis=0) == pytest.approx(paid_to, rel=1e-12)


def test_edge_kernel_equals_general_kernel() -> None:
    """The account fast path gives the general sweep's results, with self-transfers,
    mints (no sender) and burns (no receiver) mixed in."""
    rng = np.random.default_rng(3)
    n_nodes, n = 30, 3000
    cat = np.full(n_nodes, -1, np.int32)
    cat[:4] = [CATEGORY_INDEX[c] for c in ("sanctions", "exchange", "mixer", "scam")]
    src = rng.integers(-1, n_nodes, n).astype(np.int64)
    dst = rng.integers(-1, n_nodes, n).astype(np.int64)
    dst[::17] = src[::17]  # self-transfers
    amt = rng.integers(0, 5000, n).astype(np.float64)
    ptr = np.arange(n + 1, dtype=np.int64)
    data = ExposureInput(ptr, src, amt, ptr, dst, amt, cat, n)
    for hops in (1, 2, 5):
        fast = run_sweeps(data, hops)
        slow = run_sweeps(data, hops, general=True)
        for a, b in zip(fast, slow, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-6)
        assert fast[1][:, 1, :].sum() > 0 if hops > 1 else fast[1][:, 1, :].sum() == 0


def test_category_mapping() -> None:
    assert category_of_tags(["mixing_service", "sanction"]) == CATEGORY_INDEX["sanctions"]
    assert category_of_tags(["service_hack"]) == CATEGORY_INDEX["stolen_funds"]
    assert category_of_tags(["phishing", "exchange"]) == CATEGORY_INDEX["scam"]
    assert category_of_tags(["black_list"]) == CATEGORY_INDEX["illicit_other"]  # legacy id
    assert category_of_tags(["victim", "hot_wallet", None]) is None


def test_cli_build_and_show(btc: Ledger, tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    db = str(btc.path)
    btc.close()  # the CLI opens the file itself
    cli = [sys.executable, "-m", "chainsleuth.cli.main", "--db", db, "-q"]
    out = subprocess.run([*cli, "exposure", "build", "--hops", "4"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "6 address/asset nodes (2 categorised)" in out.stdout
    out = subprocess.run([*cli, "exposure", "show", "1Exch", "--format", "json"],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["exposure"][0]["indirect_value"] == "49750" and doc["category"] == "exchange"
    out = subprocess.run([*cli, "exposure", "show", "1Bob"], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    assert "stolen_funds" in out.stdout and "25.00%" in out.stdout
    out = subprocess.run([*cli, "exposure", "show", "1Nobody"], capture_output=True, text=True)
    assert out.returncode == 2 and "no transfers" in out.stderr and "Traceback" not in out.stderr
