"""Swaps and a bridge hop on real nodes: tiny Solidity contracts on anvil that emit the
real Uniswap V2 events and the heist-lab ``Locked`` event, payouts on Bitcoin regtest,
both ingested through the ordinary RPC ingest, then decoded and matched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chainsleuth.flows.conversions import (
    ConversionEdge,
    bridge_edges,
    decode_conversions,
    load_swaps,
    match_bridges,
    swap_conversion_edges,
)
from chainsleuth.ingest.bitcoin_rpc import ingest_bitcoin_rpc
from chainsleuth.ingest.ethereum_rpc import ingest_ethereum_rpc
from chainsleuth.store import Ledger
from chainsleuth.tags import import_tags
from nodes_bitcoin import BitcoinNode
from nodes_ethereum import AnvilNode

pytestmark = pytest.mark.node

E18 = 10**18
LOCKED = "0x6cc5b4132852c3b3dd8423c5e97c4ea0f7123ff59f5b90e8022d744f3b3a6867"


def send(node: AnvilNode, sender: str, to: str, contract: str, sig: str, *args: Any,
         value: int = 0) -> str:
    tx = node.tx(sender, to, value, node.calldata(contract, sig, *args))
    assert int(node.receipt(tx)["status"], 16) == 1, f"{contract}.{sig} reverted"
    return tx


def lock_calldata(node: AnvilNode, btc_address: str) -> str:
    raw = btc_address.encode()
    padded = raw.hex() + "00" * (-len(raw) % 32)
    return ("0x" + node.contracts["MiniBridge"].methods["lock(string)"]
            + format(0x20, "064x") + format(len(raw), "064x") + padded)


def build_dex(node: AnvilNode) -> dict[str, Any]:
    lp, trader = node.accounts[0], node.accounts[1]
    x, y, z = (node.deploy("FlowToken", 10**30) for _ in range(3))
    factory = node.deploy("MiniV2Factory")
    receipt = node.receipt(send(node, lp, factory, "MiniV2Factory", "createPair(address,address)", x, y))
    pair_xy = "0x" + receipt["logs"][-1]["data"][2 + 24 : 2 + 64]  # PairCreated's `pair` word
    pair_yz = node.deploy("MiniV2Pair", y, z)  # no factory: tokens come from Transfer logs
    router = node.deploy("MiniRouter")
    for pair, tokens in ((pair_xy, (x, y)), (pair_yz, (y, z))):
        for t in tokens:
            send(node, lp, t, "FlowToken", "transfer(address,uint256)", pair, 10**6 * E18)
        send(node, lp, pair, "MiniV2Pair", "sync()")
    send(node, lp, x, "FlowToken", "transfer(address,uint256)", trader, 10 * E18)
    send(node, lp, y, "FlowToken", "transfer(address,uint256)", trader, 10 * E18)
    x_is_0 = x < y
    # direct swaps on the factory pair, both directions; the input is sent in a tx of its own,
    # so only the registry knows the tokens
    send(node, trader, x, "FlowToken", "transfer(address,uint256)", pair_xy, 2 * E18)
    fwd = send(node, trader, pair_xy, "MiniV2Pair", "swap(uint256,uint256,address)",
               *((0, 3 * E18) if x_is_0 else (3 * E18, 0)), trader)
    send(node, trader, y, "FlowToken", "transfer(address,uint256)", pair_xy, 5 * E18)
    back = send(node, trader, pair_xy, "MiniV2Pair", "swap(uint256,uint256,address)",
                *((4 * E18, 0) if x_is_0 else (0, 4 * E18)), trader)
    # two hops through the router in one transaction: X -> Y (pair_xy) -> Z (pair_yz)
    send(node, trader, x, "FlowToken", "approve(address,uint256)", router, E18)
    hop = send(node, trader, router, "MiniRouter",
               "swap2(address,uint256,address,uint256,address,uint256,address)",
               x, E18, pair_xy, 1_999_999_999_999_999_999, pair_yz, 7_777_777, trader)
    return {"x": x, "y": y, "z": z, "pair_xy": pair_xy, "pair_yz": pair_yz, "router": router,
            "trader": trader, "fwd": fwd, "back": back, "hop": hop}


def test_swaps_from_anvil_decode_exactly(anvil_fresh: AnvilNode, tmp_path: Path) -> None:
    s = build_dex(anvil_fresh)
    with Ledger(tmp_path / "l.duckdb") as led:
        ingest_ethereum_rpc(led, anvil_fresh.rpc_url, chain="anvil", workers=2)
        res = decode_conversions(led, "anvil")
        assert (res.swaps, res.pools, res.unresolved) == (4, 1, 0)
        got = [(r["transaction_hash"], r["pool"], r["sender"], r["trader"], r["recipient"], r["token_in"],
                r["amount_in"], r["token_out"], r["amount_out"], r["tokens_from"])
               for r in load_swaps(led, "anvil")]
        t, x, y, z, xy, yz, router = (s[k] for k in ("trader", "x", "y", "z", "pair_xy", "pair_yz", "router"))
        assert got == [
            (s["fwd"], xy, t, t, t, x, 2 * E18, y, 3 * E18, "factory"),
            (s["back"], xy, t, t, t, y, 5 * E18, x, 4 * E18, "factory"),
            (s["hop"], xy, router, t, yz, x, E18, y, 1_999_999_999_999_999_999, "factory"),
            (s["hop"], yz, router, xy, t, y, 1_999_999_999_999_999_999, z, 7_777_777, "transfers"),
        ]
        edges = list(swap_conversion_edges(load_swaps(led, "anvil")))
        assert edges[2:] == [ConversionEdge(s["hop"], t, x, E18, yz, y, 1_999_999_999_999_999_999),
                             ConversionEdge(s["hop"], yz, y, 1_999_999_999_999_999_999, t, z, 7_777_777)]
        # the token legs the conversions stand for are in the transfers view
        legs = led.con.execute(
            """SELECT from_address, to_address, asset, amount FROM anvil.transfers
               WHERE transaction_hash = ? AND kind = 'token' ORDER BY position""", [s["hop"]]).fetchall()
        assert legs == [(t, xy, x, E18), (xy, yz, y, 1_999_999_999_999_999_999), (yz, t, z, 7_777_777)]


def test_bridge_lock_matched_to_regtest_payout(anvil_fresh: AnvilNode, fresh_bitcoind: BitcoinNode,
                                               tmp_path: Path) -> None:
    eth, btc = anvil_fresh, fresh_bitcoind
    user = eth.accounts[2]
    bridge = eth.deploy("MiniBridge")
    btc.mine(101)
    r1, r2, r3 = (btc.rpc("getnewaddress", "", "bech32", wallet="w") for _ in range(3))
    locks = []
    for addr, wei in ((r1, 10**16), (r2, 2 * 10**16), (r3, 3 * 10**16)):
        tx = eth.tx(user, bridge, wei, lock_calldata(eth, addr))
        [log] = eth.receipt(tx)["logs"]
        assert log["topics"][0] == LOCKED
        locks.append((tx, log["topics"][2]))
    # payout 1: the relayer writes the depositId in an OP_RETURN (1% fee kept: 990000 sat)
    raw = btc.rpc("createrawtransaction", [], [{r1: "0.00990000"}, {"data": locks[0][1][2:]}])
    funded = btc.rpc("fundrawtransaction", raw, wallet="w")
    signed = btc.rpc("signrawtransactionwithwallet", funded["hex"], wallet="w")
    pay1 = btc.rpc("sendrawtransaction", signed["hex"])
    # payout 2: a plain payment to the named address, amount minus exactly the 1% allowance
    pay2 = btc.rpc("sendtoaddress", r2, "0.01980000", wallet="w")
    btc.mine(1)
    vout1 = next(o["n"] for o in btc.rpc("getrawtransaction", pay1, True)["vout"]
                 if o["scriptPubKey"].get("address") == r1)
    vout2 = next(o["n"] for o in btc.rpc("getrawtransaction", pay2, True)["vout"]
                 if o["scriptPubKey"].get("address") == r2)
    with Ledger(tmp_path / "l.duckdb") as led:
        ingest_ethereum_rpc(led, eth.rpc_url, chain="anvil", workers=2)
        ingest_bitcoin_rpc(led, btc.rpc_url, chain="bitcoin_regtest", workers=2)
        res = match_bridges(led, "anvil", "bitcoin_regtest", rate=(1, 10**10))
        assert res.untagged_contracts == [bridge]  # the tag store does not know it yet
        assert match_bridges(led, "anvil", "bitcoin_regtest", rate=(1, 10**10), require_tag=True).by_key == {}
        tag_file = tmp_path / "bridge_tags.csv"
        tag_file.write_text("address,currency,label,category,confidence\n"
                            f"{bridge},ETH,heist lab bridge,defi_bridge,ownership\n")
        import_tags(led, "csv", tag_file)
        for _ in range(2):  # idempotent
            res = match_bridges(led, "anvil", "bitcoin_regtest", rate=(1, 10**10), require_tag=True)
        assert res.untagged_contracts == []
        assert (res.matched, res.unmatched, res.by_key) == (
            2, 1, {"deposit_id": 1, "recipient_amount": 1, "unmatched": 1})
        rows = led.con.execute(
            """SELECT bridge, src_transaction_hash, src_address, src_asset, src_amount, src_recipient,
                      dst_transaction_hash, dst_position, dst_address, dst_asset, dst_amount,
                      match_key, confidence
               FROM flows.bridge_transfers ORDER BY src_amount""").fetchall()
        assert rows == [
            ("heist_lab_btc", locks[0][0], user, "ETH", 10**16, r1, pay1, vout1, r1, "BTC", 990_000,
             f"deposit_id:{locks[0][1]}", 1.0),
            ("heist_lab_btc", locks[1][0], user, "ETH", 2 * 10**16, r2, pay2, vout2, r2, "BTC", 1_980_000,
             f"recipient_amount:{r2}", 0.8),
            ("heist_lab_btc", locks[2][0], user, "ETH", 3 * 10**16, r3, None, None, None, None, None,
             "unmatched", 0.0),
        ]
        # the coins the trace continues from on the Bitcoin side exist in the transfers view
        coins = [(e.dst_transaction_hash, e.dst_position) for e in bridge_edges(led, min_confidence=0.8)]
        assert sorted(coins) == sorted([(pay1, vout1), (pay2, vout2)])
        for tx, pos in coins:
            assert led.con.execute(
                """SELECT amount FROM bitcoin_regtest.transfers
                   WHERE kind = 'output' AND utxo_transaction_hash = ? AND utxo_index = ?""",
                [tx, pos]).fetchall() in ([(990_000,)], [(1_980_000,)])
