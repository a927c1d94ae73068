"""USD valuation: exact Decimal prices from the real daily series, par stablecoins, DEX ratios, trace annotation."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chainsleuth.cli.main import app
from chainsleuth.entities.synthetic import Tx, write_utxo_blocks
from chainsleuth.errors import ChainsleuthError, InputFileError
from chainsleuth.flows import conversions
from chainsleuth.flows.trace import trace
from chainsleuth.prices import DEFAULT_FILES, import_prices, usd_value, value_now, with_usd
from chainsleuth.prices.valuation import WETH
from chainsleuth.store import Ledger
from chainsleuth.tags import import_tags

USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
GUSD = "0x056fd409e1d7a124bd7017459dfea2f387b6d5cd"
TOKEN = "0x00000000000000000000000000000000000000aa"


@pytest.fixture
def priced(tmp_path: Path, shared_data: Path) -> Path:
    db = tmp_path / "p.duckdb"
    with Ledger(db) as led:
        for f in DEFAULT_FILES:
            import_prices(led, shared_data / f)
    return db


def test_daily_prices_exact(priced: Path) -> None:
    """Values read off the files: BTCUSD_1d_candles_full.csv 2023-09-04 close 25816.13,
    2025-09-24 close 113700.11 (last row); eth-usd-max.csv 2025-02-21 close_price 2741.593363."""
    with Ledger(priced) as led:
        v = usd_value(led, "BTC", 12_345_678, None, datetime(2023, 9, 4, 18, 30, tzinfo=UTC))
        assert v.usd == Decimal("3187.1762818614") and v.price == Decimal("25816.13")
        assert (v.price_day, v.flag) == (date(2023, 9, 4), "daily") and v.source is not None and "mathaszip" in v.source
        eth = usd_value(led, "ETH", 25 * 10**17, None, date(2025, 2, 21))
        assert eth.usd == Decimal("6853.9834075") and eth.source is not None and "CoinGecko" in eth.source
        assert usd_value(led, WETH, 10**18, None, date(2025, 2, 21)).usd == Decimal("2741.593363")
        now = value_now(led, "BTC", 600)
        assert (now.usd, now.price_day) == (Decimal("0.68220066"), date(2025, 9, 24))
        # the ETH series has no row for 2015-08-09, and nothing before 2015-08-07: no price, never 0
        for day in (date(2015, 8, 9), date(2014, 1, 1)):
            gap = usd_value(led, "ETH", 10**18, None, day)
            assert (gap.usd, gap.price, gap.flag) == (None, None, "no_price")
        assert led.con.execute("SELECT typeof(usd) FROM prices.daily LIMIT 1").fetchone() == ("DECIMAL(38,12)",)


def test_stablecoins_at_par(tmp_path: Path) -> None:
    with Ledger(tmp_path / "s.duckdb") as led:
        v = usd_value(led, USDC.upper().replace("0X", "0x"), 1_500_000, None, date(2023, 3, 11))
        assert (v.usd, v.price, v.flag) == (Decimal("1.5"), Decimal(1), "stablecoin_par")
        assert usd_value(led, GUSD, 12_345, None, date(2020, 1, 1)).usd == Decimal("123.45")
        assert usd_value(led, TOKEN, 5, None, date(2020, 1, 1)).flag == "no_price"  # unknown token, no swaps


def _swap(tx: str, ts: datetime, tin: str, ain: int, tout: str, aout: int) -> dict[str, object]:
    return {"chain": "eth", "transaction_hash": tx, "log_index": 0, "pool": "0xpool", "trader": "0xa",
            "recipient": "0xa", "token_in": tin, "amount_in": ain, "token_out": tout, "amount_out": aout,
            "block_number": 1, "block_timestamp": int(ts.replace(tzinfo=UTC).timestamp()), "protocol": "uniswap_v2", "transaction_index": 0}  # fmt: skip


def test_token_from_dex_swaps(priced: Path) -> None:
    """Two swaps against WETH on 2025-02-21 (1000 TOKEN -> 2 WETH, 1 WETH -> 400 TOKEN): 3 ETH at
    2741.593363 = 8224.780089 USD for 1400 base units, so 700 base units = 4112.3900445 USD.
    A swap after the time and one more than 7 days before are not used."""
    with Ledger(priced) as led:
        conversions.ensure_schema(led)
        rows = [
            _swap("0x01", datetime(2025, 2, 21, 10), TOKEN, 1000, WETH, 2 * 10**18),
            _swap("0x02", datetime(2025, 2, 21, 11), WETH, 10**18, TOKEN, 400),
            _swap("0x03", datetime(2025, 2, 21, 13), TOKEN, 1, WETH, 10**18),  # after the time
            _swap("0x04", datetime(2025, 2, 1), TOKEN, 1, USDC, 10**12),  # 20 days before
        ]
        conversions._insert(led, "swaps", rows)
        v = usd_value(led, TOKEN, 700, 0, datetime(2025, 2, 21, 12, tzinfo=UTC))
        assert (v.usd, v.flag, v.price_day) == (Decimal("4112.3900445"), "dex_swap", date(2025, 2, 21))
        assert v.source == "dex swaps 0x02 0x01"
        # latest: the newest swaps, 0x03 included (1 base unit for 1 ETH dominates the ratio)
        assert value_now(led, TOKEN, 1).source == "dex swaps 0x03 0x02 0x01 0x04"


def test_trace_with_usd(priced: Path) -> None:
    with Ledger(priced) as led:
        write_utxo_blocks(led, "btc", [
            [Tx("c0", [], [("thief", 1000)])],
            [Tx("t1", [("c0", 0)], [("ex", 600), ("hold", 390)])],
        ], block_time=1_693_785_600)  # 2023-09-04 00:00 UTC  # fmt: skip
        f = priced.parent / "t.csv"
        f.write_text("address,currency,label,category,confidence\nex,BTC,Ex,exchange,service_data\n")
        import_tags(led, "csv", f)
        res = trace(led, "btc", ["thief"])
        doc = with_usd(led, res)
    [end] = doc["endpoints"]
    assert end["usd"] == {"usd_at_time": "0.15489678", "usd_latest": "0.68220066", "price_day_at_time": "2023-09-04",
                          "price_day_latest": "2025-09-24", "flag": "daily",
                          "source_at_time": "mathaszip/BTCprice daily close (Bitstamp/Coinbase)",
                          "source_latest": "mathaszip/BTCprice daily close (Bitstamp/Coinbase)"}  # fmt: skip
    [hold] = doc["holdings"]
    assert hold["usd"]["usd_at_time"] == "0.100682907" and json.dumps(doc)


def test_bad_price_file(tmp_path: Path) -> None:
    f = tmp_path / "eth-usd-max.csv"
    f.write_text("date,close_price\n2020-01-01 00:00:00 UTC,130.5\n2020-01-02 00:00:00 UTC,-1\n")
    with Ledger(tmp_path / "b.duckdb") as led:
        with pytest.raises(InputFileError, match=r"eth-usd-max.csv:3: field 'close_price'"):
            import_prices(led, f)
        f.write_text("date,close_price\n2020-01-01 00:00:00 UTC,130.5\n2020-01-01 00:00:00 UTC,131\n")
        with pytest.raises(InputFileError, match="appears twice"):
            import_prices(led, f)
        assert usd_value(led, "ETH", 1, None, date(2020, 1, 1)).flag == "no_price"  # nothing written


def test_cli(priced: Path, shared_data: Path) -> None:
    run = CliRunner()
    out = run.invoke(app, ["--db", str(priced), "prices", "show", "ETH", "--date", "2025-02-21", "--amount", str(10**18)])
    assert out.exit_code == 0 and "2741.593363 USD (daily; CoinGecko" in out.output and "= 2741.593363 USD" in out.output
    out = run.invoke(app, ["--db", str(priced), "prices", "show"])
    assert "5,152" in out.output and "3,804" in out.output
    out = run.invoke(app, ["--db", str(priced), "prices", "import", str(shared_data / "README.md")])
    assert out.exit_code != 0 and isinstance(out.exception, ChainsleuthError) and "unknown price file" in str(out.exception)


def test_cli_trace_usd(priced: Path) -> None:
    with Ledger(priced) as led:
        write_utxo_blocks(led, "btc", [[Tx("c0", [], [("thief", 1000)])], [Tx("t1", [("c0", 0)], [("hold", 990)])]],
                          block_time=1_693_785_600)  # 2023-09-04  # fmt: skip
    run = CliRunner()
    out = run.invoke(app, ["--db", str(priced), "trace", "--from", "thief", "--usd", "--format", "json"])
    assert out.exit_code == 0, out.output
    [hold] = json.loads(out.output)["holdings"]
    # 990 sat at 25816.13 (2023-09-04) and at 113700.11 (2025-09-24)
    assert (hold["usd"]["usd_at_time"], hold["usd"]["usd_latest"]) == ("0.255579687", "1.125631089")
    out = run.invoke(app, ["--db", str(priced), "trace", "--from", "thief", "--usd"])
    assert out.exit_code == 0 and "0.255579687" in out.output and "2023-09-04 / 2025-09-24" in out.output


def test_cli_trace_usd_csv(priced: Path) -> None:
    """The CSV carries the same USD columns as the JSON on endpoint and holding rows (edges: empty)."""
    import csv
    import io

    with Ledger(priced) as led:
        write_utxo_blocks(led, "btc", [[Tx("c0", [], [("thief", 1000)])], [Tx("t1", [("c0", 0)], [("ex", 600), ("hold", 390)])]],
                          block_time=1_693_785_600)  # 2023-09-04  # fmt: skip
        f = priced.parent / "t.csv"
        f.write_text("address,currency,label,category,confidence\nex,BTC,Ex,exchange,service_data\n")
        import_tags(led, "csv", f)
    out = CliRunner().invoke(app, ["--db", str(priced), "trace", "--from", "thief", "--usd", "--format", "csv"])
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.output)))
    assert list(rows[0])[-7:] == ["usd_at_time", "usd_latest", "price_day_at_time", "price_day_latest",
                                  "source_at_time", "source_latest", "usd_flag"]  # fmt: skip
    by = {(r["section"], r["address"]): r for r in rows}
    end, hold = by[("endpoint", "ex")], by[("holding", "hold")]
    # 600 sat and 390 sat at 25816.13 (2023-09-04) and 113700.11 (2025-09-24), as in test_trace_with_usd
    assert (end["usd_at_time"], end["usd_latest"], end["price_day_at_time"], end["price_day_latest"], end["usd_flag"]) == (
        "0.15489678", "0.68220066", "2023-09-04", "2025-09-24", "daily")  # fmt: skip
    assert "mathaszip" in end["source_at_time"] and hold["usd_at_time"] == "0.100682907"
    assert all(r["usd_at_time"] == "" for r in rows if r["section"] == "edge")
    plain = CliRunner().invoke(app, ["--db", str(priced), "trace", "--from", "thief", "--format", "csv"])
    assert plain.output.splitlines()[0].endswith("category,labels")  # no USD columns without --usd


def test_cli_import_all_files_or_none(tmp_path: Path, shared_data: Path) -> None:
    """A bad second file (or a non-UTF-8 one) leaves the first series unwritten too."""
    run = CliRunner()
    db = tmp_path / "p.duckdb"
    btc = shared_data / DEFAULT_FILES[0]
    bad = tmp_path / "eth-usd-max.csv"
    bad.write_text("date,close_price\n2020-01-01 00:00:00 UTC,130.5\n2020-01-02 00:00:00 UTC,n/a\n")
    binary = tmp_path / "bin" / "eth-usd-max.csv"
    binary.parent.mkdir()
    binary.write_bytes(b"date,close_price\n\xff\xfe\x00")
    for second, message in [(bad, "eth-usd-max.csv:3: field 'close_price'"), (binary, "cannot read"),
                            (tmp_path / "eth-usd-max.csv.gone", "no such file")]:  # fmt: skip
        out = run.invoke(app, ["--db", str(db), "prices", "import", str(btc), str(second)])
        assert out.exit_code != 0 and isinstance(out.exception, ChainsleuthError), out.output
        assert message in str(out.exception)
        with Ledger(db) as led:
            assert usd_value(led, "BTC", 10**8, None, date(2017, 12, 17)).flag == "no_price"
    out = run.invoke(app, ["--db", str(db), "prices", "show", "BTC", "--amount", "-5"])
    assert out.exit_code != 0 and "--amount must be a non-negative" in str(out.exception)
    out = run.invoke(app, ["--db", str(db), "prices", "import", str(btc)])
    assert out.exit_code == 0, out.output
    with Ledger(db) as led:
        assert usd_value(led, "BTC", 10**8, None, date(2017, 12, 17)).usd == Decimal("19378.99")
