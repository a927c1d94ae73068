"""Forward traces stop at an exchange's deposit address (Victor 2020, entities/deposit.py;
on UTXO chains its sweep analogue), not only at the tagged hot wallet it sweeps to; an
untagged sweep target makes no stop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chainsleuth.entities import cluster_chain
from chainsleuth.entities.deposit import deposit_addresses, utxo_deposit_addresses
from chainsleuth.entities.synthetic import Tx, write_utxo_blocks
from chainsleuth.flows.trace import trace
from chainsleuth.store import Ledger
from chainsleuth.tags import import_tags
from test_flows_models import write_account_blocks


def _ledger(tmp_path: Path) -> Ledger:
    """The thief sends 600 to D1 and 400 to D3. Hot wallet H (tagged exchange) sweeps D1 and
    a second customer's D2; K (untagged) sweeps D3 and D4. Hashes are 0x<block><index>."""
    led = Ledger(tmp_path / "d.duckdb")
    write_account_blocks(led, "eth", [
        [{"from": "0xfund", "to": "0xthief", "value": 1000}],  # block 0
        [{"from": "0xthief", "to": "0xd1", "value": 600}, {"from": "0xthief", "to": "0xd3", "value": 400}],
        [{"from": "0xcust", "to": "0xd2", "value": 500}],
        [{"from": "0xd1", "to": "0xhot", "value": 600}, {"from": "0xd2", "to": "0xhot", "value": 500}],
        [{"from": "0xd3", "to": "0xk", "value": 400}, {"from": "0xother", "to": "0xd4", "value": 50}],
        [{"from": "0xd4", "to": "0xk", "value": 50}],
    ])  # fmt: skip
    f = tmp_path / "tags.csv"
    f.write_text("address,currency,label,category,confidence\n0xhot,ETH,Test Exchange,exchange,service_data\n")
    import_tags(led, "csv", f)
    return led


def _by(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {r["address"]: r["value"] for r in rows}


def test_deposit_addresses_table(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    rows = [(r["address"], r["sink"], r["first_forward_tx"], r["first_forward_block"], r["n_forwards"])
            for r in deposit_addresses(led, "eth").to_pylist()]
    assert rows == [("0xd1", "0xhot", "0x00030000", 3, 1), ("0xd2", "0xhot", "0x00030001", 3, 1),
                    ("0xd3", "0xk", "0x00040000", 4, 1), ("0xd4", "0xk", "0x00050000", 5, 1)]  # fmt: skip
    res = cluster_chain(led, "eth")
    assert res.deposit_addresses == 4
    stored = led.con.execute(
        "SELECT address, sink, first_forward_tx, n_forwards, heuristic, run_id FROM entities.deposit_addresses "
        "WHERE chain = 'eth' ORDER BY address").fetchall()  # fmt: skip
    assert stored == [("0xd1", "0xhot", "0x00030000", 1, "deposit_reuse", 1),
                      ("0xd2", "0xhot", "0x00030001", 1, "deposit_reuse", 1),
                      ("0xd3", "0xk", "0x00040000", 1, "deposit_reuse", 1),
                      ("0xd4", "0xk", "0x00050000", 1, "deposit_reuse", 1)]  # fmt: skip
    # a second full run rewrites the rows instead of adding to them
    cluster_chain(led, "eth", full=True)
    assert led.con.execute("SELECT count(*), min(run_id) FROM entities.deposit_addresses").fetchall() == [(4, 2)]
    led.close()


def test_trace_stops_at_deposit_address(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    # before clustering nothing is known about D1: the trace ends at the tagged hot wallet
    r = trace(led, "eth", ["0xthief"], model="haircut")
    assert _by(r.endpoints) == {"0xhot": 600} and _by(r.holdings) == {"0xk": 400}
    cluster_chain(led, "eth")
    for model in ("haircut", "fifo", "lifo", "poison"):
        r = trace(led, "eth", ["0xthief"], model=model)
        assert r.seed_value == {"ETH": 1000}
        # D1 (sweeps to the tagged H) is the endpoint; D3 sweeps to untagged K: no stop, K holds
        assert _by(r.endpoints) == {"0xd1": 600}, model
        # poison taints K's whole balance, D4's later 50 too
        assert _by(r.holdings) == {"0xk": 450 if model == "poison" else 400}, model
        (end,) = r.endpoints
        assert (end["labels"], end["category"], end["service_address"]) == (
            ["deposit address of Test Exchange"], "exchange", "0xhot")
        assert [(e["from"], e["to"], e["value"]) for e in r.edges] == [
            ("0xthief", "0xd1", 600), ("0xthief", "0xd3", 400), ("0xd3", "0xk", 400)]  # fmt: skip
    # no stop categories: no service, so no deposit address stops either
    r = trace(led, "eth", ["0xthief"], stop_categories=())
    assert _by(r.endpoints) == {} and _by(r.holdings) == {"0xhot": 600, "0xk": 400}
    # backward traces are unchanged: the hot wallet's 1100 came from fund (600) and cust (500)
    r = trace(led, "eth", ["0xhot"], backward=True, stop_categories=())
    assert _by(r.holdings) == {"0xfund": 600, "0xcust": 500}
    led.close()


def _utxo_ledger(tmp_path: Path) -> Ledger:
    """UTXO: the thief pays 600 to D1 and 390 to D3 (fee 10); H (tagged exchange) sweeps D1
    with a customer's D2 in one transaction; K (untagged) sweeps D3 and D4 one by one."""
    led = Ledger(tmp_path / "u.duckdb")
    write_utxo_blocks(led, "btc", [
        [Tx("cb0", [], [("thief", 1000)]), Tx("cb1", [], [("cust", 2000)]), Tx("cb2", [], [("x", 500)])],
        [Tx("t1", [("cb0", 0)], [("d1", 600), ("d3", 390)]), Tx("t2", [("cb1", 0)], [("d2", 1990)]),
         Tx("t3", [("cb2", 0)], [("d4", 490)])],
        [Tx("s1", [("t1", 0), ("t2", 0)], [("hot", 2580)])],
        [Tx("s2", [("t1", 1)], [("k", 380)]), Tx("s3", [("t3", 0)], [("k", 480)])],
    ])  # fmt: skip
    f = tmp_path / "tags.csv"
    f.write_text("address,currency,label,category,confidence\nhot,BTC,Test Exchange,exchange,service_data\n")
    import_tags(led, "csv", f)
    return led


def test_utxo_sweeps_make_deposit_stops(tmp_path: Path) -> None:
    led = _utxo_ledger(tmp_path)
    rows = [(r["address"], r["sink"], r["first_forward_tx"], r["first_forward_block"], r["n_forwards"],
             r["heuristic"]) for r in utxo_deposit_addresses(led, "btc").to_pylist()]  # fmt: skip
    # thief (two outputs), cust and x (their sinks D2, D4 sweep nothing back) are no deposits
    assert rows == [("d1", "hot", "s1", 2, 1, "utxo_sweep"), ("d2", "hot", "s1", 2, 1, "utxo_sweep"),
                    ("d3", "k", "s2", 3, 1, "utxo_sweep"), ("d4", "k", "s3", 3, 1, "utxo_sweep")]  # fmt: skip
    # a one-block window rejects K's sweeps, made two blocks after the deposits
    assert utxo_deposit_addresses(led, "btc", max_delay_blocks=1).column("address").to_pylist() == ["d1", "d2"]
    r = trace(led, "btc", ["thief"])
    assert [e["address"] for e in r.endpoints] == ["hot"]  # before clustering: the hot wallet
    assert cluster_chain(led, "btc").deposit_addresses == 4
    for model in ("haircut", "fifo", "lifo", "poison"):
        r = trace(led, "btc", ["thief"], model=model)
        assert _by(r.endpoints) == {"d1": 600} and _by(r.holdings) == {"k": 380}, model
        assert r.fees == {"BTC": 20}, model  # t1's 10 and s2's 10
        (end,) = r.endpoints
        assert (end["labels"], end["category"], end["service_address"]) == (
            ["deposit address of Test Exchange"], "exchange", "hot")
    led.close()
