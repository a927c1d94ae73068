"""Clustering accuracy on ground truth: real wallets on a regtest node, one wallet
per owner (the small scenario of bench/accuracy; the published table is made by
bench/bench_cluster_accuracy.py at the larger scale)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from chainsleuth.entities.cluster import cluster_members
from chainsleuth.ingest.bitcoin_rpc import ingest_bitcoin_rpc
from chainsleuth.store import Ledger

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from accuracy.groundtruth import SMALL, Scenario, generate
from accuracy.harness import HeuristicSet, evaluate

CHAIN = "truth"


def _inputs(led: Ledger, txid: str) -> list[str]:
    rows = led.con.execute(
        f'SELECT from_address FROM "{CHAIN}".transfers WHERE kind = \'input\' '
        "AND transaction_hash = ? ORDER BY position", [txid]).fetchall()
    return [str(r[0]) for r in rows]


@pytest.mark.node
def test_accuracy_small_scenario(fresh_bitcoind: Any, tmp_path: Path) -> None:
    sc: Scenario = generate(fresh_bitcoind.rpc_url, SMALL)
    counts = sc.counts()
    assert counts["owners"] == 11 and counts["coinjoin_whirlpool"] == 2
    assert counts["coinjoin_generic"] == 1 and counts["coinjoin_joinmarket"] == 1
    assert counts["whirlpool_tx0"] == 5 and len(sc.consolidations) >= 4
    with Ledger(tmp_path / "truth.duckdb") as led:
        ingest_bitcoin_rpc(led, fresh_bitcoind.rpc_url, chain=CHAIN)

        no_cj, with_cj = evaluate(led, CHAIN, sc, [
            HeuristicSet("no exclusion", coinjoin_exclusion=False),
            HeuristicSet("exclusion")])
        # the ledger holds exactly the wallets' addresses plus the genesis coinbase's
        assert with_cj["unowned_addresses"] == 1
        # multi-input never joins two owners once the joint transactions are excluded
        assert with_cj["pair_precision"] >= 0.99 and with_cj["mixed_clusters"] == 0
        assert with_cj["pair_recall"] > 0
        # without the exclusion the joins merge their participants
        assert no_cj["pair_precision"] < with_cj["pair_precision"]
        assert no_cj["mixed_clusters"] >= 3 and no_cj["unions"] > with_cj["unions"]

        # state now: multi-input + CoinJoin exclusion (the last run)
        tags = dict(led.con.execute(
            "SELECT transaction_hash, tag FROM entities.transaction_tags WHERE chain = ?",
            [CHAIN]).fetchall())
        for txid, kind in sc.joint.items():
            if kind == "generic":
                assert tags.get(txid, "").startswith("coinjoin:"), txid
            else:
                assert tags.get(txid) == f"coinjoin:{kind}", (txid, kind)
        assert all(tags.get(t) == "whirlpool:tx0" for t in sc.tx0)
        members = cluster_members(led, CHAIN)
        # a consolidation's inputs end in one cluster, owned by its wallet
        for txid, owner in sc.consolidations.items():
            ins = _inputs(led, txid)
            assert len(ins) >= 2
            assert {members[a] for a in ins} == {members[ins[0]]}
            assert {sc.owner_of[a] for a in ins} == {owner}
        # a Whirlpool mix: five owners' inputs stay in five clusters
        mixes = [t for t, k in sc.joint.items() if k == "whirlpool"]
        for txid in mixes:
            ins = _inputs(led, txid)
            assert len({sc.owner_of[a] for a in ins}) == 5
            assert len({members[a] for a in ins}) == 5
        # ... and collapse into one when the exclusion is off
        evaluate(led, CHAIN, sc, [HeuristicSet("no exclusion", coinjoin_exclusion=False)])
        members = cluster_members(led, CHAIN)
        ins = _inputs(led, mixes[0])
        assert len({members[a] for a in ins}) == 1
