"""Exposure in USD on small hand-built ledgers, priced with the real daily series.

Prices read off the files: BTCUSD_1d_candles_full.csv close 2023-09-04 25816.13,
2024-03-11 72110.98, last row 2025-09-24 113700.11 (nothing before 2011-08-18);
eth-usd-max.csv close_price 2025-02-21 2741.593363, last row 2026-01-05 3139.057042,
no row for 2015-08-09."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chainsleuth.cli.main import app
from chainsleuth.entities.synthetic import Tx, write_utxo_blocks
from chainsleuth.flows.exposure import build_exposure
from chainsleuth.prices import DEFAULT_FILES, import_prices, usd_value
from chainsleuth.prices.exposure_usd import exposure_usd_of
from chainsleuth.store import Ledger
from chainsleuth.tags import import_tags

BTC_SOURCE = "mathaszip/BTCprice daily close (Bitstamp/Coinbase)"


def _ts(y: int, m: int, d: int) -> int:
    return int(datetime(y, m, d, tzinfo=UTC).timestamp())


def _tags(led: Ledger, tmp_path: Path, rows: list[tuple[str, str, str]]) -> None:
    f = tmp_path / "tags.csv"
    f.write_text("address,currency,label,category,confidence\n"
                 + "".join(f"{a},{c},{a} label,{cat},forensic\n" for a, c, cat in rows))  # fmt: skip
    import_tags(led, "csv", f)


def _row(doc: dict[str, Any], direction: str, category: str, asset: str | None = None) -> dict[str, Any]:
    (r,) = [r for r in doc["exposure"] if r["direction"] == direction and r["category"] == category
            and (asset is None or r["asset"] == asset)]  # fmt: skip
    return r


@pytest.fixture
def btc(tmp_path: Path, shared_data: Path) -> Path:
    """2010-06-01 (no BTC price): thief gets 7_000 and pays dave 7_000.
    2023-09-04: thief gets 100_000, alice 300_000; t1 spends both -> bob 200_000, carol 199_000.
    2024-03-11: thief gets 50_000 and pays bob 50_000; carol pays ex 150_000 and carol2 49_000."""
    db = tmp_path / "x.duckdb"
    with Ledger(db) as led:
        for f in DEFAULT_FILES:
            import_prices(led, shared_data / f)
        # block time = block_time + 600 * height: each group starts at midnight UTC of its day
        write_utxo_blocks(led, "btc", [[Tx("c0", [], [("thief", 7_000)])], [Tx("t0", [("c0", 0)], [("dave", 7_000)])]],
                          block_time=_ts(2010, 6, 1))  # fmt: skip
        write_utxo_blocks(led, "btc", [
            [Tx("c1", [], [("thief", 100_000)]), Tx("c2", [], [("alice", 300_000)])],
            [Tx("t1", [("c1", 0), ("c2", 0)], [("bob", 200_000), ("carol", 199_000)])],
        ], first_height=2, block_time=_ts(2023, 9, 4) - 1200)  # fmt: skip
        write_utxo_blocks(led, "btc", [
            [Tx("c3", [], [("thief", 50_000)])],
            [Tx("t2", [("c3", 0)], [("bob", 50_000)]), Tx("t3", [("t1", 1)], [("ex", 150_000), ("carol2", 49_000)])],
        ], first_height=4, block_time=_ts(2024, 3, 11) - 2400)  # fmt: skip
        _tags(led, tmp_path, [("thief", "BTC", "service_hack"), ("ex", "BTC", "exchange")])
        build_exposure(led, "btc", hops=4)
    return db


def test_utxo_direct_at_the_time_and_today(btc: Path) -> None:
    with Ledger(btc) as led:
        bob = exposure_usd_of(led, "btc", "bob")
        carol = exposure_usd_of(led, "btc", "carol")
        dave = exposure_usd_of(led, "btc", "dave")
    r = _row(bob, "in", "stolen_funds")
    # t1: floor(200_000 * 100_000 / 400_000) = 50_000 on 2023-09-04; t2: 50_000 on 2024-03-11
    assert r["direct_value"] == 100_000
    u = r["usd"]
    # 0.0005 BTC * 25816.13 + 0.0005 BTC * 72110.98 = 12.908065 + 36.05549
    assert u["direct_usd_at_time"] == "48.963555"
    assert (u["flag_at_time"], u["sources_at_time"], u["first_day"], u["last_day"], u["days"]) == (
        "daily", [BTC_SOURCE], "2023-09-04", "2024-03-11", 2)
    # today: 0.001 BTC * 113700.11; bob received 250_000 in all: 0.0025 * 113700.11
    assert (u["direct_usd_latest"], u["total_usd_latest"], u["indirect_usd_latest"]) == ("113.70011", "284.250275", "0")
    assert (u["price_latest"], u["price_day_latest"], u["source_latest"], u["flag_latest"]) == (
        "113700.11", "2025-09-24", BTC_SOURCE, "daily")
    assert (u["indirect_usd_at_time"], u["indirect_at_time"]) == (None, "not_defined")
    [tot] = bob["totals"]
    assert (tot["usd"]["total_in_usd_latest"], tot["usd"]["total_out_usd_latest"]) == ("284.250275", "0")
    # carol: in from t1, floor(199_000 * 100_000 / 400_000) = 49_750 on 2023-09-04 -> 12.843524675;
    # out to ex in t3: floor(199_000 * 150_000 / 199_000) = 150_000 on 2024-03-11 -> 108.16647, today 170.550165
    assert _row(carol, "in", "stolen_funds")["usd"]["direct_usd_at_time"] == "12.843524675"
    out = _row(carol, "out", "exchange")
    assert (out["direct_value"], out["usd"]["direct_usd_at_time"], out["usd"]["direct_usd_latest"]) == (
        150_000, "108.16647", "170.550165")
    # dave's 7_000 came on 2010-06-01, before the series starts: no price, never 0
    d = _row(dave, "in", "stolen_funds")["usd"]
    assert (d["direct_usd_at_time"], d["flag_at_time"], d["unpriced_value"], d["unpriced_days"]) == (
        None, "no_price", "7000", ["2010-06-01"])
    assert d["direct_usd_latest"] == "7.9590077"  # 0.00007 * 113700.11
    json.dumps(bob)


def test_ledger_changed_since_build_gives_no_figure(btc: Path) -> None:
    with Ledger(btc) as led:
        write_utxo_blocks(led, "btc", [[Tx("c4", [], [("thief", 1_000)])], [Tx("t4", [("c4", 0)], [("bob", 1_000)])]],
                          first_height=6, block_time=_ts(2024, 3, 12) - 3600)  # fmt: skip
        u = _row(exposure_usd_of(led, "btc", "bob"), "in", "stolen_funds")["usd"]
    # the stored direct_value (100_000) no longer equals the transfers (101_000): rebuild first
    assert (u["direct_usd_at_time"], u["flag_at_time"]) == (None, "ledger_changed")
    assert u["direct_usd_latest"] == "113.70011"  # today's value of the stored figure is still given


A, Z, M, U = (f"0x{c * 40}" for c in "a2db")  # sanctioned, plain, mixer, the address looked at
T = "0x" + "ee" * 20  # a token with no price anywhere
USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"


def test_account_chain_tokens_and_gaps(tmp_path: Path, shared_data: Path) -> None:
    """b1 (2025-02-21): A->U 1 ETH, Z->U 3 ETH, A->U 700 T, A->U 2.5 USDC.
    b2 (2015-08-09, a day the ETH series lacks): M->U 0.5 ETH."""
    with Ledger(tmp_path / "e.duckdb") as led:
        for f in DEFAULT_FILES:
            import_prices(led, shared_data / f)
        led.ensure_chain("eth", "ethereum", network="anvil")
        blocks = {1: (_ts(2025, 2, 21), [(0, A, U, 10**18), (1, Z, U, 3 * 10**18), (2, A, T, 0), (3, A, USDC, 0)]),
                  2: (_ts(2015, 8, 9), [(0, M, U, 5 * 10**17)])}  # fmt: skip
        for b, (ts, rows) in blocks.items():
            tables: dict[str, dict[str, list[Any]]] = {
                "blocks": {"number": [b], "hash": [f"b{b}"], "timestamp": [ts]},
                "transactions": {
                    "hash": [f"t{b}{i}" for i, *_ in rows], "block_number": [b] * len(rows),
                    "block_hash": [f"b{b}"] * len(rows), "transaction_index": [i for i, *_ in rows],
                    "from_address": [f for _, f, _, _ in rows], "to_address": [t for _, _, t, _ in rows],
                    "value": [v for *_, v in rows], "block_timestamp": [ts] * len(rows)},
            }  # fmt: skip
            if b == 1:
                tables["token_transfers"] = {
                    "token_address": [T, USDC], "from_address": [A, A], "to_address": [U, U],
                    "value": [700, 2_500_000], "transaction_hash": ["t12", "t13"], "log_index": [0, 0],
                    "block_number": [1, 1], "block_hash": ["b1", "b1"], "block_timestamp": [ts, ts]}  # fmt: skip
            led.write_batch("eth", tables, (b, b))
        _tags(led, tmp_path, [(A, "ETH", "sanction"), (M, "ETH", "mixing_service")])
        build_exposure(led, "eth", hops=4)
        doc = exposure_usd_of(led, "eth", U)
    eth = _row(doc, "in", "sanctions", "ETH")["usd"]
    assert (eth["direct_usd_at_time"], eth["direct_usd_latest"]) == ("2741.593363", "3139.057042")
    assert (eth["price_day_latest"], eth["flag_at_time"]) == ("2026-01-05", "daily")
    mix = _row(doc, "in", "mixer", "ETH")
    assert mix["direct_value"] == 5 * 10**17
    assert (mix["usd"]["direct_usd_at_time"], mix["usd"]["flag_at_time"], mix["usd"]["unpriced_days"]) == (
        None, "no_price", ["2015-08-09"])
    assert mix["usd"]["direct_usd_latest"] == "1569.528521"  # 0.5 * 3139.057042
    usdc = _row(doc, "in", "sanctions", USDC)["usd"]
    assert (usdc["direct_usd_at_time"], usdc["direct_usd_latest"], usdc["flag_at_time"]) == ("2.5", "2.5", "stablecoin_par")
    tok = _row(doc, "in", "sanctions", T)["usd"]
    assert (tok["direct_usd_at_time"], tok["direct_usd_latest"], tok["flag_latest"], tok["flag_at_time"]) == (
        None, None, "no_price", "no_price")


def test_cli_exposure_show_usd(btc: Path) -> None:
    run = CliRunner()
    out = run.invoke(app, ["--db", str(btc), "exposure", "show", "bob", "--usd"])
    assert out.exit_code == 0, out.output
    assert "48.963555" in out.output and "113.70011" in out.output and "2025-09-24" in out.output
    out = run.invoke(app, ["--db", str(btc), "exposure", "show", "dave", "--usd"])
    assert out.exit_code == 0 and "no price" in out.output
    out = run.invoke(app, ["--db", str(btc), "exposure", "show", "bob", "--usd", "--format", "json"])
    assert out.exit_code == 0, out.output
    r = _row(json.loads(out.output), "in", "stolen_funds")
    assert (r["direct_value"], r["usd"]["direct_usd_at_time"]) == ("100000", "48.963555")


def test_cli_entity_gets_today_only(btc: Path) -> None:
    """Clustering joins thief and alice (t1 spends both), so the entity of bob receives
    250_000 sat of stolen_funds directly: today 0.0025 * 113700.11; at the time not computed."""
    run = CliRunner()
    for args in (["cluster"], ["exposure", "build"]):
        assert run.invoke(app, ["--db", str(btc), *args]).exit_code == 0
    with Ledger(btc) as led:
        row = led.con.execute("SELECT cluster_id FROM entities.address_clusters WHERE address = 'bob'").fetchone()
    assert row is not None
    out = run.invoke(app, ["--db", str(btc), "exposure", "show", str(row[0]), "--entity", "--usd", "--format", "json"])
    assert out.exit_code == 0, out.output
    r = _row(json.loads(out.output), "in", "stolen_funds")
    assert (r["direct_value"], r["usd"]["direct_usd_latest"], r["usd"]["flag_at_time"]) == ("250000", "284.250275", "not_computed")
    assert r["usd"]["direct_usd_at_time"] is None


def test_wei_precise_usd_is_exact_and_plain(tmp_path: Path, shared_data: Path) -> None:
    """A -> U a wei-precise 1,234,567.891234567891234567 ETH on 2025-02-21 and 1 wei on
    2026-01-05: the sum at the time has 34 significant digits (Decimal's default context
    keeps 28) and 1 wei's USD is written without exponent form."""
    big = 1_234_567_891_234_567_891_234_567
    with Ledger(tmp_path / "w.duckdb") as led:
        for f in DEFAULT_FILES:
            import_prices(led, shared_data / f)
        led.ensure_chain("eth", "ethereum", network="anvil")
        for b, ts, value in ((1, _ts(2025, 2, 21), big), (2, _ts(2026, 1, 5), 1)):
            led.write_batch("eth", {
                "blocks": {"number": [b], "hash": [f"b{b}"], "timestamp": [ts]},
                "transactions": {"hash": [f"t{b}"], "block_number": [b], "block_hash": [f"b{b}"],
                                 "transaction_index": [0], "from_address": [A], "to_address": [U],
                                 "value": [value], "block_timestamp": [ts]},
            }, (b, b))  # fmt: skip
        _tags(led, tmp_path, [(A, "ETH", "sanction")])
        build_exposure(led, "eth", hops=1)
        doc = exposure_usd_of(led, "eth", U)
        one_wei = usd_value(led, "ETH", 1, None, date(2026, 1, 5)).to_json()
    # by hand: big * 2741.593363 / 10**18 + 1 * 3139.057042 / 10**18
    then = big * 2_741_593_363 + 3_139_057_042  # in 10**-24 USD
    latest = (big + 1) * 3_139_057_042  # in 10**-24 USD
    u = _row(doc, "in", "sanctions", "ETH")["usd"]
    assert u["direct_usd_at_time"] == f"{then // 10**24}.{then % 10**24:024d}".rstrip("0")
    assert u["direct_usd_latest"] == f"{latest // 10**24}.{latest % 10**24:024d}".rstrip("0")
    assert one_wei["usd"] == "0.000000000000003139057042"
