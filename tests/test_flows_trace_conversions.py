"""``trace`` through conversions on hand-built ledgers, values computed by hand: a DEX swap
(taint in token A becomes taint in token B in proportion), a two-hop swap, wrapped native,
and a bridge hop from an account chain to a Bitcoin-family chain."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainsleuth.entities.synthetic import Tx, write_utxo_blocks
from chainsleuth.flows.conversions import _insert, ensure_schema
from chainsleuth.flows.trace import TraceResult, trace
from chainsleuth.store import Ledger
from chainsleuth.tags import import_tags

A = "0x00000000000000000000000000000000000000aa"
B = "0x00000000000000000000000000000000000000bb"
C = "0x00000000000000000000000000000000000000cc"
WETH = "0x00000000000000000000000000000000000000ee"


def tx_hash(block: int, index: int) -> str:
    return f"0x{block:04x}{index:04x}"


def write_blocks(led: Ledger, chain: str, blocks: Sequence[Sequence[dict[str, Any]]]) -> None:
    """Each tx: {from, to, value, tokens: [(token, from, to, value)]}; hash ``tx_hash(block, index)``."""
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
            hsh = tx_hash(h, i)
            for k, v in (("hash", hsh), ("block_number", h), ("block_timestamp", ts), ("transaction_index", i),
                         ("from_address", tx["from"]), ("to_address", tx["to"]), ("value", tx.get("value", 0)),
                         ("gas_price", 1)):  # fmt: skip
                t[k].append(v)
            for k, v in (("transaction_hash", hsh), ("transaction_index", i), ("block_number", h),
                         ("gas_used", 0), ("status", 1), ("effective_gas_price", 1)):  # fmt: skip
                rc[k].append(v)
            for j, (token, f, to, v) in enumerate(tx.get("tokens", [])):
                for k, x in (("token_address", token), ("from_address", f), ("to_address", to), ("value", v),
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


def add_swaps(led: Ledger, chain: str, swaps: Sequence[tuple[str, str, str, str, str, int, str, int, str]]) -> None:
    """(tx, pool, trader, recipient, token_in, amount_in, token_out, amount_out, protocol) rows of flows.swaps."""
    ensure_schema(led)
    _insert(led, "swaps", [
        {"chain": chain, "transaction_hash": tx, "log_index": k, "pool": pool, "trader": trader,
         "recipient": rcpt, "token_in": t_in, "amount_in": a_in, "token_out": t_out, "amount_out": a_out,
         "block_number": int(tx[2:6], 16), "block_timestamp": 1_600_000_000, "transaction_index": int(tx[6:], 16),
         "protocol": proto, "sender": trader, "tokens_from": "factory"}
        for k, (tx, pool, trader, rcpt, t_in, a_in, t_out, a_out, proto) in enumerate(swaps)])  # fmt: skip


def tag(led: Ledger, tmp_path: Path, rows: Sequence[tuple[str, str, str]]) -> None:
    f = tmp_path / "tags.csv"
    f.write_text("address,currency,label,category,confidence\n"
                 + "".join(f"{a},{cur},{cat} {a},{cat},service_data\n" for a, cur, cat in rows))  # fmt: skip
    import_tags(led, "csv", f)


def by(rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    return {(r["address"], r["asset"]): r["value"] for r in rows}


def conserved(r: TraceResult) -> None:
    """Per asset: seed + converted in = endpoints + holdings + fees + converted out + left."""
    for asset in {*r.seed_value, *r.converted_in}:
        left = sum(d.get(asset, 0) for d in r.left.values())
        assert r.accounted(asset) + left == r.seed_value.get(asset, 0) + r.converted_in.get(asset, 0), asset


def swap_ledger(tmp_path: Path) -> Ledger:
    led = Ledger(tmp_path / "s.duckdb")
    write_blocks(led, "eth", [
        [{"from": "0xlp", "to": A, "tokens": [(A, "0xmint", "0xthief", 100), (A, "0xmint", "0xclean", 100),
                                              (A, "0xmint", "0xp1", 1000), (B, "0xmint", "0xp1", 1000),
                                              (B, "0xmint", "0xp2", 1000), (C, "0xmint", "0xp2", 5000)]}],
        # the trader holds 200 A, 100 of them stolen
        [{"from": "0xthief", "to": A, "tokens": [(A, "0xthief", "0xtrader", 100)]},
         {"from": "0xclean", "to": A, "tokens": [(A, "0xclean", "0xtrader", 100)]}],
        # one swap: 200 A into p1, 300 B out to 0xrcpt
        [{"from": "0xtrader", "to": "0xp1", "tokens": [(A, "0xtrader", "0xp1", 200), (B, "0xp1", "0xrcpt", 300)]}],
        # the recipient pays 90 B to an exchange
        [{"from": "0xrcpt", "to": B, "tokens": [(B, "0xrcpt", "0xex", 90)]}],
    ])  # fmt: skip
    add_swaps(led, "eth", [(tx_hash(2, 0), "0xp1", "0xtrader", "0xrcpt", A, 200, B, 300, "uniswap_v2")])
    tag(led, tmp_path, [("0xex", "ETH", "exchange"), ("0xp1", "ETH", "defi_dex"), ("0xp2", "ETH", "defi_dex")])
    return led


def test_swap_converts_taint_in_proportion(tmp_path: Path) -> None:
    with swap_ledger(tmp_path) as led:
        r = trace(led, "eth", ["0xthief"], model="haircut")
        # 100 tainted of the 200 A that went in -> 100 * 300 // 200 = 150 of the 300 B out;
        # the recipient pays 90 of its 300 B: 150 * 90 / 300 = 45 reach the exchange
        assert r.seed_value == {A: 100}
        assert r.converted_out == {A: 100} and r.converted_in == {B: 150}
        assert by(r.endpoints) == {("0xex", B): 45}  # the pool (defi_dex) is no endpoint
        assert by(r.holdings) == {("0xrcpt", B): 105}  # the pool holds no taint in A or B
        assert [(c["kind"], c["from"], c["to"], c["asset_in"], c["value_in"], c["asset_out"], c["value_out"])
                for c in r.conversions] == [("swap", "0xtrader", "0xrcpt", A, 100, B, 150)]  # fmt: skip
        assert [(e["kind"], e["from"], e["to"], e["asset"], e["value"]) for e in r.edges] == [
            ("transfer", "0xthief", "0xtrader", A, 100), ("transfer", "0xrcpt", "0xex", B, 45),
            ("swap", "0xtrader", "0xrcpt", B, 150)]  # the raw legs trader->p1, p1->rcpt are not edges
        assert r.accounted_share(A) == 1 and r.accounted_share(B) == 1
        conserved(r)
        doc = r.to_json()
        assert doc["conversions"][0]["value_out"] == "150" and doc["accounted"] == {A: "100", B: "150"}
        # FIFO: the trader's lots are 100 tainted then 100 clean; the 200 in carry 100 tainted;
        # the recipient's 150 tainted B lot leaves first: all 90 reach the exchange
        r = trace(led, "eth", ["0xthief"], model="fifo")
        assert by(r.endpoints) == {("0xex", B): 90} and by(r.holdings) == {("0xrcpt", B): 60}
        conserved(r)
        # without conversions the pool is a service stop: the taint ends there, in A
        r = trace(led, "eth", ["0xthief"], follow_conversions=False)
        assert by(r.endpoints) == {("0xp1", A): 100} and r.conversions == [] and r.converted_in == {}


def test_two_hop_swap(tmp_path: Path) -> None:
    with Ledger(tmp_path / "h.duckdb") as led:
        write_blocks(led, "eth", [
            [{"from": "0xlp", "to": A, "tokens": [(A, "0xmint", "0xthief", 100), (A, "0xmint", "0xclean", 100),
                                                  (B, "0xmint", "0xp1", 1000), (C, "0xmint", "0xp2", 5000)]}],
            [{"from": "0xthief", "to": A, "tokens": [(A, "0xthief", "0xtrader", 100)]},
             {"from": "0xclean", "to": A, "tokens": [(A, "0xclean", "0xtrader", 100)]}],
            # A -> B through p1, paid straight to p2, B -> C through p2, to the trader
            [{"from": "0xtrader", "to": "0xrouter", "tokens": [
                (A, "0xtrader", "0xp1", 200), (B, "0xp1", "0xp2", 300), (C, "0xp2", "0xtrader", 600)]}],
        ])  # fmt: skip
        add_swaps(led, "eth", [(tx_hash(2, 0), "0xp1", "0xtrader", "0xp2", A, 200, B, 300, "uniswap_v2"),
                               (tx_hash(2, 0), "0xp2", "0xp1", "0xtrader", B, 300, C, 600, "uniswap_v2")])  # fmt: skip
        r = trace(led, "eth", ["0xthief"], stop_categories=())
        # 100 of 200 A -> 150 of 300 B (never held by p2) -> 300 of 600 C at the trader
        assert r.converted_out == {A: 100, B: 150} and r.converted_in == {B: 150, C: 300}
        assert by(r.holdings) == {("0xtrader", C): 300}
        assert [(c["from"], c["to"], c["value_in"], c["value_out"]) for c in r.conversions] == [
            ("0xtrader", "0xp2", 100, 150), ("0xp1", "0xtrader", 150, 300)]
        conserved(r)
        # a route in one transaction is one hop (trader -> recipient): thief -> trader is hop 1,
        # the route hop 2
        r = trace(led, "eth", ["0xthief"], stop_categories=(), hops=1)
        assert r.left == {"hops": {A: 100}} and r.holdings == [] and r.converted_in == {}
        conserved(r)
        r = trace(led, "eth", ["0xthief"], stop_categories=(), hops=2)
        assert r.left == {} and by(r.holdings) == {("0xtrader", C): 300}


def test_wrapped_native_deposit(tmp_path: Path) -> None:
    with Ledger(tmp_path / "w.duckdb") as led:
        write_blocks(led, "eth", [
            [{"from": "0xfund", "to": "0xthief", "value": 1000}],
            [{"from": "0xthief", "to": "0xuser", "value": 1000}],
            # WETH9 deposit: a native leg in, no Transfer event for the WETH minted
            [{"from": "0xuser", "to": WETH, "value": 600}],
            [{"from": "0xuser", "to": WETH, "tokens": [(WETH, "0xuser", "0xex", 400)]}],
        ])  # fmt: skip
        add_swaps(led, "eth", [(tx_hash(2, 0), WETH, "0xuser", "0xuser", "ETH", 600, WETH, 600, "wrapped_native")])
        tag(led, tmp_path, [("0xex", "ETH", "exchange")])
        r = trace(led, "eth", ["0xthief"])
        assert r.converted_out == {"ETH": 600} and r.converted_in == {WETH: 600}
        assert by(r.endpoints) == {("0xex", WETH): 400}
        assert by(r.holdings) == {("0xuser", "ETH"): 400, ("0xuser", WETH): 200}
        assert [e["kind"] for e in r.edges] == ["transfer", "transfer", "swap"]
        conserved(r)


def bridge_ledger(tmp_path: Path) -> Ledger:
    led = Ledger(tmp_path / "b.duckdb")
    write_blocks(led, "eth", [
        [{"from": "0xfund", "to": "0xthief", "value": 1000}],
        [{"from": "0xthief", "to": "0xbridge", "value": 500}],  # the lock
    ])  # fmt: skip
    write_utxo_blocks(led, "btc", [
        [Tx("c0", [], [("relayer", 500)])],
        # the payout: 99 to the address the lock named, change, fee 11
        [Tx("pay", [("c0", 0)], [("bc1dest", 99), ("relayer", 390)])],
        [Tx("s1", [("pay", 0)], [("btcex", 60), ("bc1other", 39)])],
    ])  # fmt: skip
    ensure_schema(led)
    _insert(led, "bridge_transfers", [{
        "bridge": "heist_lab_btc", "src_chain": "eth", "src_transaction_hash": tx_hash(1, 0), "src_position": 0,
        "src_address": "0xthief", "src_asset": "ETH", "src_amount": 1000 // 2, "dst_chain": "btc",
        "dst_transaction_hash": "pay", "dst_position": 0, "dst_address": "bc1dest", "dst_asset": "BTC",
        "dst_amount": 99, "match_key": "deposit_id:0x01", "confidence": 1.0}])  # fmt: skip
    tag(led, tmp_path, [("0xbridge", "ETH", "defi_bridge"), ("btcex", "BTC", "exchange")])
    return led


def test_bridge_hop_to_bitcoin(tmp_path: Path) -> None:
    with bridge_ledger(tmp_path) as led:
        r = trace(led, "eth", ["0xthief"])
        # 500 tainted wei locked for 99 sat: 500 * 99 // 500 = 99 sat tainted on the payout coin;
        # s1 splits it 60/39 (haircut of a fully tainted coin): 60 to the exchange, 39 held
        assert r.converted_out == {"ETH": 500} and r.converted_in == {"BTC": 99}
        assert by(r.endpoints) == {("btcex", "BTC"): 60}
        assert r.endpoints[0]["chain"] == "btc" and r.endpoints[0]["category"] == "exchange"
        assert by(r.holdings) == {("0xthief", "ETH"): 500, ("bc1other", "BTC"): 39}
        assert [(c["kind"], c["chain"], c["dst_chain"], c["value_in"], c["value_out"]) for c in r.conversions] == [
            ("bridge", "eth", "btc", 500, 99)]
        assert [(e["kind"], e["from"], e["to"], e["asset"], e["value"]) for e in r.edges] == [
            ("bridge", "0xthief", "bc1dest", "BTC", 99), ("transfer", "bc1dest", "btcex", "BTC", 60),
            ("transfer", "bc1dest", "bc1other", "BTC", 39)]  # fmt: skip
        conserved(r)
        # hops count across the bridge: thief -> (bridge) bc1dest is hop 1, s1 would be hop 2
        r = trace(led, "eth", ["0xthief"], hops=1)
        assert r.left == {"hops": {"BTC": 99}} and r.endpoints == []
        conserved(r)
        # not following bridges: the bridge contract is the endpoint
        for bridges, conversions in ((False, True), (True, False)):
            r = trace(led, "eth", ["0xthief"], follow_bridges=bridges, follow_conversions=conversions)
            assert by(r.endpoints) == {("0xbridge", "ETH"): 500} and r.converted_in == {}


def test_partial_taint_bridge_amount(tmp_path: Path) -> None:
    """A lock of a half-tainted balance converts half: haircut gives the lock 250 of 500 tainted."""
    with bridge_ledger(tmp_path) as led:
        r = trace(led, "eth", [tx_hash(0, 0)], model="haircut")  # same: the funding tx is the seed
        assert r.converted_in == {"BTC": 99}
    with Ledger(tmp_path / "p.duckdb") as led:
        write_blocks(led, "eth", [
            [{"from": "0xfund", "to": "0xthief", "value": 600}, {"from": "0xclean", "to": "0xmule", "value": 600}],
            [{"from": "0xthief", "to": "0xmule", "value": 600}],
            [{"from": "0xmule", "to": "0xbridge", "value": 1000}],
        ])  # fmt: skip
        write_utxo_blocks(led, "btc", [[Tx("c0", [], [("relayer", 500)])],
                                       [Tx("pay", [("c0", 0)], [("bc1dest", 333), ("relayer", 160)])]])  # fmt: skip
        ensure_schema(led)
        _insert(led, "bridge_transfers", [{
            "bridge": "heist_lab_btc", "src_chain": "eth", "src_transaction_hash": tx_hash(2, 0),
            "src_address": "0xmule", "src_asset": "ETH", "src_amount": 1000, "dst_chain": "btc",
            "dst_transaction_hash": "pay", "dst_position": 0, "dst_address": "bc1dest", "dst_asset": "BTC",
            "dst_amount": 333, "match_key": "recipient_amount:bc1dest", "confidence": 0.8}])  # fmt: skip
        r = trace(led, "eth", ["0xthief"], stop_categories=())
        # mule: 1200 with 600 tainted; the 1000 locked carry 500; 500 * 333 // 1000 = 166 sat
        assert r.converted_out == {"ETH": 500} and r.converted_in == {"BTC": 166}
        assert by(r.holdings) == {("0xmule", "ETH"): 100, ("bc1dest", "BTC"): 166}
        conserved(r)


def test_no_conversion_tables_behave_as_before(tmp_path: Path) -> None:
    with Ledger(tmp_path / "n.duckdb") as led:
        write_blocks(led, "eth", [[{"from": "0xfund", "to": "0xthief", "value": 10}],
                                  [{"from": "0xthief", "to": "0xa", "value": 4}]])  # fmt: skip
        r = trace(led, "eth", ["0xthief"])
        assert r.conversions == [] and by(r.holdings) == {("0xthief", "ETH"): 6, ("0xa", "ETH"): 4}
        # no conversion table was created (the trace index is, see flows/trace_index.py)
        assert led.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'flows' "
            "AND table_name NOT LIKE 'trace_%'").fetchall() == [(0,)]


@pytest.mark.parametrize("model", ["haircut", "fifo", "lifo"])
def test_models_conserve_through_conversions(tmp_path: Path, model: str) -> None:
    with swap_ledger(tmp_path) as led:
        conserved(trace(led, "eth", ["0xthief"], model=model))


def test_cli_follow_conversions(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from chainsleuth.cli.main import app

    with swap_ledger(tmp_path):
        pass
    run = CliRunner()
    base = ["--db", str(tmp_path / "s.duckdb"), "trace", "--from", "0xthief", "--chain", "eth"]
    out = run.invoke(app, [*base, "--format", "json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["converted_in"] == {B: "150"} and doc["endpoints"][0]["value"] == "45"
    assert [(e["kind"], e["value"]) for e in doc["edges"]][-1] == ("swap", "150")
    out = run.invoke(app, [*base, "--no-follow-conversions", "--format", "json"])
    doc = json.loads(out.output)
    assert doc["conversions"] == [] and [(e["address"], e["value"]) for e in doc["endpoints"]] == [("0xp1", "100")]
    out = run.invoke(app, base)
    assert out.exit_code == 0 and "conversions" in out.output and "converted in 150" in out.output


@pytest.mark.node
def test_end_to_end_on_nodes(anvil_fresh: Any, fresh_bitcoind: Any, tmp_path: Path) -> None:
    """anvil: the thief swaps stolen X through two V2 pairs (X -> Y -> Z, the router's real
    events) to a mule, who pays an exchange; the thief also locks ETH in the heist-lab bridge,
    paid out on Bitcoin regtest, where the payee spends the coin to a tagged exchange. One
    forward trace from the thief reaches both exchanges, with exact values."""
    from chainsleuth.flows.conversions import decode_conversions, match_bridges
    from chainsleuth.ingest.bitcoin_rpc import ingest_bitcoin_rpc
    from chainsleuth.ingest.ethereum_rpc import ingest_ethereum_rpc
    from test_flows_conversions_node import lock_calldata, send

    eth, btc = anvil_fresh, fresh_bitcoind
    e18 = 10**18
    lp, thief, mule, eth_ex = eth.accounts[0], eth.accounts[3], eth.accounts[4], eth.accounts[5]
    x, y, z = (eth.deploy("FlowToken", 10**30) for _ in range(3))
    factory = eth.deploy("MiniV2Factory")
    receipt = eth.receipt(send(eth, lp, factory, "MiniV2Factory", "createPair(address,address)", x, y))
    pair_xy = "0x" + receipt["logs"][-1]["data"][2 + 24 : 2 + 64]
    pair_yz = eth.deploy("MiniV2Pair", y, z)
    router = eth.deploy("MiniRouter")
    bridge = eth.deploy("MiniBridge")
    for pair, tokens in ((pair_xy, (x, y)), (pair_yz, (y, z))):
        for t in tokens:
            send(eth, lp, t, "FlowToken", "transfer(address,uint256)", pair, 10**6 * e18)
        send(eth, lp, pair, "MiniV2Pair", "sync()")
    send(eth, lp, x, "FlowToken", "transfer(address,uint256)", thief, 5 * e18)  # the stolen tokens
    send(eth, thief, x, "FlowToken", "approve(address,uint256)", router, e18)
    send(eth, thief, router, "MiniRouter", "swap2(address,uint256,address,uint256,address,uint256,address)",
         x, e18, pair_xy, 1_999_999_999_999_999_999, pair_yz, 7_777_777, mule)  # fmt: skip
    send(eth, mule, z, "FlowToken", "transfer(address,uint256)", eth_ex, 7_000_000)
    btc.mine(101)
    dest, other, btc_ex = (btc.rpc("getnewaddress", "", "bech32", wallet="w") for _ in range(3))
    lock = eth.tx(thief, bridge, 10**16, lock_calldata(eth, dest))
    deposit_id = eth.receipt(lock)["logs"][0]["topics"][2]
    raw = btc.rpc("createrawtransaction", [], [{dest: "0.00990000"}, {"data": deposit_id[2:]}])
    funded = btc.rpc("fundrawtransaction", raw, wallet="w")
    pay = btc.rpc("sendrawtransaction", btc.rpc("signrawtransactionwithwallet", funded["hex"], wallet="w")["hex"])
    btc.mine(1)
    vout = next(o["n"] for o in btc.rpc("getrawtransaction", pay, True)["vout"]
                if o["scriptPubKey"].get("address") == dest)  # fmt: skip
    # the payee spends exactly the bridged coin: 600000 to the exchange, 380000 on, fee 10000
    raw = btc.rpc("createrawtransaction", [{"txid": pay, "vout": vout}], [{btc_ex: "0.00600000"}, {other: "0.00380000"}])
    spend = btc.rpc("sendrawtransaction", btc.rpc("signrawtransactionwithwallet", raw, wallet="w")["hex"])
    btc.mine(1)
    with Ledger(tmp_path / "e2e.duckdb") as led:
        ingest_ethereum_rpc(led, eth.rpc_url, chain="anvil", workers=2)
        ingest_bitcoin_rpc(led, btc.rpc_url, chain="bitcoin_regtest", workers=2)
        assert decode_conversions(led, "anvil").swaps == 2
        assert match_bridges(led, "anvil", "bitcoin_regtest", rate=(1, 10**10)).matched == 1
        f = tmp_path / "tags.csv"
        f.write_text("address,currency,label,category,confidence\n"
                     f"{eth_ex},ETH,Eth Exchange,exchange,service_data\n{btc_ex},BTC,Btc Exchange,exchange,service_data\n"
                     f"{bridge},ETH,heist lab bridge,defi_bridge,ownership\n{pair_xy},ETH,pair,defi_dex,ownership\n")  # fmt: skip
        import_tags(led, "csv", f)
        r = trace(led, "anvil", [thief])
        assert [(c["kind"], c["from"], c["to"], c["asset_in"], c["value_in"], c["asset_out"], c["value_out"])
                for c in r.conversions] == [
            ("swap", thief, pair_yz, x, e18, y, 1_999_999_999_999_999_999),
            ("swap", pair_xy, mule, y, 1_999_999_999_999_999_999, z, 7_777_777),
            ("bridge", thief, dest, "ETH", 10**16, "BTC", 990_000)]  # fmt: skip
        assert by(r.endpoints) == {(eth_ex, z): 7_000_000, (btc_ex, "BTC"): 600_000}
        assert {e["address"]: e["chain"] for e in r.endpoints if "chain" in e} == {btc_ex: "bitcoin_regtest"}
        held = by(r.holdings)
        assert held[(mule, z)] == 777_777 and held[(other, "BTC")] == 380_000
        assert (pair_xy, x) not in held and (pair_yz, y) not in held and (thief, x) in held
        assert r.fees["BTC"] == 10_000 and spend in {e["transaction_hash"] for e in r.edges}
        assert r.converted_in == {y: 1_999_999_999_999_999_999, z: 7_777_777, "BTC": 990_000}
        conserved(r)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stolen=st.integers(1, 10**20), clean=st.integers(0, 10**20), out=st.integers(1, 10**20),
       paid=st.integers(0, 100), model=st.sampled_from(["haircut", "fifo", "lifo", "poison"]))  # fmt: skip
def test_swap_property(tmp_path: Path, stolen: int, clean: int, out: int, paid: int, model: str) -> None:
    """The trader swaps all its A (stolen + clean) for ``out`` B: the swap converts exactly
    floor(stolen * out / (stolen + clean)) (all of ``out`` under poison), and every asset is
    conserved (haircut, FIFO, LIFO)."""
    import uuid

    with Ledger(tmp_path / f"{uuid.uuid4().hex}.duckdb") as led:
        pay = out * paid // 100
        write_blocks(led, "eth", [
            [{"from": "0xlp", "to": A, "tokens": [(A, "0xmint", "0xthief", stolen), (A, "0xmint", "0xclean", clean),
                                                  (B, "0xmint", "0xp1", out)]}],
            [{"from": "0xthief", "to": A, "tokens": [(A, "0xthief", "0xtrader", stolen), (A, "0xclean", "0xtrader", clean)]}],
            [{"from": "0xtrader", "to": "0xp1", "tokens": [(A, "0xtrader", "0xp1", stolen + clean), (B, "0xp1", "0xrcpt", out)]}],
            [{"from": "0xrcpt", "to": B, "tokens": [(B, "0xrcpt", "0xx", pay)]}],
        ])  # fmt: skip
        add_swaps(led, "eth", [(tx_hash(2, 0), "0xp1", "0xtrader", "0xrcpt", A, stolen + clean, B, out, "uniswap_v2")])
        r = trace(led, "eth", ["0xthief"], model=model, stop_categories=())
        expect = out if model == "poison" else stolen * out // (stolen + clean)
        assert r.converted_out.get(A, 0) == (stolen + clean if model == "poison" and clean else stolen)
        assert r.converted_in.get(B, 0) == expect
        if model != "poison":
            conserved(r)
