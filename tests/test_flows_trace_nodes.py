"""Trace on real nodes: a Bitcoin regtest chain and an anvil chain, ingested by the
real ingesters, with the exchange tagged through the CSV tag importer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from chainsleuth.cli.main import app
from chainsleuth.flows.models import haircut
from chainsleuth.flows.trace import trace
from chainsleuth.ingest.bitcoin_rpc import ingest_bitcoin_rpc
from chainsleuth.ingest.ethereum_rpc import ingest_ethereum_rpc
from chainsleuth.store import Ledger
from chainsleuth.tags import import_tags
from nodes_bitcoin import send_raw, vout_of


def _tag(led: Ledger, tmp_path: Path, currency: str, address: str) -> None:
    f = tmp_path / "ex.csv"
    f.write_text(f"address,currency,label,category,confidence\n{address},{currency},Test Exchange,exchange,service_data\n")
    import_tags(led, "csv", f)


def test_trace_bitcoin_regtest(bitcoind: Any, tmp_path: Path) -> None:
    node = bitcoind
    node.ensure_wallet()
    if node.height() < 110:
        node.mine(110 - node.height())
    tag = tmp_path.name[-8:]
    for w in (f"thief{tag}", f"mule{tag}"):
        node.rpc("createwallet", w)
    thief = node.rpc("getnewaddress", "", "bech32", wallet=f"thief{tag}")
    mule, mule2 = (node.rpc("getnewaddress", "", "bech32", wallet=f"mule{tag}") for _ in range(2))
    change = node.rpc("getnewaddress", "", "bech32", wallet=f"mule{tag}")
    ex = node.rpc("getnewaddress", "", "bech32", wallet="w")
    first = node.height() + 1
    fund = node.rpc("sendtoaddress", thief, 1.0, wallet="w")
    clean = node.rpc("sendtoaddress", mule2, 2.0, wallet="w")
    node.mine(1)
    tx1 = send_raw(node, f"thief{tag}", [(fund, vout_of(node, fund, thief))], [(mule, 99_990_000)])  # fee 10 000
    node.mine(1)
    # mule merges the tainted coin (first) with a clean one and pays the exchange; fee 10 000
    tx2 = send_raw(node, f"mule{tag}", [(tx1, 0), (clean, vout_of(node, clean, mule2))],
               [(ex, 150_000_000), (change, 149_980_000)])  # fmt: skip
    last = node.mine(1)[-1]
    with Ledger(tmp_path / "b.duckdb") as led:
        ingest_bitcoin_rpc(led, node.rpc_url, chain="btcreg", start=first, end=last)
        _tag(led, tmp_path, "BTC", ex)
        # haircut by hand: 99 990 000 tainted of 299 990 000 in tx2
        r = trace(led, "btcreg", [thief])
        exp_out, exp_fee = haircut([99_990_000, 200_000_000], [99_990_000, 0], [150_000_000, 149_980_000], 10_000)
        # floors 49 996 666.56 | 49 989 999.67 | 3 333.11 leave 2 units: the largest
        # remainders (change .67, ex .56) get one each
        assert exp_out == [49_996_667, 49_990_000] and exp_fee == 3_333
        (e,) = r.endpoints
        assert (e["address"], e["value"], e["category"]) == (ex, 49_996_667, "exchange")
        assert r.holdings == [{"address": change, "asset": "BTC", "value": 49_990_000}]
        assert r.fees == {"BTC": 10_000 + 3_333} and r.seed_value == {"BTC": 100_000_000}
        assert r.accounted_share("BTC") == 1
        assert [(x["from"], x["to"], x["value"]) for x in r.edges] == [
            (thief, mule, 99_990_000), (mule, ex, 49_996_667), (mule, change, 49_990_000)]
        assert r.edges[1]["transaction_hash"] == tx2
        r = trace(led, "btcreg", [thief], model="fifo")
        assert r.endpoints[0]["value"] == 99_990_000 and r.holdings == []
        r = trace(led, "btcreg", [f"{tx2}:0"], backward=True, stop_categories=())
        # the exchange's 150 000 000: 49 996 667 came through the thief, the rest through
        # mule2; both trace on back to the miner wallet's coins (origins, held as "holdings")
        got = {(x["from"], x["to"]): x["value"] for x in r.edges}
        assert got[(thief, mule)] == 49_996_667 and got[(mule2, ex)] == 100_003_333
        assert r.seed_value == {"BTC": 150_000_000} and r.accounted("BTC") == 150_000_000
    runner = CliRunner()
    out = runner.invoke(app, ["--db", str(tmp_path / "b.duckdb"), "trace", "--from", thief, "--format", "json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["endpoints"][0]["value"] == "49996667" and doc["accounted"] == {"BTC": "100000000"}
    out = runner.invoke(app, ["--db", str(tmp_path / "b.duckdb"), "trace", "--from", "bc1nobody"])
    assert out.exit_code != 0 and "does not occur" in str(out.exception)


def test_trace_anvil_native_and_token(anvil: Any, tmp_path: Path) -> None:
    node = anvil
    a0 = node.accounts[0]
    tag = int(tmp_path.name[-1]) if tmp_path.name[-1].isdigit() else 0
    thief, mule, ex = (f"0x{k:02x}{tag:02x}" + "ab" * 18 for k in (1, 2, 3))
    for acct in (thief, mule):
        node.rpc("anvil_impersonateAccount", acct)
    eth = 10**18
    first = node.block_number() + 1
    node.tx(a0, thief, 10 * eth)
    node.tx(a0, mule, 30 * eth)
    node.tx(thief, mule, 8 * eth)
    node.tx(mule, ex, 19 * eth)  # 8 of 38 tainted: exactly 4 ETH to the exchange
    token = node.deploy("TestToken", 10**6)
    node.tx(a0, token, data=node.calldata("TestToken", "transfer(address,uint256)", thief, 1000))
    node.tx(thief, token, data=node.calldata("TestToken", "transfer(address,uint256)", mule, 600))
    node.tx(a0, token, data=node.calldata("TestToken", "transfer(address,uint256)", mule, 400))
    node.tx(mule, token, data=node.calldata("TestToken", "transfer(address,uint256)", ex, 500))  # 300 tainted
    last = node.block_number()
    with Ledger(tmp_path / "e.duckdb") as led:
        ingest_ethereum_rpc(led, node.rpc_url, chain="anv", start=first, end=last)
        _tag(led, tmp_path, "ETH", ex)
        r = trace(led, "anv", [thief])
        ends = {(e["address"], e["asset"]): e["value"] for e in r.endpoints}
        assert ends == {(ex, "ETH"): 4 * eth, (ex, token): 300}
        assert r.seed_value[token] == 1000
        for asset in r.seed_value:
            assert r.accounted(asset) == r.seed_value[asset]
        # the thief's gas is all tainted; the seed value is what it received plus
        # what it spent beyond that (its balance from before the ingested blocks)
        fees = led.con.execute(
            "SELECT sum(amount) FROM anv.transfers WHERE kind = 'fee' AND from_address = ?", [thief]
        ).fetchone()
        assert fees is not None and r.seed_value["ETH"] == 10 * eth + max(0, int(fees[0]) - 2 * eth)
        r = trace(led, "anv", [thief], hops=1)
        assert r.endpoints == [] and r.left["hops"] == {"ETH": 4 * eth, token: 300}
