"""Exposure on real nodes: a Bitcoin regtest chain and an anvil chain (native ETH and an
ERC-20), ingested by the real ingesters, with a sanctioned address (OFAC SDN category) and
an exchange tagged through the CSV tag importer. Funds leave the sanctioned address and
reach the exchange through 1 and 2 intermediaries; every value is worked out by hand in
the comments (haircut on the sender's balance, see docs/flows_exposure.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chainsleuth.cli.main import app
from chainsleuth.flows.exposure import build_exposure, exposure_of
from chainsleuth.ingest.bitcoin_rpc import ingest_bitcoin_rpc
from chainsleuth.ingest.ethereum_rpc import ingest_ethereum_rpc
from chainsleuth.store import Ledger
from chainsleuth.tags import import_tags
from nodes_bitcoin import send_raw, vout_of

pytestmark = pytest.mark.node


def _tag(led: Ledger, tmp_path: Path, currency: str, sanctioned: str, exchange: str) -> None:
    # the label of a real SDN entry (OFAC, 2022-04-14); the address is the chain's own
    f = tmp_path / "tags.csv"
    f.write_text("address,currency,label,category,confidence\n"
                 f"{sanctioned},{currency},LAZARUS GROUP (OFAC SDN),sanction,authority_data\n"
                 f"{exchange},{currency},Test Exchange,exchange,service_data\n")  # fmt: skip
    import_tags(led, "csv", f)


def _row(result: dict[str, Any], direction: str, category: str, asset: str) -> dict[str, Any]:
    (row,) = [r for r in result["exposure"] if (r["direction"], r["category"], r["asset"])
              == (direction, category, asset)]  # fmt: skip
    return row


def _vals(result: dict[str, Any], direction: str, category: str, asset: str) -> tuple[int, int]:
    r = _row(result, direction, category, asset)
    return r["direct_value"], r["indirect_value"]


def test_exposure_bitcoin_regtest(bitcoind: Any, tmp_path: Path) -> None:
    node = bitcoind
    node.ensure_wallet()
    if node.height() < 110:
        node.mine(110 - node.height())
    tag = tmp_path.name[-8:]
    for w in (f"xpsdn{tag}", f"xpmule{tag}"):
        node.rpc("createwallet", w)
    sdn = node.rpc("getnewaddress", "", "bech32", wallet=f"xpsdn{tag}")
    mule, hop2, change, rest = (
        node.rpc("getnewaddress", "", "bech32", wallet=f"xpmule{tag}") for _ in range(4)
    )
    ex = node.rpc("getnewaddress", "", "bech32", wallet="w")
    first = node.height() + 1
    fund = node.rpc("sendtoaddress", sdn, 1.0, wallet="w")
    clean = node.rpc("sendtoaddress", mule, 2.0, wallet="w")
    node.mine(1)
    # hop 1: the sanctioned address pays the mule (fee 10 000)
    tx1 = send_raw(node, f"xpsdn{tag}", [(fund, vout_of(node, fund, sdn))], [(mule, 99_990_000)])
    node.mine(1)
    # the mule merges it with its clean 2 BTC and splits (fee 10 000): hop 2
    tx2_hash = send_raw(node, f"xpmule{tag}", [(tx1, 0), (clean, vout_of(node, clean, mule))],
                    [(hop2, 150_000_000), (change, 149_980_000)])  # fmt: skip
    node.mine(1)
    # hop 3: the hop-2 address pays the exchange (fee 10 000)
    send_raw(node, f"xpmule{tag}", [(tx2_hash, vout_of(node, tx2_hash, hop2))],
         [(ex, 100_000_000), (rest, 49_990_000)])  # fmt: skip
    last = node.mine(1)[-1]
    db = tmp_path / "b.duckdb"
    with Ledger(db) as led:
        ingest_bitcoin_rpc(led, node.rpc_url, chain="btcreg", start=first, end=last)
        _tag(led, tmp_path, "BTC", sdn, ex)
        run = build_exposure(led, "btcreg", hops=4)
        assert run.labelled_nodes == 2
        # incoming. The mule got 99 990 000 straight from the SDN address: direct, exact,
        # of its 299 990 000 received
        m = exposure_of(led, "btcreg", mule)
        assert _vals(m, "in", "sanctions", "BTC") == (99_990_000, 0)
        assert _row(m, "in", "sanctions", "BTC")["direct_share"] == 99_990_000 / 299_990_000
        # tx2 pools 99 990 000 sanctioned of 299 990 000 in: hop2 gets
        # 150 000 000 * 99 990 000 / 299 990 000 = 49 996 666.56 -> 49 996 667 (hop 2);
        # change 149 980 000 * ... = 49 989 999.67 -> 49 990 000
        h = exposure_of(led, "btcreg", hop2)
        assert _vals(h, "in", "sanctions", "BTC") == (0, 49_996_667)
        assert _row(h, "in", "sanctions", "BTC")["indirect_share"] == 49_996_667 / 150_000_000
        assert _vals(exposure_of(led, "btcreg", change), "in", "sanctions", "BTC") == (
            0,
            49_990_000,
        )
        # tx3 spends all of hop2: the exchange gets 100 000 000 / 150 000 000 of its
        # 49 996 666.56 = 33 331 111.04 -> 33 331 111 (hop 3); the rest
        # 49 990 000 / 150 000 000 of it = 16 662 222.41 -> 16 662 222
        x = exposure_of(led, "btcreg", ex)
        assert x["category"] == "exchange"
        assert _vals(x, "in", "sanctions", "BTC") == (0, 33_331_111)
        assert _row(x, "in", "sanctions", "BTC")["indirect_share"] == 0.33331111
        assert _vals(exposure_of(led, "btcreg", rest), "in", "sanctions", "BTC") == (0, 16_662_222)
        # outgoing. hop2 sent 100 000 000 of its 150 000 000 out to the exchange: direct
        assert _vals(h, "out", "exchange", "BTC") == (100_000_000, 0)
        assert _row(h, "out", "exchange", "BTC")["direct_share"] == 100_000_000 / 150_000_000
        # the mule's 299 990 000 out paid hop2 in full, whose whole later outflow
        # reached the exchange: 100 000 000 at hop 2
        assert _vals(m, "out", "exchange", "BTC") == (0, 100_000_000)
        # the SDN coin is 99 990 000 of the mule's 299 990 000 received:
        # 100 000 000 * 99 990 000 / 299 990 000 = 33 331 111.04 -> 33 331 111 (hop 3)
        s = exposure_of(led, "btcreg", sdn)
        assert s["category"] == "sanctions"
        assert _vals(s, "out", "exchange", "BTC") == (0, 33_331_111)
        assert _row(s, "out", "exchange", "BTC")["total_value"] == 100_000_000
        # within 2 hops the exchange sees nothing of the SDN funds (they are 3 hops away)
        build_exposure(led, "btcreg", hops=2)
        assert not [r for r in exposure_of(led, "btcreg", ex)["exposure"] if r["direction"] == "in"]
        assert _vals(exposure_of(led, "btcreg", hop2), "in", "sanctions", "BTC") == (0, 49_996_667)
    runner = CliRunner()
    out = runner.invoke(app, ["--db", str(db), "exposure", "build", "--chain", "btcreg"])
    assert out.exit_code == 0, out.output
    assert "2 categorised" in out.output and "hops 4" in out.output
    out = runner.invoke(app, ["--db", str(db), "exposure", "show", ex, "--chain", "btcreg",
                              "--format", "json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["category"] == "exchange" and doc["totals"][0]["total_in"] == "100000000"
    (row,) = doc["exposure"]
    assert (row["category"], row["direct_value"], row["indirect_value"], row["risk"]) == (
        "sanctions", "0", "33331111", True)  # fmt: skip
    out = runner.invoke(app, ["--db", str(db), "exposure", "show", hop2, "--chain", "btcreg"])
    assert out.exit_code == 0, out.output
    assert "sanctions" in out.output and "33.33%" in out.output  # 49 996 667 / 150 000 000
    out = runner.invoke(
        app, ["--db", str(db), "exposure", "show", "bcrt1qnobody", "--chain", "btcreg"]
    )
    assert out.exit_code != 0 and "no transfers" in out.output + str(out.exception)


def test_exposure_anvil_native_and_token(anvil: Any, tmp_path: Path) -> None:
    node = anvil
    a0 = node.accounts[0]
    tag = int(tmp_path.name[-1]) if tmp_path.name[-1].isdigit() else 0
    sdn, mule, hop2, ex = (f"0x{k:02x}{tag:02x}" + "cd" * 18 for k in (1, 2, 3, 4))
    for acct in (sdn, mule, hop2):
        node.rpc("anvil_impersonateAccount", acct)
    # amounts below 2**53 wei keep the float64 haircut exact to the wei
    u = 10**14
    first = node.block_number() + 1
    node.tx(a0, sdn, 10 * u)
    node.tx(a0, mule, 30 * u)
    node.tx(a0, hop2, 1 * u)
    node.tx(sdn, mule, 8 * u)  # hop 1: 8 of the mule's 38 received
    node.tx(mule, hop2, 19 * u)  # half the mule's 38: 4 sanctioned at hop 2, of 20 received
    node.tx(hop2, ex, 10 * u)  # half of hop2's 20: 2 sanctioned at hop 3
    # the token only after the ETH chain: its gas must not change the balances above
    token = node.deploy("TestToken", 10**6)

    def send(sender: str, to: str, value: int) -> None:
        node.tx(
            sender, token, data=node.calldata("TestToken", "transfer(address,uint256)", to, value)
        )

    send(a0, sdn, 1000)
    send(a0, mule, 600)
    send(a0, hop2, 300)
    send(sdn, mule, 600)  # hop 1: 600 of 1200
    send(mule, hop2, 600)  # half of the mule's 1200: 300 sanctioned, of hop2's 900
    send(hop2, ex, 450)  # half of hop2's 900: 150 sanctioned
    last = node.block_number()
    db = tmp_path / "e.duckdb"
    with Ledger(db) as led:
        ingest_ethereum_rpc(led, node.rpc_url, chain="anv", start=first, end=last)
        _tag(led, tmp_path, "ETH", sdn, ex)
        build_exposure(led, "anv", hops=4)
        m, h, x, s = (exposure_of(led, "anv", a) for a in (mule, hop2, ex, sdn))
        # incoming, native ETH: direct 8u of 38u; hop 2: 4u of 20u; hop 3: 2u of 10u
        assert _vals(m, "in", "sanctions", "ETH") == (8 * u, 0)
        assert _row(m, "in", "sanctions", "ETH")["direct_share"] == 8 / 38
        assert _vals(h, "in", "sanctions", "ETH") == (0, 4 * u)
        assert _row(h, "in", "sanctions", "ETH")["indirect_share"] == 0.2
        assert _vals(x, "in", "sanctions", "ETH") == (0, 2 * u)
        assert _row(x, "in", "sanctions", "ETH")["indirect_share"] == 0.2
        # the token, its own asset: direct 600 of 1200; hop 2: 300 of 900; hop 3: 150 of 450
        assert _vals(m, "in", "sanctions", token) == (600, 0)
        assert _row(m, "in", "sanctions", token)["direct_share"] == 0.5
        assert _vals(h, "in", "sanctions", token) == (0, 300)
        assert _vals(x, "in", "sanctions", token) == (0, 150)
        assert _row(x, "in", "sanctions", token)["indirect_share"] == 150 / 450
        # outgoing: hop2 paid the exchange directly; the mule's 19u were 19/20 of hop2's
        # receipts, so 19/20 of the 10u -> 9.5u at hop 2; the SDN's 8u were 8/38 of the
        # mule's receipts: 8/38 of 9.5u = 2u at hop 3 (later gas does not change this:
        # received outweighs what is sent later)
        assert _vals(h, "out", "exchange", "ETH") == (10 * u, 0)
        assert _vals(m, "out", "exchange", "ETH") == (0, 95 * u // 10)
        assert _vals(s, "out", "exchange", "ETH") == (0, 2 * u)
        # token: 600 of hop2's 900 -> 2/3 of 450 = 300; 600 of the mule's 1200 -> 150
        assert _vals(h, "out", "exchange", token) == (450, 0)
        assert _row(h, "out", "exchange", token)["direct_share"] == 1.0
        assert _vals(m, "out", "exchange", token) == (0, 300)
        assert _vals(s, "out", "exchange", token) == (0, 150)
        assert s["category"] == "sanctions" and x["category"] == "exchange"
    runner = CliRunner()
    out = runner.invoke(app, ["--db", str(db), "exposure", "show", ex, "--chain", "anv",
                              "--format", "json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    got = {(r["asset"], r["direction"], r["category"]): (r["direct_value"], r["indirect_value"])
           for r in doc["exposure"]}  # fmt: skip
    assert got[("ETH", "in", "sanctions")] == ("0", str(2 * u))
    assert got[(token, "in", "sanctions")] == ("0", "150")
