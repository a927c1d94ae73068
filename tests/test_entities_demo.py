"""Clustering the real demo blocks (2009-2017 mainnet, testnet genesis, two 2023
Ethereum blocks) and checking it against a plain-Python reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from chainsleuth.demo import run_demo
from chainsleuth.entities import cluster_chain, cluster_members
from chainsleuth.store import Ledger

pytestmark = pytest.mark.data


def _reference_partition(ledger: Ledger) -> tuple[int, set[frozenset[str]]]:
    """Multi-input clustering the slow obvious way: a dict union-find over every
    non-coinbase transaction's input addresses."""
    rows = ledger.con.execute(
        """SELECT i.transaction_hash, i.from_address FROM bitcoin.transfers i
           WHERE i.kind = 'input' ORDER BY i.block_number, i.transaction_hash, i.position"""
    ).fetchall()
    addresses = [r[0] for r in ledger.con.execute(
        "SELECT from_address FROM bitcoin.transfers WHERE from_address IS NOT NULL UNION "
        "SELECT to_address FROM bitcoin.transfers WHERE to_address IS NOT NULL").fetchall()]
    parent = {a: a for a in addresses}

    def find(x: str) -> str:
        while parent[x] != x:
            x = parent[x]
        return x

    by_tx: dict[str, list[str]] = {}
    for h, a in rows:
        if a is not None:
            by_tx.setdefault(h, []).append(a)
    multi = 0
    for addrs in by_tx.values():
        if len(set(addrs)) > 1:
            multi += 1
        for a in addrs[1:]:
            ra, rb = find(addrs[0]), find(a)
            if ra != rb:
                parent[rb] = ra
    groups: dict[str, set[str]] = {}
    for a in addresses:
        groups.setdefault(find(a), set()).add(a)
    return multi, {frozenset(g) for g in groups.values()}


def test_demo_blocks_cluster_like_the_reference(shared_data: Path, tmp_path: Path) -> None:
    with Ledger(tmp_path / "demo.duckdb") as ledger:
        run_demo(ledger, shared_data)
        res = cluster_chain(ledger, "bitcoin")
        multi, reference = _reference_partition(ledger)
        ours: dict[int, set[str]] = {}
        for address, cid in cluster_members(ledger, "bitcoin").items():
            ours.setdefault(cid, set()).add(address)
        assert {frozenset(g) for g in ours.values()} == reference
        # facts about these real blocks (most prevouts lie in blocks not in the demo,
        # so only 1,314 of 15,366 inputs have a known address)
        assert (res.transactions, res.addresses, res.clusters, res.unions) == (3504, 7362, 6914, 448)
        assert multi == ledger.con.execute(
            "SELECT count(DISTINCT transaction_hash) FROM entities.cluster_evidence").fetchall()[0][0]
        assert res.transaction_tags == {}
        # a cluster's id is its earliest address's id, and the evidence forest spans it
        for cid, members in ours.items():
            ids = ledger.con.execute(
                "SELECT min(address_id) FROM entities.addresses WHERE chain = 'bitcoin' "
                "AND address IN (SELECT unnest(?))", [sorted(members)]).fetchall()[0][0]
            assert ids == cid
        assert ledger.con.execute(
            """SELECT count(*) FROM entities.clusters c
               WHERE chain = 'bitcoin' AND size - 1 <> (SELECT count(*) FROM entities.cluster_evidence e
                                     WHERE e.chain = 'bitcoin' AND e.cluster_id = c.cluster_id)"""
        ).fetchall() == [(0,)]
        eth = cluster_chain(ledger, "ethereum")
        assert (eth.transactions, eth.addresses, eth.unions) == (298, 539, 0)
