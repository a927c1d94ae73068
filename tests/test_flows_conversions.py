"""Swap and bridge decoding on hand-built logs with exact ABI hex (no node needed)."""

from __future__ import annotations

from typing import Any

import pytest

from chainsleuth.errors import ConfigError, StoreError
from chainsleuth.flows.conversions import (
    ConversionEdge,
    convert_amount,
    decode_conversions,
    decode_swaps,
    load_swaps,
    match_bridges,
    pools_from_logs,
    register_wrapped_native,
    swap_conversion_edges,
)
from chainsleuth.flows.decoders import BRIDGES
from chainsleuth.flows.decoders.base import EvmLog
from chainsleuth.flows.decoders.bridges import BridgeLeg, decode_locked, match_legs
from chainsleuth.store import Ledger

TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
V2_SWAP = "0xd78ad95fa46c994b6551d0da85fc275fe613ce37657fb8d5e3d130840159d822"
V2_SYNC = "0x1c411e9a96e071241c2f21f7726b17ae89e3cab4c78be50e062b03a9fffbbad1"
V3_SWAP = "0xc42079f94a6350d7e6235f29174924f928cc2ac818eb64fed8004e115fbcca67"
PAIR_CREATED = "0x0d3648bd0f6ba80134a33ba9275ac585d9d315f0ad8355cddefde31afa28d0e9"
POOL_CREATED = "0x783cca1c0412dd0d695e784568c96da2e9c22ff989357a2e8b1d9b2b4e6b7118"
LOCKED = "0x6cc5b4132852c3b3dd8423c5e97c4ea0f7123ff59f5b90e8022d744f3b3a6867"
DEPOSIT = "0xe1fffcc4923d04b559f4d29a8bfc6cda04eb5b0d3c460751c2402c5c5cc9109c"
WITHDRAWAL = "0x7fcf532c15f0a6db0bd6d0e038bea71d30d808c7d98cb3bf7268a95bf5081b65"

A, B, C = "0x" + "aa" * 20, "0x" + "bb" * 20, "0x" + "cc" * 20  # tokens, A < B < C
USER, ROUTER, OTHER = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20
PAIR_AB, PAIR_BC, POOL_AC = "0x" + "51" * 20, "0x" + "52" * 20, "0x" + "53" * 20
FACTORY = "0x" + "fa" * 20
TX = "0x" + "ab" * 32


def topic(addr: str) -> str:
    return "0x" + "00" * 12 + addr[2:]


def transfer(i: int, token: str, frm: str, to: str, value: int, tx: str = TX) -> EvmLog:
    return EvmLog(tx, i, 10, token, (TRANSFER, topic(frm), topic(to)), "0x" + format(value, "064x"))


def sync(i: int, pair: str, tx: str = TX) -> EvmLog:
    return EvmLog(tx, i, 10, pair, (V2_SYNC,), "0x" + "00" * 64)


def v2_swap(i: int, pair: str, sender: str, to: str, data: str, tx: str = TX) -> EvmLog:
    return EvmLog(tx, i, 10, pair, (V2_SWAP, topic(sender), topic(to)), data)


# Swap(sender, 1000, 0, 0, 1980, to): token0 in, token1 out (exact ABI hex)
V2_DATA_0_TO_1 = (
    "0x00000000000000000000000000000000000000000000000000000000000003e8"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000000007bc"
)
# Swap(sender, 0, 5000, 2475, 0, to): token1 in, token0 out
V2_DATA_1_TO_0 = (
    "0x0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000001388"
    "00000000000000000000000000000000000000000000000000000000000009ab"
    "0000000000000000000000000000000000000000000000000000000000000000"
)
# V3 Swap(sender, recipient, +1000, -1980, sqrtPriceX96, liquidity, tick=-5)
V3_DATA_0_TO_1 = (
    "0x00000000000000000000000000000000000000000000000000000000000003e8"
    "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff844"
    "0000000000000000000000000000000000000001000000000000000000000000"
    "0000000000000000000000000000000000000000000000000de0b6b3a7640000"
    "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffb"
)
# V3 Swap(sender, recipient, -7, +3, ...): token1 in, token0 out
V3_DATA_1_TO_0 = (
    "0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff9"
    "0000000000000000000000000000000000000000000000000000000000000003"
    "0000000000000000000000000000000000000001000000000000000000000000"
    "0000000000000000000000000000000000000000000000000de0b6b3a7640000"
    "0000000000000000000000000000000000000000000000000000000000000001"
)


def fields(sw: Any) -> tuple[Any, ...]:
    return (sw.pool, sw.sender, sw.trader, sw.recipient, sw.token_in, sw.amount_in,
            sw.token_out, sw.amount_out, sw.protocol, sw.tokens_from)


def test_v2_token0_to_token1_from_transfer_logs() -> None:
    logs = [transfer(0, A, USER, PAIR_AB, 1000), transfer(1, B, PAIR_AB, USER, 1980),
            sync(2, PAIR_AB), v2_swap(3, PAIR_AB, ROUTER, USER, V2_DATA_0_TO_1)]
    [sw] = decode_swaps("eth", logs)
    assert fields(sw) == (PAIR_AB, ROUTER, USER, USER, A, 1000, B, 1980, "uniswap_v2", "transfers")


def test_v2_token1_to_token0() -> None:
    logs = [transfer(4, B, USER, PAIR_AB, 5000), transfer(5, A, PAIR_AB, OTHER, 2475),
            sync(6, PAIR_AB), v2_swap(7, PAIR_AB, ROUTER, OTHER, V2_DATA_1_TO_0)]
    [sw] = decode_swaps("eth", logs)
    assert fields(sw) == (PAIR_AB, ROUTER, USER, OTHER, B, 5000, A, 2475, "uniswap_v2", "transfers")


def test_v3_both_directions_signed_amounts() -> None:
    v3 = lambda i, data, to: EvmLog(TX, i, 10, POOL_AC, (V3_SWAP, topic(ROUTER), topic(to)), data)  # noqa: E731
    # the pool pays out first, then takes the input in the callback, then emits Swap
    logs = [transfer(0, C, POOL_AC, USER, 1980), transfer(1, A, USER, POOL_AC, 1000),
            v3(2, V3_DATA_0_TO_1, USER),
            transfer(3, A, POOL_AC, OTHER, 7), transfer(4, C, OTHER, POOL_AC, 3),
            v3(5, V3_DATA_1_TO_0, OTHER)]
    s1, s2 = decode_swaps("eth", logs)
    assert fields(s1) == (POOL_AC, ROUTER, USER, USER, A, 1000, C, 1980, "uniswap_v3", "transfers")
    assert fields(s2) == (POOL_AC, ROUTER, OTHER, OTHER, C, 3, A, 7, "uniswap_v3", "transfers")


def test_multi_hop_v2_router_swap_chains_edges() -> None:
    # A -> B on PAIR_AB (to = PAIR_BC), B -> C on PAIR_BC (to = USER); B < C so B is token0
    logs = [transfer(0, A, USER, PAIR_AB, 1000),
            transfer(1, B, PAIR_AB, PAIR_BC, 1980), sync(2, PAIR_AB),
            v2_swap(3, PAIR_AB, ROUTER, PAIR_BC, V2_DATA_0_TO_1),
            transfer(4, C, PAIR_BC, USER, 2475), sync(5, PAIR_BC),
            v2_swap(6, PAIR_BC, ROUTER, USER,
                    "0x" + format(1980, "064x") + "00" * 64 + format(2475, "064x"))]
    s1, s2 = decode_swaps("eth", logs)
    assert fields(s1) == (PAIR_AB, ROUTER, USER, PAIR_BC, A, 1000, B, 1980, "uniswap_v2", "transfers")
    # the second pair was paid by the first: trader is the payer as the logs say
    assert fields(s2) == (PAIR_BC, ROUTER, PAIR_AB, USER, B, 1980, C, 2475, "uniswap_v2", "transfers")
    edges = list(swap_conversion_edges([s1, s2]))
    assert edges == [ConversionEdge(TX, USER, A, 1000, PAIR_BC, B, 1980),
                     ConversionEdge(TX, PAIR_BC, B, 1980, USER, C, 2475)]
    # taint of 400 A becomes 792 B, then 990 C (floor, exact ints)
    assert convert_amount(400, 1000, 1980) == 792
    assert convert_amount(792, 1980, 2475) == 990
    assert convert_amount(5000, 1000, 1980) == 1980  # never more than the swap paid out


def test_multi_hop_v3_router_swap_chains_through_the_router() -> None:
    pool_ab, pool_bc = "0x" + "61" * 20, "0x" + "62" * 20

    def v3(i: int, pool: str, to: str, a0: int, a1: int) -> EvmLog:
        words = [a0 % 2**256, a1 % 2**256, 2**96, 10**18, 0]
        return EvmLog(TX, i, 10, pool, (V3_SWAP, topic(ROUTER), topic(to)),
                      "0x" + "".join(format(w, "064x") for w in words))

    # SwapRouter exactInput: hop 1 pays the router, hop 2 is paid by the router
    logs = [transfer(0, B, pool_ab, ROUTER, 1980), transfer(1, A, USER, pool_ab, 1000),
            v3(2, pool_ab, ROUTER, 1000, -1980),
            transfer(3, C, pool_bc, USER, 2475), transfer(4, B, ROUTER, pool_bc, 1980),
            v3(5, pool_bc, USER, 1980, -2475)]
    s1, s2 = decode_swaps("eth", logs)
    assert fields(s1) == (pool_ab, ROUTER, USER, ROUTER, A, 1000, B, 1980, "uniswap_v3", "transfers")
    assert fields(s2) == (pool_bc, ROUTER, ROUTER, USER, B, 1980, C, 2475, "uniswap_v3", "transfers")
    assert list(swap_conversion_edges([s1, s2])) == [
        ConversionEdge(TX, USER, A, 1000, ROUTER, B, 1980),
        ConversionEdge(TX, ROUTER, B, 1980, USER, C, 2475)]


def test_same_pair_twice_in_one_tx_uses_each_transfer_once() -> None:
    logs = [transfer(0, A, USER, PAIR_AB, 1000), transfer(1, B, PAIR_AB, USER, 1980),
            v2_swap(2, PAIR_AB, ROUTER, USER, V2_DATA_0_TO_1),
            transfer(3, A, OTHER, PAIR_AB, 1000), transfer(4, B, PAIR_AB, OTHER, 1980),
            v2_swap(5, PAIR_AB, ROUTER, OTHER, V2_DATA_0_TO_1)]
    s1, s2 = decode_swaps("eth", logs)
    assert (s1.trader, s1.recipient, s2.trader, s2.recipient) == (USER, USER, OTHER, OTHER)


def test_factory_registry_resolves_without_transfers() -> None:
    created = EvmLog("0x" + "01" * 32, 0, 1, FACTORY, (PAIR_CREATED, topic(A), topic(B)),
                     "0x" + topic(PAIR_AB)[2:] + format(1, "064x"))
    pools = pools_from_logs([created])
    assert pools[PAIR_AB].token0 == A and pools[PAIR_AB].token1 == B
    [sw] = decode_swaps("eth", [v2_swap(3, PAIR_AB, ROUTER, USER, V2_DATA_1_TO_0)], pools)
    assert fields(sw) == (PAIR_AB, ROUTER, ROUTER, USER, B, 5000, A, 2475, "uniswap_v2", "factory")
    v3_created = EvmLog("0x" + "02" * 32, 0, 1, FACTORY,
                        (POOL_CREATED, topic(A), topic(C), "0x" + format(3000, "064x")),
                        "0x" + format(60, "064x") + topic(POOL_AC)[2:])
    p3 = pools_from_logs([v3_created])[POOL_AC]
    assert (p3.token0, p3.token1, p3.fee, p3.protocol) == (A, C, 3000, "uniswap_v3")


def test_unresolved_and_non_conversions() -> None:
    [sw] = decode_swaps("eth", [v2_swap(3, PAIR_AB, ROUTER, USER, V2_DATA_0_TO_1)])
    assert (sw.token_in, sw.token_out, sw.tokens_from, sw.amount_in) == (None, None, "unresolved", 1000)
    assert list(swap_conversion_edges([sw])) == []
    # a flash loan repaid in the same token converts nothing: no row
    flash = "0x" + format(100, "064x") + "00" * 32 + format(100, "064x") + "00" * 32
    assert decode_swaps("eth", [v2_swap(1, PAIR_AB, ROUTER, USER, flash)]) == []
    # wrong shape (a fork with a different Swap event) is not decoded as V2
    assert decode_swaps("eth", [v2_swap(1, PAIR_AB, ROUTER, USER, "0x" + "00" * 96)]) == []


def eth_chain(ledger: Ledger, logs: list[EvmLog], chain: str = "eth_test") -> None:
    ledger.ensure_chain(chain, "ethereum")
    blocks = sorted({lg.block_number for lg in logs})
    ledger.write_batch(chain, {
        "blocks": {"number": blocks, "hash": [f"0x{n:064x}" for n in blocks],
                   "timestamp": [1_700_000_000 + 12 * n for n in blocks]},
        "logs": {"log_index": [lg.log_index for lg in logs],
                 "transaction_hash": [lg.transaction_hash for lg in logs],
                 "transaction_index": [0 for _ in logs],
                 "block_number": [lg.block_number for lg in logs],
                 "address": [lg.address for lg in logs], "data": [lg.data for lg in logs],
                 "topics": [list(lg.topics) for lg in logs]},
    }, (min(blocks), max(blocks)))


def test_decode_conversions_writes_exact_rows_with_overflow(ledger: Ledger) -> None:
    big_in, big_out = 2**200 + 7, 2**130 + 1  # beyond HUGEINT: kept as text
    data = "0x" + format(big_in, "064x") + "00" * 64 + format(big_out, "064x")
    created = EvmLog("0x" + "01" * 32, 0, 1, FACTORY, (PAIR_CREATED, topic(A), topic(B)),
                     "0x" + topic(PAIR_AB)[2:] + format(1, "064x"))
    logs = [created, transfer(0, A, USER, PAIR_AB, 1000), transfer(1, B, PAIR_AB, USER, 1980),
            sync(2, PAIR_AB), v2_swap(3, PAIR_AB, ROUTER, USER, V2_DATA_0_TO_1),
            v2_swap(0, PAIR_AB, ROUTER, OTHER, data, tx="0x" + "cd" * 32)]
    eth_chain(ledger, logs)
    for _ in range(2):  # idempotent
        res = decode_conversions(ledger, "eth_test")
        assert (res.swaps, res.pools, res.unresolved, res.overflow) == (2, 1, 0, 2)
    rows = ledger.con.execute(
        """SELECT transaction_hash, amount_in, amount_in_overflow, amount_out, amount_out_overflow,
                  token_in, token_out, epoch(block_timestamp)::BIGINT, tokens_from
           FROM flows.swaps ORDER BY transaction_hash""").fetchall()
    assert rows == [(TX, 1000, None, 1980, None, A, B, 1_700_000_120, "factory"),
                    ("0x" + "cd" * 32, None, str(big_in), None, str(big_out), A, B, 1_700_000_120,
                     "factory")]
    loaded = load_swaps(ledger, "eth_test")
    assert sorted((r["amount_in"], r["amount_out"]) for r in loaded) == [(1000, 1980), (big_in, big_out)]
    assert sorted(e.amount_out for e in swap_conversion_edges(loaded)) == [1980, big_out]


def test_wrapped_native_needs_registration(ledger: Ledger) -> None:
    weth = "0x" + "ee" * 20
    logs = [EvmLog(TX, 0, 10, weth, (DEPOSIT, topic(ROUTER)), "0x" + format(10**18, "064x")),
            EvmLog(TX, 1, 10, weth, (WITHDRAWAL, topic(ROUTER)), "0x" + format(5, "064x"))]
    eth_chain(ledger, logs)
    assert decode_conversions(ledger, "eth_test").swaps == 0  # an unregistered Deposit is anything
    register_wrapped_native(ledger, "eth_test", weth)
    decode_conversions(ledger, "eth_test")
    got = [(r["token_in"], r["amount_in"], r["token_out"], r["amount_out"], r["trader"])
           for r in load_swaps(ledger, "eth_test")]
    assert got == [("ETH", 10**18, weth, 10**18, ROUTER), (weth, 5, "ETH", 5, ROUTER)]


def test_bad_input_is_a_clear_error(ledger: Ledger) -> None:
    with pytest.raises(StoreError, match="unknown chain"):
        decode_conversions(ledger, "nope")
    ledger.ensure_chain("btc_test", "bitcoin")
    with pytest.raises(ConfigError, match="not an account"):
        decode_conversions(ledger, "btc_test")
    ledger.ensure_chain("eth_test", "ethereum")
    with pytest.raises(ConfigError, match="unknown bridge"):
        match_bridges(ledger, "eth_test", "btc_test", bridge="wormhole")
    with pytest.raises(ConfigError, match="reads a bitcoin chain there, but 'eth_test' is ethereum"):
        match_bridges(ledger, "eth_test", "eth_test")


# -- bridges -------------------------------------------------------------------------------
DEPOSIT_ID = "0x" + "d1" * 32
BTC_ADDR = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"


def test_decode_locked_exact_abi() -> None:
    # Locked(from, depositId, 123456789, "bcrt1q...") : amount, offset 0x40, length 44, padded bytes
    text = BTC_ADDR.encode().hex()
    data = ("0x" + format(123456789, "064x") + format(0x40, "064x") + format(len(BTC_ADDR), "064x")
            + text + "00" * (32 - len(BTC_ADDR) % 32))
    log = EvmLog(TX, 4, 10, "0x" + "b0" * 20, (LOCKED, topic(USER), DEPOSIT_ID), data, 0, 1000)
    leg = decode_locked("anvil", "ETH", log)
    assert leg == BridgeLeg("anvil", TX, 4, USER, "ETH", 123456789, 1000, DEPOSIT_ID, BTC_ADDR)


def leg(tx: str, pos: int, addr: str | None, amount: int, ts: int, dep: str | None = None,
        recipient: str | None = None, chain: str = "btc") -> BridgeLeg:
    return BridgeLeg(chain, tx, pos, addr, "BTC", amount, ts, dep, recipient)


def test_match_legs_rules() -> None:
    d = BRIDGES["heist_lab_btc"]  # fee up to 1%, window 24 h, skew 2 h, rate 1/1
    src = [leg("s1", 0, USER, 100_000, 1000, DEPOSIT_ID, "r1", "eth"),  # id match
           leg("s2", 0, USER, 200_000, 2000, "0x" + "d2" * 32, "r2", "eth"),  # by address+amount
           leg("s3", 0, USER, 300_000, 3000, None, "r3", "eth"),  # fee too high: unmatched
           leg("s4", 0, USER, 400_000, 4000, None, "r4", "eth"),  # too late: unmatched
           leg("s5", 0, USER, 500_000, 5000, None, "r5", "eth")]  # two candidates: 0.6
    dst = [leg("d1", 0, "change", 5_000_000, 1500, DEPOSIT_ID), leg("d1", 1, "r1", 99_500, 1500, DEPOSIT_ID),
           leg("d2", 0, "r2", 198_000, 2100), leg("d3", 0, "r3", 296_999, 3100),
           leg("d4", 0, "r4", 400_000, 4000 + 24 * 3600 + 1),
           leg("d5", 0, "r5", 499_000, 5100), leg("d6", 0, "r5", 499_500, 5200)]
    got = [(m.src.transaction_hash, m.dst and (m.dst.transaction_hash, m.dst.position), m.match_key,
            m.confidence) for m in match_legs(src, dst, d)]
    assert got == [("s1", ("d1", 1), f"deposit_id:{DEPOSIT_ID}", 1.0),
                   ("s2", ("d2", 0), "recipient_amount:r2", 0.8),
                   ("s3", None, "unmatched", 0.0),
                   ("s4", None, "unmatched", 0.0),
                   ("s5", ("d5", 0), "recipient_amount:r5", 0.6)]
    # with a rate (1 BTC per ETH: 1e10 wei per satoshi) the expected payout is scaled
    wei = leg("s6", 0, USER, 10**15, 1000, None, "r6", "eth")
    rated = d.with_terms(rate=(1, 10**10))
    [m] = match_legs([wei], [leg("d7", 0, "r6", 99_900, 1200)], rated)
    assert (m.dst is not None, m.confidence) == (True, 0.8)


def test_cli_decode_and_bad_rate(tmp_path: Any) -> None:
    import subprocess
    import sys

    db = tmp_path / "l.duckdb"
    with Ledger(db) as led:
        eth_chain(led, [transfer(0, A, USER, PAIR_AB, 1000), transfer(1, B, PAIR_AB, USER, 1980),
                        sync(2, PAIR_AB), v2_swap(3, PAIR_AB, ROUTER, USER, V2_DATA_0_TO_1)])

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "chainsleuth.cli.main", "--db", str(db), "--quiet",
                               *args], capture_output=True, text=True, timeout=120,
                              env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})

    r = run("conversions", "decode", "--chain", "eth_test")
    assert r.returncode == 0, r.stderr
    assert "1 swaps (uniswap_v2 1); 0 pools known; 0 with unresolved tokens; 0 beyond HUGEINT" in r.stdout
    r = run("conversions", "bridges", "--src", "eth_test", "--dst", "eth_test", "--rate", "x/y")
    assert r.returncode == 2 and "--rate must be N or N/D" in r.stderr and "Traceback" not in r.stderr
