"""Swap decoding on real mainnet logs (ethereum-etl's stream test blocks 17173049-50)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from chainsleuth.flows.conversions import decode_conversions, load_swaps, swap_conversion_edges
from chainsleuth.ingest.etl_files import ingest_etl_files
from chainsleuth.store import Ledger

pytestmark = pytest.mark.data

BLOCKS = "ethereum_etl_test_resources/test_stream/blocks_17173049_17173050"
WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"


def test_mainnet_swaps_decode_exactly(shared_data: Path, ledger: Ledger) -> None:
    folder = shared_data / BLOCKS
    if not folder.exists():
        pytest.skip(f"{folder} not in the shared data")
    ingest_etl_files(ledger, folder, chain="eth_main", family="ethereum")
    res = decode_conversions(ledger, "eth_main")
    # 69 V2-shaped and 10 V3 Swap logs in these blocks (grep of topic0 in expected_logs.json)
    assert res.by_protocol == {"uniswap_v2": 69, "uniswap_v3": 10}
    assert (res.unresolved, res.overflow, res.pools) == (0, 0, 0)  # no factory logs: all from Transfers
    swaps = {(s["transaction_hash"], s["log_index"]): s for s in load_swaps(ledger, "eth_main")}
    # V2, log 3 of 0xeb107a40...: data words (0, 0x61ec933f00000000, 0x1e5492e000000000000000000, 0);
    # WETH (token1) in from 0x6b75..., token 0x1ce2... out to the same address
    v2 = swaps[("0xeb107a40ba73a50c79a9f2026e902d758d1c5e5e211f7a7db1b294f88f118dd0", 3)]
    assert (v2["pool"], v2["trader"], v2["recipient"], v2["token_in"], v2["amount_in"], v2["token_out"],
            v2["amount_out"]) == (
        "0x7054b0f980a7eb5b3a6b3446f3c947d80162775c", "0x6b75d8af000000e20b7a7ddf000ba900b4009a80",
        "0x6b75d8af000000e20b7a7ddf000ba900b4009a80", WETH, 0x61EC933F00000000,
        "0x1ce270557c1f68cfb577b856766310bf8b47fd9c", 0x1E5492E000000000000000000)
    # V3, log 93 of 0xffe1e582...: amount0 = -(2**256 - 0xff..40c7a426a316ae550dfb), amount1 = +0x0853a0d2313c0000
    v3 = swaps[("0xffe1e582dd45870c55b4894e19e366a3979eef27d933117630547bf1c26dc038", 93)]
    amount0 = int("ffffffffffffffffffffffffffffffffffffffffffff40c7a426a316ae550dfb", 16) - 2**256
    assert (v3["protocol"], v3["sender"], v3["recipient"], v3["amount_in"], v3["amount_out"],
            v3["token_in"]) == (
        "uniswap_v3", "0x68b3465833fb72a70ecdf485e0e4c7bd8665fc45",
        "0xc89c92526f5b49821bdd137d375a4032a317212f", 0x0853A0D2313C0000, -amount0, WETH)
    # Uniswap factories sort token0 < token1: every resolution must agree with the event's side
    for s in swaps.values():
        assert s["token_in"] != s["token_out"]
    # fee-on-transfer tokens: the pool sent amount_out but the Transfer log shows less
    # (0xd74fe1a1...: 402346504245662 sent, 382229179033379 logged); tokens still resolve
    fot = swaps[("0xd74fe1a1c131cd84069cf69bb1ac55860349239a2617b869aa99c9a72809e3f1", 18)]
    assert (fot["token_in"], fot["token_out"], fot["amount_out"]) == (
        WETH, "0x83946345b86ee5ccc046de8c2ae4fcf1bad92317", 402346504245662)
    assert len(list(swap_conversion_edges(swaps.values()))) == 79
    assert Counter(s["tokens_from"] for s in swaps.values()) == {"transfers": 79}
