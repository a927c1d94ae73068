"""UTXO clustering end to end on hand-built ledgers: co-spend, transitive merges,
evidence and ``why`` paths, stable ids, incremental == full, reorgs, super-clusters."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainsleuth.entities import EntityError, cluster_chain, cluster_members, entity_of, why
from chainsleuth.entities.synthetic import Tx, write_utxo_blocks
from chainsleuth.errors import ConfigError, StoreError
from chainsleuth.store import Ledger

COIN = 100_000_000


def _base(ledger: Ledger) -> None:
    """c1 pays A,B,A,C,D,E,E; t1 spends A+B, t2 A+C, t3 D+E, t4 E+Y (Y = t2's output)."""
    write_utxo_blocks(ledger, "btc", [
        [Tx("c1", [], [("A", COIN), ("B", COIN), ("A", COIN), ("C", COIN), ("D", COIN),
                       ("E", COIN), ("E", COIN)])],
        [Tx("t1", [("c1", 0), ("c1", 1)], [("X", 2 * COIN - 1000)]),
         Tx("t2", [("c1", 2), ("c1", 3)], [("Y", 2 * COIN - 1000)]),
         Tx("t3", [("c1", 4), ("c1", 5)], [("Z", 2 * COIN - 1000)]),
         Tx("t4", [("c1", 6), ("t2", 0)], [("W", 3 * COIN - 2000)])],
    ])


def _evidence(ledger: Ledger) -> list[tuple[object, ...]]:
    return ledger.con.execute(
        """SELECT cluster_id, address_a, address_b, transaction_hash, block_number, heuristic,
                  confidence FROM entities.cluster_evidence WHERE chain = 'btc'
           ORDER BY block_number, transaction_hash, address_b""").fetchall()


def test_cospend_and_transitive_merges(ledger: Ledger) -> None:
    _base(ledger)
    res = cluster_chain(ledger, "btc")
    assert (res.mode, res.first_block, res.last_block, res.transactions) == ("full", 0, 1, 5)
    assert res.unions == 4 and res.new_addresses == 9
    # ids in first-seen order: A0 B1 C2 D3 E4 X5 Y6 Z7 W8; a cluster's id is its oldest address
    assert cluster_members(ledger, "btc") == {
        "A": 0, "B": 0, "C": 0, "D": 3, "E": 3, "Y": 3, "X": 5, "Z": 7, "W": 8}
    assert _evidence(ledger) == [
        (0, "A", "B", "t1", 1, "multi_input", 1.0),
        (0, "A", "C", "t2", 1, "multi_input", 1.0),
        (3, "D", "E", "t3", 1, "multi_input", 1.0),
        (3, "E", "Y", "t4", 1, "multi_input", 1.0),
    ]
    path = why(ledger, "btc", "B", "C")
    assert [(p["from_address"], p["to_address"], p["transaction_hash"], p["heuristic"])
            for p in path] == [("B", "A", "t1", "multi_input"), ("A", "C", "t2", "multi_input")]
    assert [(p["from_address"], p["to_address"], p["transaction_hash"])
            for p in why(ledger, "btc", "Y", "D")] == [("Y", "E", "t4"), ("E", "D", "t3")]
    with pytest.raises(EntityError, match="not the same entity"):
        why(ledger, "btc", "A", "D")
    with pytest.raises(EntityError, match="'nobody' is not in the clusters"):
        entity_of(ledger, "btc", "nobody")
    with pytest.raises(StoreError, match="unknown chain"):
        cluster_chain(ledger, "nope")
    info = entity_of(ledger, "btc", "C")
    # A, B, C received 4 coins from c1 and spent all of them in t1 and t2
    assert (info["cluster_id"], info["size"], info["received"], info["sent"],
            info["transaction_count"]) == (0, 3, 4 * COIN, 4 * COIN, 3)
    assert info["sample_addresses"] == ["A", "B", "C"]
    assert info["heuristics"] == {"multi_input": 2}
    assert str(info["first_seen"]) == "2017-07-14 02:40:00"


def test_incremental_keeps_ids_and_matches_full(tmp_path: Path) -> None:
    with Ledger(tmp_path / "inc.duckdb") as led:
        _base(led)
        cluster_chain(led, "btc")
        assert cluster_chain(led, "btc").mode == "up-to-date"
        # block 2: a coin of C and a coin of D are spent together -> clusters 0 and 3 merge as 0
        write_utxo_blocks(led, "btc", [[Tx("c2", [], [("C", COIN), ("D", COIN)]),
                                        Tx("t5", [("c2", 0), ("c2", 1)], [("V", COIN)])]],
                          first_height=2)
        res = cluster_chain(led, "btc")
        assert (res.mode, res.first_block, res.last_block, res.unions) == ("incremental", 2, 2, 1)
        members = cluster_members(led, "btc")
        assert {a for a, c in members.items() if c == 0} == {"A", "B", "C", "D", "E", "Y"}
        assert members["V"] == 9
        ev_inc = _evidence(led)
        assert ev_inc[-1] == (0, "C", "D", "t5", 2, "multi_input", 1.0)
        assert {r[0] for r in ev_inc} == {0}
        summary_inc = led.con.execute(
            "SELECT * EXCLUDE (chain) FROM entities.clusters ORDER BY cluster_id").fetchall()
        assert summary_inc[0][:2] == (0, 6)
        assert [r[0] for r in summary_inc] == [0, 5, 7, 8, 9]
        full = cluster_chain(led, "btc", full=True)
        assert full.mode == "full"
        assert cluster_members(led, "btc") == members
        assert _evidence(led) == ev_inc
        assert led.con.execute(
            "SELECT * EXCLUDE (chain) FROM entities.clusters ORDER BY cluster_id").fetchall() == summary_inc


def test_reorg_recomputes_from_fork(ledger: Ledger) -> None:
    _base(ledger)
    write_utxo_blocks(ledger, "btc", [[Tx("c2", [], [("C", COIN), ("D", COIN)]),
                                       Tx("t5", [("c2", 0), ("c2", 1)], [("V", COIN)])]],
                      first_height=2)
    cluster_chain(ledger, "btc")
    assert cluster_members(ledger, "btc")["D"] == 0
    # block 2 is replaced by a branch where t5 never happened
    ledger.rollback_to("btc", 1)
    write_utxo_blocks(ledger, "btc", [[Tx("c2x", [], [("Q", COIN)])]], first_height=2,
                      hash_prefix="r")
    res = cluster_chain(ledger, "btc")
    assert (res.mode, res.first_block, res.unions) == ("reorg", 2, 0)
    members = cluster_members(ledger, "btc")
    assert members["D"] == 3 and members["C"] == 0 and members["Q"] == 10
    assert members["V"] == 9  # ids are never reassigned; V is a singleton now
    assert {r[3] for r in _evidence(ledger)} == {"t1", "t2", "t3", "t4"}
    assert ledger.con.execute(
        "SELECT cluster_id, size FROM entities.clusters WHERE cluster_id IN (0, 3) ORDER BY 1"
    ).fetchall() == [(0, 3), (3, 3)]


@pytest.mark.parametrize("refuse", [True, False])
def test_supercluster_guard(ledger: Ledger, refuse: bool) -> None:
    _base(ledger)
    write_utxo_blocks(ledger, "btc", [[Tx("c2", [], [("C", COIN), ("D", COIN)]),
                                       Tx("t5", [("c2", 0), ("c2", 1)], [("V", COIN)])]],
                      first_height=2)
    res = cluster_chain(ledger, "btc", supercluster_threshold=3, refuse_supercluster=refuse)
    assert (res.refused_merges, res.supercluster_merges) == ((1, 0) if refuse else (0, 1))
    assert ledger.con.execute(
        "SELECT address_a, address_b, transaction_hash, size_a, size_b, refused "
        "FROM entities.refused_merges").fetchall() == [("C", "D", "t5", 3, 3, refuse)]
    assert (cluster_members(ledger, "btc")["D"] == 0) is not refuse
    assert ledger.con.execute(
        "SELECT refused_merges, supercluster_merges FROM entities.runs").fetchall() == [
        (res.refused_merges, res.supercluster_merges)]


def test_bad_settings(ledger: Ledger) -> None:
    _base(ledger)
    with pytest.raises(ConfigError, match="unknown change heuristic"):
        cluster_chain(ledger, "btc", change=["bogus"])
    with pytest.raises(ConfigError, match=r"unknown heuristic\(s\) \['deposit_reuse'\] for a bitcoin chain"):
        cluster_chain(ledger, "btc", heuristics=["deposit_reuse"])
    with pytest.raises(ConfigError, match="between 0 and 1"):
        cluster_chain(ledger, "btc", change=["optimal"], min_confidence=2.0)
    # validation happens before anything is written: not even the schema exists
    assert ledger.con.execute(
        "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'entities'"
    ).fetchall() == [(0,)]
    with pytest.raises(EntityError, match="no clusters yet"):
        why(ledger, "btc", "A", "B")
    ledger.ensure_chain("btc2", "bitcoin")
    cluster_chain(ledger, "btc")
    with pytest.raises(EntityError, match="'btc2' has not been clustered"):
        entity_of(ledger, "btc2", "A")


# -- property: incremental runs == one full run ----------------------------------------------


@st.composite
def _random_chain(draw: st.DrawFn) -> list[list[Tx]]:
    """Random spends of a pool of coins over few addresses (forcing reuse)."""
    n_blocks = draw(st.integers(2, 6))
    addrs = [f"a{i}" for i in range(draw(st.integers(3, 12)))]
    utxos: list[tuple[str, int]] = []
    blocks: list[list[Tx]] = []
    k = 0
    for h in range(n_blocks):
        txs = [Tx(f"cb{h}", [], [(draw(st.sampled_from(addrs)), COIN)
                                 for _ in range(draw(st.integers(1, 4)))])]
        for _ in range(draw(st.integers(0, 3))):
            if not utxos:
                break
            n_in = draw(st.integers(1, min(4, len(utxos))))
            picks = draw(st.lists(st.integers(0, len(utxos) - 1), min_size=n_in, max_size=n_in,
                                  unique=True))
            ins = [utxos[i] for i in picks]
            for i in sorted(picks, reverse=True):
                utxos.pop(i)
            outs = [(draw(st.sampled_from(addrs)), COIN // 3) for _ in range(draw(st.integers(1, 3)))]
            k += 1
            txs.append(Tx(f"t{k}", ins, outs))
        for tx in txs:
            utxos.extend((tx.txid, j) for j in range(len(tx.outputs)))
        blocks.append(txs)
    return blocks


def _state(led: Ledger) -> tuple[object, ...]:
    q = led.con.execute
    return (
        q("SELECT address, address_id FROM entities.addresses ORDER BY 2").fetchall(),
        q("SELECT address, cluster_id FROM entities.address_clusters ORDER BY 1").fetchall(),
        q("SELECT cluster_id, address_a, address_b, transaction_hash, heuristic, confidence "
          "FROM entities.cluster_evidence ORDER BY ALL").fetchall(),
        q("SELECT * EXCLUDE (chain) FROM entities.clusters ORDER BY cluster_id").fetchall(),
    )


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(chain=_random_chain(), split=st.integers(0, 5), change=st.sampled_from([[], ["fresh", "optimal"]]))
def test_incremental_equals_full(tmp_path: Path, chain: list[list[Tx]], split: int,
                                 change: list[str]) -> None:
    split = min(split, len(chain) - 1)
    # a fresh folder per example: Hypothesis may run the same example twice (replay,
    # shrinking), and a ledger left by an earlier run would not be empty
    d = Path(tempfile.mkdtemp(dir=tmp_path))
    with Ledger(d / "inc.duckdb") as inc, Ledger(d / "full.duckdb") as full:
        write_utxo_blocks(inc, "btc", chain[: split + 1])
        cluster_chain(inc, "btc", change=change, min_confidence=0.5)
        write_utxo_blocks(inc, "btc", chain[split + 1:], first_height=split + 1)
        r = cluster_chain(inc, "btc", change=change, min_confidence=0.5)
        assert r.mode == ("up-to-date" if split == len(chain) - 1 else "incremental")
        write_utxo_blocks(full, "btc", chain)
        cluster_chain(full, "btc", change=change, min_confidence=0.5)
        assert _state(inc) == _state(full)


def test_union_find_keeps_the_oldest_id() -> None:
    import numpy as np

    from chainsleuth.entities.unionfind import APPLIED, APPLIED_SUPER, NOOP, REFUSED, UnionFind

    uf = UnionFind(7)
    status, _, _ = uf.union(np.array([4, 4, 0, 5]), np.array([5, 3, 4, 0]))
    assert status.tolist() == [APPLIED, APPLIED, APPLIED, NOOP]
    # {3,4,5} (size 3) absorbed {0}: the id of the merged set is still the oldest, 0
    assert uf.labels().tolist() == [0, 1, 2, 0, 0, 0, 6]
    uf.grow(9)
    status, sa, sb = uf.union(np.array([1, 6, 1]), np.array([2, 7, 6]), super_threshold=2)
    assert status.tolist() == [APPLIED, APPLIED, APPLIED_SUPER]
    assert (sa.tolist(), sb.tolist()) == ([1, 1, 2], [1, 1, 2])
    status, sa, sb = uf.union(np.array([3]), np.array([1]), super_threshold=4, refuse=True)
    assert status.tolist() == [REFUSED] and (sa.tolist(), sb.tolist()) == ([4], [4])
    assert uf.labels().tolist() == [0, 1, 1, 0, 0, 0, 1, 1, 8]
    back = UnionFind.from_labels(uf.labels())
    assert back.labels().tolist() == uf.labels().tolist()
    assert back.size[[0, 1, 8]].tolist() == [4, 4, 1]
    assert UnionFind.from_labels(uf.labels(), track_sizes=False).size.shape == (0,)


def test_blocks_ingested_below_the_last_run_are_clustered(tmp_path: Path) -> None:
    """A gap filled later (e.g. an older blk file ingested after a newer one) is not
    skipped by the next incremental run: the result equals a full run."""
    blocks = [
        [Tx("c0", [], [("A", COIN), ("B", COIN)])],
        [Tx("t1", [("c0", 0), ("c0", 1)], [("C", 2 * COIN - 1000)])],  # A+B co-spent
        [Tx("c2", [], [("D", COIN)])],
    ]
    with Ledger(tmp_path / "gap.duckdb") as led:
        write_utxo_blocks(led, "btc", [blocks[0]])
        write_utxo_blocks(led, "btc", [blocks[2]], first_height=2)
        cluster_chain(led, "btc")
        assert cluster_members(led, "btc")["A"] != cluster_members(led, "btc")["B"]
        write_utxo_blocks(led, "btc", [blocks[1]], first_height=1)  # the gap
        res = cluster_chain(led, "btc")
        assert res.mode == "reorg" and res.first_block == 1 and res.unions == 1
        members = cluster_members(led, "btc")
        assert members["A"] == members["B"] and "C" in members
    with Ledger(tmp_path / "full.duckdb") as ref:
        write_utxo_blocks(ref, "btc", blocks)
        cluster_chain(ref, "btc")
        ref_members = cluster_members(ref, "btc")
    # same partition (ids are first-seen order, which the gap legitimately changes)
    def partition(m: dict[str, int]) -> set[frozenset[str]]:
        groups: dict[int, set[str]] = {}
        for a, c in m.items():
            groups.setdefault(c, set()).add(a)
        return {frozenset(g) for g in groups.values()}
    assert partition(members) == partition(ref_members)
