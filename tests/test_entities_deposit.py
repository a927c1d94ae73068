"""Deposit-address reuse (Victor 2020) on a hand-built Ethereum ledger."""

from __future__ import annotations

from typing import Any

from chainsleuth.entities import cluster_chain, cluster_members, why
from chainsleuth.entities.deposit import deposit_reuse
from chainsleuth.store import Ledger

ETH = 10**18
USDT = "0xdac17f958d2ee523a2206206994597c13d831ec7"


def _eth_ledger(ledger: Ledger) -> None:
    """Hot wallet H sweeps deposit addresses D1 (from U1, U2), D2 (U3, U4) and D6
    (tokens from T1, T2). Near misses: D3 forwards to K, a sink with one deposit;
    D4 forwards 5,000 blocks late; D5 sends to H and elsewhere."""
    txs: list[tuple[str, int, str, str, int]] = [
        ("0x01", 10, "0xu1", "0xd1", 1 * ETH),
        ("0x02", 11, "0xu2", "0xd1", 2 * ETH),
        ("0x03", 12, "0xd1", "0xh", 3 * ETH - 10**15),  # sweep less gas (0.001 ETH)
        ("0x04", 13, "0xu3", "0xd2", 5 * ETH),
        ("0x05", 14, "0xd2", "0xh", 5 * ETH - 10**15),
        ("0x06", 15, "0xu4", "0xd2", ETH // 2),
        ("0x07", 16, "0xd2", "0xh", ETH // 2 - 10**15),
        ("0x08", 20, "0xv1", "0xd3", ETH),
        ("0x09", 21, "0xv2", "0xd3", ETH),
        ("0x0a", 22, "0xd3", "0xk", 2 * ETH - 10**15),
        ("0x0b", 30, "0xw1", "0xd4", ETH),
        ("0x0c", 31, "0xw2", "0xd4", ETH),
        ("0x0d", 5031, "0xd4", "0xh", 2 * ETH - 10**15),
        ("0x0e", 40, "0xx1", "0xd5", ETH),
        ("0x0f", 41, "0xx2", "0xd5", ETH),
        ("0x10", 42, "0xd5", "0xh", 2 * ETH - 10**15),
        ("0x11", 43, "0xd5", "0xelsewhere", 10**14),
        # token deposits: the transactions call the token contract (no ETH moves)
        ("0x20", 50, "0xt1", USDT, 0),
        ("0x21", 51, "0xt2", USDT, 0),
        ("0x22", 52, "0xd6", USDT, 0),
    ]
    tokens = [("0x20", 50, "0xt1", "0xd6", 700_000_000), ("0x21", 51, "0xt2", "0xd6", 300_000_000),
              ("0x22", 52, "0xd6", "0xh", 1_000_000_000)]
    heights = sorted({t[1] for t in txs})
    ledger.ensure_chain("eth", "ethereum")
    data: dict[str, dict[str, list[Any]]] = {
        "blocks": {"number": heights, "hash": [f"0xb{h}" for h in heights],
                   "timestamp": [1_600_000_000 + 12 * h for h in heights]},
        "transactions": {
            "hash": [t[0] for t in txs], "block_number": [t[1] for t in txs],
            "transaction_index": [0] * len(txs), "from_address": [t[2] for t in txs],
            "to_address": [t[3] for t in txs], "value": [t[4] for t in txs],
            "block_timestamp": [1_600_000_000 + 12 * t[1] for t in txs]},
        "token_transfers": {
            "token_address": [USDT] * 3, "from_address": [t[2] for t in tokens],
            "to_address": [t[3] for t in tokens], "value": [t[4] for t in tokens],
            "transaction_hash": [t[0] for t in tokens], "log_index": [0, 0, 0],
            "block_number": [t[1] for t in tokens],
            "block_timestamp": [1_600_000_000 + 12 * t[1] for t in tokens]},
    }
    ledger.write_batch("eth", data, (min(heights), max(heights)))


def test_deposit_reuse_evidence(ledger: Ledger) -> None:
    _eth_ledger(ledger)
    rows = deposit_reuse(ledger, "eth").to_pylist()
    assert [(r["address_a"], r["address_b"], r["transaction_hash"], r["block_number"],
             r["deposit_address"]) for r in rows] == [
        ("0xu1", "0xu2", "0x02", 11, "0xd1"),
        ("0xu3", "0xu4", "0x06", 15, "0xd2"),
        ("0xt1", "0xt2", "0x21", 51, "0xd6"),
    ]
    assert {r["heuristic"] for r in rows} == {"deposit_reuse"}
    # with a 1-deposit minimum, K (one deposit D3) is a sink too
    loose = deposit_reuse(ledger, "eth", min_deposits_per_sink=1).to_pylist()
    assert ("0xv1", "0xv2") in {(r["address_a"], r["address_b"]) for r in loose}
    # a tighter ETH shortfall than the 0.001 ETH gas rejects every ETH sweep
    tight = deposit_reuse(ledger, "eth", max_native_shortfall=10**14).to_pylist()
    assert [r["deposit_address"] for r in tight] == []  # H then sees only D6: below 2


def test_cluster_account_chain(ledger: Ledger) -> None:
    _eth_ledger(ledger)
    res = cluster_chain(ledger, "eth")
    assert (res.mode, res.unions) == ("full", 3)
    m = cluster_members(ledger, "eth")
    assert m["0xu1"] == m["0xu2"] and m["0xu3"] == m["0xu4"] and m["0xt1"] == m["0xt2"]
    assert len({m["0xu1"], m["0xu3"], m["0xt1"], m["0xd1"], m["0xh"]}) == 5
    assert m["0xv1"] != m["0xv2"] and m["0xw1"] != m["0xw2"] and m["0xx1"] != m["0xx2"]
    path = why(ledger, "eth", "0xu2", "0xu1")
    assert [(p["from_address"], p["to_address"], p["transaction_hash"], p["heuristic"])
            for p in path] == [("0xu2", "0xu1", "0x02", "deposit_reuse")]
    # re-running finds nothing new; the links are not duplicated
    assert cluster_chain(ledger, "eth").mode == "up-to-date"
    assert ledger.con.execute("SELECT count(*) FROM entities.cluster_evidence").fetchall() == [(3,)]
    # cluster summary: U1+U2 received nothing, sent 3 ETH
    cid = m["0xu1"]
    assert ledger.con.execute(
        "SELECT size, received, sent, transaction_count FROM entities.clusters "
        "WHERE chain = 'eth' AND cluster_id = ?", [cid]).fetchall() == [(2, 0, 3 * ETH, 2)]
