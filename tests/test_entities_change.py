"""Change heuristics: each one's pick and confidence by hand, their combination,
and change-linking end to end (off by default, on by choice)."""

from __future__ import annotations

import numpy as np
import pytest

from chainsleuth.entities import cluster_chain, cluster_members
from chainsleuth.entities.batch import TYPE_P2PKH, TYPE_P2SH, TYPE_P2WPKH, UtxoBatch
from chainsleuth.entities.change import (
    address_type,
    change_evidence,
    fresh_address,
    optimal_change,
    parse_change_list,
    peeling_chain,
    power_of_ten,
    reuse,
)
from chainsleuth.entities.synthetic import Tx, write_utxo_blocks
from chainsleuth.errors import ConfigError
from chainsleuth.store import Ledger


def one_tx(inputs: list[tuple[int, int, int]], outputs: list[tuple[int, int, int]],
           fresh: list[bool] | None = None, prev_peel: bool = False) -> UtxoBatch:
    b = UtxoBatch.build(["t"], [1], [inputs], [outputs])
    if fresh is not None:
        b.out_fresh = np.array(fresh, np.bool_)
    b.in_prev_peel[:] = prev_peel
    return b


def pick(fn: object, batch: UtxoBatch) -> tuple[int, float]:
    p, c = fn(batch)  # type: ignore[operator]
    return int(p[0]), float(c[0])


def test_address_type() -> None:
    # P2SH inputs; a P2PKH payment and a P2SH change
    b = one_tx([(1, 10_000, TYPE_P2SH)], [(2, 6_000, TYPE_P2PKH), (3, 3_000, TYPE_P2SH)])
    assert pick(address_type, b) == (1, 0.6)
    # two outputs of the input type: undecided
    b = one_tx([(1, 10_000, TYPE_P2SH)], [(2, 6_000, TYPE_P2SH), (3, 3_000, TYPE_P2SH)])
    assert pick(address_type, b) == (-1, 0.6)
    # mixed input types: undecided
    b = one_tx([(1, 5_000, TYPE_P2SH), (4, 5_000, TYPE_P2WPKH)],
               [(2, 6_000, TYPE_P2PKH), (3, 3_000, TYPE_P2SH)])
    assert pick(address_type, b)[0] == -1


def test_optimal_change() -> None:
    b = one_tx([(1, 5_000, 1), (4, 7_000, 1)], [(2, 8_000, 1), (3, 3_000, 1)])
    assert pick(optimal_change, b) == (1, 0.6)  # 3,000 < both inputs
    b = one_tx([(1, 5_000, 1), (4, 7_000, 1)], [(2, 6_000, 1), (3, 5_500, 1)])
    assert pick(optimal_change, b)[0] == -1  # no output below the smallest input


def test_power_of_ten() -> None:
    b = one_tx([(1, 100_000_000, 1)], [(2, 30_000_000, 1), (3, 69_987_654, 1)])
    assert pick(power_of_ten, b) == (1, 0.5)
    b = one_tx([(1, 100_000_000, 1)], [(2, 30_000_001, 1), (3, 69_987_654, 1)])
    assert pick(power_of_ten, b)[0] == -1
    assert int(power_of_ten(b, digits=0)[0][0]) == -1  # every value is a multiple of 1


def test_reuse_and_fresh() -> None:
    # output 0 pays an address seen before, output 1 a fresh one
    b = one_tx([(1, 10_000, 1)], [(2, 6_000, 1), (3, 3_000, 1)], fresh=[False, True])
    assert pick(reuse, b) == (1, 0.7)
    assert pick(fresh_address, b) == (1, 0.6)
    # self-change (output back to the input address): no new link from either
    b = one_tx([(1, 10_000, 1)], [(1, 6_000, 1), (3, 3_000, 1)], fresh=[False, True])
    assert pick(reuse, b)[0] == -1 and pick(fresh_address, b)[0] == -1
    # both fresh: undecided
    b = one_tx([(1, 10_000, 1)], [(2, 6_000, 1), (3, 3_000, 1)], fresh=[True, True])
    assert pick(reuse, b)[0] == -1 and pick(fresh_address, b)[0] == -1


def test_peeling() -> None:
    b = one_tx([(1, 10_000, 1)], [(2, 1_000, 1), (3, 8_500, 1)], prev_peel=True)
    assert pick(peeling_chain, b) == (1, 0.55)
    b = one_tx([(1, 10_000, 1)], [(2, 1_000, 1), (3, 8_500, 1)], prev_peel=False)
    assert pick(peeling_chain, b)[0] == -1


def test_combination() -> None:
    # optimal (0.6) and power-of-ten (0.5) agree on output 1: 1 - 0.4*0.5 = 0.8
    b = one_tx([(1, 25_000_000, 1), (1, 25_000_000, 1)], [(2, 30_000_000, 1), (3, 19_987_654, 1)])
    ev = change_evidence(b, ["optimal", "power_of_ten"], 0.0)
    assert (ev.a.tolist(), ev.b.tolist(), ev.confidence.tolist(), ev.heuristic.tolist()) == (
        [1], [3], [pytest.approx(0.8)], ["change:optimal+power_of_ten"])
    assert len(change_evidence(b, ["optimal", "power_of_ten"], 0.81)) == 0
    # address type picks output 0, optimal picks output 1: conflict, no link
    b = one_tx([(1, 25_000_000, TYPE_P2SH), (4, 25_000_000, TYPE_P2SH)],
               [(2, 30_000_000, TYPE_P2SH), (3, 19_987_654, TYPE_P2PKH)])
    assert len(change_evidence(b, ["address_type", "optimal"], 0.0)) == 0
    # reuse vetoes a pick of a previously seen address
    b = one_tx([(1, 25_000_000, 1), (4, 25_000_000, 1)], [(2, 30_000_000, 1), (3, 19_987_654, 1)],
               fresh=[True, False])
    assert len(change_evidence(b, ["optimal", "reuse"], 0.0)) == 1  # reuse picks output 0 ...
    assert change_evidence(b, ["optimal", "reuse"], 0.0).b.tolist() == [2]  # ... optimal vetoed
    assert parse_change_list("all") == ["address_type", "optimal", "power_of_ten", "reuse",
                                        "fresh", "peeling"]
    with pytest.raises(ConfigError, match="unknown change heuristic"):
        parse_change_list("optimal,nope")


def test_change_linking_is_opt_in(ledger: Ledger) -> None:
    # A pays P (seen before) 0.3 BTC from two 0.25 BTC coins; change 0.19987654 to fresh C
    write_utxo_blocks(ledger, "btc", [
        [Tx("cb", [], [("A", 25_000_000), ("P", 1_000), ("A", 25_000_000)])],
        [Tx("pay", [("cb", 0), ("cb", 2)], [("P", 30_000_000), ("C", 19_987_654)])],
    ])
    cluster_chain(ledger, "btc")
    assert cluster_members(ledger, "btc") == {"A": 0, "P": 1, "C": 2}
    res = cluster_chain(ledger, "btc", change=["fresh", "power_of_ten", "optimal"],
                        min_confidence=0.9)
    assert res.mode == "full"  # changed settings -> full recompute
    assert cluster_members(ledger, "btc") == {"A": 0, "P": 1, "C": 0}
    assert ledger.con.execute(
        "SELECT address_a, address_b, transaction_hash, heuristic, round(confidence, 4) "
        "FROM entities.cluster_evidence").fetchall() == [
        ("A", "C", "pay", "change:fresh+optimal+power_of_ten", 0.92)]
    # the change heuristics alone (no multi-input) give the same single link here
    res = cluster_chain(ledger, "btc", heuristics=[], change=["fresh", "power_of_ten", "optimal"],
                        min_confidence=0.9)
    assert (res.mode, res.unions) == ("full", 1)
