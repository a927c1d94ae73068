"""blockchain-etl / BigQuery export import against the real blockchain-etl test exports."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chainsleuth.errors import ConfigError, InputFileError
from chainsleuth.ingest.base import NullProgress
from chainsleuth.ingest.etl_files import decode_token_transfer, ingest_etl_files, parse_amount
from chainsleuth.store import Ledger

pytestmark = pytest.mark.data

BTC = "bitcoin_etl_test_resources/test_export_blocks_job"
ETH = "ethereum_etl_test_resources"


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _link(folder: Path, **files: Path) -> Path:
    """A folder of symlinks named as the import expects (the data is never copied)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, src in files.items():
        (folder / name.replace("__", ".")).symlink_to(src)
    return folder


def _dump(led: Ledger, chain: str) -> dict[str, list[tuple[Any, ...]]]:
    tables = [r[0] for r in led.con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
        "AND table_type = 'BASE TABLE' ORDER BY 1", [chain]).fetchall()]
    return {t: led.con.execute(f'SELECT * FROM "{chain}"."{t}" ORDER BY ALL').fetchall()
            for t in tables}


def _ts(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


# -- Bitcoin ------------------------------------------------------------------------------


def test_bitcoin_etl_blocks_and_nested_transactions(shared_data: Path, ledger: Ledger) -> None:
    src = shared_data / BTC / "bitcoin/stream_50001_50002"
    res = ingest_etl_files(ledger, src, chain="bitcoin")
    assert (res.blocks, res.transactions) == (2, 4)
    assert res.rows == {"blocks": 2, "transactions": 4, "inputs": 3, "outputs": 4}
    blocks = _jsonl(src / "expected_blocks.json")
    got = ledger.con.execute(
        "SELECT number, hash, size, weight, merkle_root, timestamp, nonce, bits, coinbase_param,"
        " transaction_count FROM bitcoin.blocks ORDER BY number").fetchall()
    assert got == [(b["number"], b["hash"], b["size"], b["weight"], b["merkle_root"],
                    _ts(b["timestamp"]), b["nonce"], b["bits"], b["coinbase_param"],
                    b["transaction_count"]) for b in blocks]
    txs = _jsonl(src / "expected_transactions.json")
    outputs = {(t["hash"], o["index"]): (o["value"], o["addresses"], o["type"])
               for t in txs for o in t["outputs"]}
    stored = {(h, i): (v, a, ty) for h, i, v, a, ty in ledger.con.execute(
        'SELECT transaction_hash, "index", value, addresses, type FROM bitcoin.outputs').fetchall()}
    assert stored == outputs
    # This stream export is enriched: input values and fees are exact ints from the file.
    fees = ledger.con.execute(
        "SELECT hash, input_value, output_value, fee FROM bitcoin.transactions ORDER BY hash"
    ).fetchall()
    assert fees == sorted((t["hash"], t["input_value"], t["output_value"], t["fee"]) for t in txs)
    assert sum(r[1] for r in fees) == 15_000_000_000
    inp = ledger.con.execute(
        "SELECT spent_transaction_hash, spent_output_index, value, addresses FROM bitcoin.inputs"
        " WHERE transaction_hash = '7940cdde4d713e171849efc6bd89939185be270266c94e92369e3877ad89455a'"
        ' ORDER BY "index"').fetchall()
    assert inp == [
        ("76a8d70a757be5055f60be076b683897cadaad6b7bdf78c43e39b9d59cb4a6ea", 0, 5_000_000_000,
         ["1DoQeKfU3dYhN9bxMpFFcVUnufCPDqSPae"]),
        ("0dd0394c6240355f4e4b3c88028f678ed746cebee3b3e8509620733f018914c9", 0, 5_000_000_000,
         next(i["addresses"] for t in txs for i in t["inputs"] if i["index"] == 1)),
    ]


def test_bitcoin_unenriched_inputs_stay_unresolved(shared_data: Path, ledger: Ledger) -> None:
    # bitcoin-etl writes input_value 0 and fee -10000000000 when inputs are not
    # enriched; the import must store NULL (unknown), never a negative fee.
    ingest_etl_files(ledger, shared_data / BTC / "bitcoin/block_with_transactions", chain="bitcoin")
    row = ledger.con.execute(
        "SELECT input_value, output_value, fee FROM bitcoin.transactions WHERE hash ="
        " '7940cdde4d713e171849efc6bd89939185be270266c94e92369e3877ad89455a'").fetchone()
    assert row == (None, 10_000_000_000, None)
    assert ledger.con.execute("SELECT count(*) FROM bitcoin.inputs WHERE value IS NULL").fetchone() == (3,)


def test_dogecoin_big_values_exact(shared_data: Path, ledger: Ledger) -> None:
    src = shared_data / BTC / "dogecoin/block_with_float_precision_loss"
    ingest_etl_files(ledger, src, chain="dogecoin")
    txs = _jsonl(src / "expected_transactions.json")
    want = sorted((t["hash"], o["index"], o["value"]) for t in txs for o in t["outputs"])
    got = ledger.con.execute(
        'SELECT transaction_hash, "index", value FROM dogecoin.outputs ORDER BY ALL').fetchall()
    assert got == want
    assert sum(v for _, _, v in got) == sum(v for _, _, v in want) == 9_623_711_599_182_957
    assert ("2e59a79447f3e5ab77b4c9a09fbfb22578d3e47b36dbcbfc2f4c64fef90942a1", 1,
            8_484_129_938_700_000) in got


def _bigquery_bitcoin(src: Path, dst: Path) -> Path:
    """The same rows as BigQuery's crypto_bitcoin JSON export writes them."""
    dst.mkdir()

    def when(s: int) -> str:
        return datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    def num(v: int | None) -> str | None:
        # NUMERIC as BigQuery renders it: exact digits, or exponent form for round values.
        if v is None:
            return None
        return f"{v // 10**9}E+9" if v and v % 10**9 == 0 else str(v)

    with open(dst / "blocks.json", "w") as fh:
        for b in _jsonl(src / "expected_blocks.json"):
            b = {k: v for k, v in b.items() if k not in ("type", "item_id")}
            b["timestamp_month"] = when(b["timestamp"])[:7] + "-01"
            b["timestamp"] = when(b["timestamp"])
            b["number"] = str(b["number"])
            fh.write(json.dumps(b) + "\n")
    with (open(dst / "transactions.json", "w") as ft, open(dst / "inputs.json", "w") as fi,
          open(dst / "outputs.json", "w") as fo):
        for t in _jsonl(src / "expected_transactions.json"):
            parent = {"transaction_hash": t["hash"], "block_hash": t["block_hash"],
                      "block_number": str(t["block_number"]),
                      "block_timestamp": when(t["block_timestamp"])}
            for kind, fh in (("inputs", fi), ("outputs", fo)):
                for item in t.pop(kind):
                    fh.write(json.dumps({**parent, **item, "value": num(item["value"])}) + "\n")
            t = {k: v for k, v in t.items() if k not in ("type", "item_id")}
            t.update(block_timestamp=when(t["block_timestamp"]), block_number=str(t["block_number"]),
                     input_value=num(t["input_value"]), output_value=num(t["output_value"]),
                     fee=num(t["fee"]))
            ft.write(json.dumps(t) + "\n")
    return dst


def test_bigquery_bitcoin_export_loads_like_etl(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / BTC / "bitcoin/stream_50001_50002"
    bq = _bigquery_bitcoin(src, tmp_path / "bq")
    assert '"value": "5E+9"' in (bq / "outputs.json").read_text()
    with Ledger(tmp_path / "a.duckdb") as a, Ledger(tmp_path / "b.duckdb") as b:
        ingest_etl_files(a, src, chain="bitcoin")
        ingest_etl_files(b, bq, chain="bitcoin")
        assert _dump(a, "bitcoin") == _dump(b, "bitcoin")
        assert a.count("bitcoin", "outputs") == 4


# -- Ethereum -----------------------------------------------------------------------------


@pytest.fixture
def eth_483920(shared_data: Path, tmp_path: Path) -> Path:
    """Block 483920: blocks, transactions (CSV), receipts (CSV), logs (JSON); no token file."""
    e = shared_data / ETH
    return _link(
        tmp_path / "e483920",
        blocks__csv=e / "test_export_blocks_job/block_with_logs/expected_blocks.csv",
        transactions__csv=e / "test_export_blocks_job/block_with_logs/expected_transactions.csv",
        receipts__csv=e / "test_export_receipts_job/receipts_with_logs/expected_receipts.csv",
        logs__json=e / "test_export_receipts_job/receipts_with_logs/expected_logs.json",
    )


def test_ethereum_csv_json_and_decoded_token_transfers(shared_data: Path, eth_483920: Path,
                                                       ledger: Ledger) -> None:
    progress = NullProgress()
    res = ingest_etl_files(ledger, eth_483920, chain="ethereum", progress=progress)
    assert res.rows == {"blocks": 1, "transactions": 4, "receipts": 4, "logs": 2,
                        "token_transfers": 2}
    assert any("ignoring column(s)" in m and "withdrawals" in m for m in progress.messages)
    assert any("derived 2 token_transfers" in m for m in progress.messages)
    # The decoded transfers equal ethereum-etl's own export for this block.
    expected = _csv(shared_data / ETH / "test_export_token_transfers_job/block_with_transfers/"
                    "expected_token_transfers.csv")
    got = ledger.con.execute(
        "SELECT token_address, from_address, to_address, value, transaction_hash, log_index,"
        " block_number, block_timestamp FROM ethereum.token_transfers ORDER BY log_index").fetchall()
    assert got == [(r["token_address"], r["from_address"], r["to_address"], int(r["value"]),
                    r["transaction_hash"], int(r["log_index"]), int(r["block_number"]),
                    _ts(1446561880)) for r in expected]
    txs = _csv(eth_483920 / "transactions.csv")
    sums = ledger.con.execute(
        "SELECT sum(value), sum(gas_price), count(*) FROM ethereum.transactions").fetchone()
    assert sums == (sum(int(t["value"]) for t in txs), sum(int(t["gas_price"]) for t in txs), 4)
    # Hand-checked legs of 0x04cbcb...: 100000 token units to 0xac4d..., fee 21000+... gas.
    legs = ledger.con.execute(
        "SELECT kind, from_address, to_address, asset, amount FROM ethereum.transfers WHERE"
        " transaction_hash = '0x04cbcb236043d8fb7839e07bbc7f5eed692fb2ca55d897f1101eac3e3ad4fab8'"
        " ORDER BY kind").fetchall()
    assert legs == [
        # pre-London: the whole fee goes to the block's miner
        ("fee", "0x1b63142628311395ceafeea5667e7c9026c862ca",
         "0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5", "ETH", 50853 * 50_000_000_000),
        ("token", "0x1b63142628311395ceafeea5667e7c9026c862ca",
         "0xac4df82fe37ea2187bc8c011a23d743b4f39019a",
         "0xf4eced2f682ce333f96f2d8966c613ded8fc95dd", 100000),
    ]


def test_ethereum_csv_and_json_load_identically(shared_data: Path, tmp_path: Path) -> None:
    r = shared_data / ETH / "test_export_receipts_job/receipts_with_logs"
    a_dir = _link(tmp_path / "a", receipts__csv=r / "expected_receipts.csv", logs__csv=r / "expected_logs.csv")
    b_dir = _link(tmp_path / "b", receipts__json=r / "expected_receipts.json", logs__json=r / "expected_logs.json")
    with Ledger(tmp_path / "a.duckdb") as a, Ledger(tmp_path / "b.duckdb") as b:
        ingest_etl_files(a, a_dir, chain="ethereum")
        ingest_etl_files(b, b_dir, chain="ethereum")
        da, db = _dump(a, "ethereum"), _dump(b, "ethereum")
        assert da == db
        assert len(da["logs"]) == 2 and len(da["receipts"]) == 4
        topics = a.con.execute("SELECT topics FROM ethereum.logs WHERE log_index = 0").fetchone()
        assert topics is not None and len(topics[0]) == 3


def test_ethereum_stream_json_with_big_token_values(shared_data: Path, tmp_path: Path) -> None:
    s = shared_data / ETH / "test_stream/blocks_17173049_17173050"
    expected = _jsonl(s / "expected_token_transfers.json")
    # Without the token_transfers file the transfers are decoded from the logs.
    decoded_dir = _link(tmp_path / "d", blocks__json=s / "expected_blocks.json",
                        transactions__json=s / "expected_transactions.json",
                        logs__json=s / "expected_logs.json")
    with Ledger(tmp_path / "full.duckdb") as full, Ledger(tmp_path / "dec.duckdb") as dec:
        res = ingest_etl_files(full, s, chain="ethereum")
        assert res.rows == {"blocks": 2, "transactions": 298, "receipts": 298, "logs": 681,
                            "token_transfers": 291}
        ingest_etl_files(dec, decoded_dir, chain="ethereum")
        d_full, d_dec = _dump(full, "ethereum"), _dump(dec, "ethereum")
        tt_full, tt_dec = d_full.pop("token_transfers"), d_dec.pop("token_transfers")
        assert d_full == d_dec
        # ethereum-etl's export also lists the 9 ERC-721 transfers (4 topics, token id as
        # value); the shared decoder leaves those out on purpose, so decoding yields the rest.
        erc721 = {(lg["transaction_hash"], lg["log_index"]) for lg in _jsonl(s / "expected_logs.json")
                  if lg["topics"] and lg["topics"][0].startswith("0xddf252ad") and len(lg["topics"]) == 4}
        assert len(erc721) == 9
        assert tt_dec == [r for r in tt_full if (r[5], r[6]) not in erc721]
        q = ("SELECT transaction_hash, log_index, value, value_overflow FROM ethereum.token_transfers"
             " ORDER BY block_number, log_index")
        got = full.con.execute(q).fetchall()
        assert [(h, i, v) for h, i, v, _ in got] == [
            (t["transaction_hash"], t["log_index"], t["value"]) for t in expected]
        total = full.con.execute("SELECT sum(value) FROM ethereum.token_transfers").fetchone()
        assert total == (sum(t["value"] for t in expected),)
        assert (expected[1]["value"] == 150188698577042438264952193024
                and got[1][2] == expected[1]["value"])
        txs = _jsonl(s / "expected_transactions.json")
        status = full.con.execute(
            "SELECT sum(gas_used), sum(effective_gas_price), count(*) FILTER (WHERE status = 1)"
            " FROM ethereum.receipts").fetchone()
        assert status == (sum(t["receipt_gas_used"] for t in txs),
                          sum(t["receipt_effective_gas_price"] for t in txs),
                          sum(1 for t in txs if t["receipt_status"] == 1))


def test_ethereum_traces_exact(shared_data: Path, ledger: Ledger) -> None:
    src = shared_data / ETH / "test_export_traces_job"
    ingest_etl_files(ledger, src, chain="ethereum")
    rows = [r for p in sorted(src.glob("*/expected_traces.csv")) for r in _csv(p)]
    assert ledger.count("ethereum", "traces") == len(rows) == 13
    got = ledger.con.execute("SELECT sum(value) FROM ethereum.traces").fetchone()
    assert got == (sum(int(r["value"]) for r in rows if r["value"]),)
    big = ledger.con.execute(
        "SELECT value, status, trace_address FROM ethereum.traces WHERE trace_id ="
        " 'call_0x2c3cfb8d7f3039fcad64bd231beb0229af55f9114d74aef12a6f228ad1dac100_'").fetchone()
    assert big == (64655529900000002048, 1, None)


def _bigquery_ethereum(src: Path, dst: Path) -> Path:
    """BigQuery crypto_ethereum JSON: string INT64/NUMERIC, 'UTC' timestamps, receipt_* fields."""
    dst.mkdir()

    def when(s: int) -> str:
        return datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    for table, ts_col in (("blocks", "timestamp"), ("transactions", "block_timestamp"),
                          ("logs", None), ("token_transfers", "block_timestamp")):
        with open(dst / f"{table}-000000000000.json", "w") as fh:
            for row in _jsonl(src / f"expected_{table}.json"):
                row = {k: v for k, v in row.items() if k not in ("type", "item_id", "item_timestamp")}
                seconds = row.get(ts_col) if ts_col else None
                for k, v in list(row.items()):
                    if isinstance(v, int) and not isinstance(v, bool):
                        # Round values as BigQuery prints NUMERIC, the rest as digit strings.
                        row[k] = f"{v // 10**15}E+15" if v and v % 10**15 == 0 else str(v)
                if ts_col and seconds is not None:
                    row[ts_col] = when(seconds)
                fh.write(json.dumps(row) + "\n")
    return dst


def test_bigquery_ethereum_export_loads_like_etl(shared_data: Path, tmp_path: Path) -> None:
    s = shared_data / ETH / "test_stream/blocks_17173049_17173050"
    bq = _bigquery_ethereum(s, tmp_path / "bq")
    assert '"value": "7400E+15"' in (bq / "transactions-000000000000.json").read_text()
    with Ledger(tmp_path / "a.duckdb") as a, Ledger(tmp_path / "b.duckdb") as b:
        ingest_etl_files(a, s, chain="ethereum")
        ingest_etl_files(b, bq, chain="ethereum")
        assert _dump(a, "ethereum") == _dump(b, "ethereum")


# -- exact numbers, bad input, idempotency -----------------------------------------------


def test_parse_amount_exact_and_lossy() -> None:
    assert parse_amount("123") == 123
    assert parse_amount(2**200) == 2**200
    # BigQuery renders NUMERIC exactly, round values in exponent form.
    assert parse_amount("1.23E+20", bigquery=True) == 123 * 10**18
    assert parse_amount("1.23457E+20", bigquery=True) == 123457 * 10**15
    # Elsewhere exponent text may be a rounded rendering (a spreadsheet's "1.23457E+20"
    # for 123456789012345678901): refused, whatever its size or digit count.
    for rounded in ("1.23457E+20", "1.23E+20", "5E+9"):
        with pytest.raises(ValueError, match="lost precision"):
            parse_amount(rounded)
    # Float forms without exponent are exact up to 2**53 (pandas writes "5000000000.0").
    assert parse_amount("5000000000.0") == 5 * 10**9
    assert parse_amount(Decimal("9007199254740992.0")) == 2**53
    for beyond in ("9007199254740993.0", Decimal("1.0E+20")):
        with pytest.raises(ValueError, match="lost precision"):
            parse_amount(beyond)
    for bad in ("1.5", "-3", "abc", "1.2345678901234567E+25", "NaN"):
        with pytest.raises(ValueError):
            parse_amount(bad)
    with pytest.raises(ValueError):
        parse_amount("1.2345678901234567E+25", bigquery=True)


def test_exponent_amounts_only_in_bigquery_rows(tmp_path: Path, ledger: Ledger) -> None:
    etl = tmp_path / "etl"
    etl.mkdir()
    (etl / "transactions.csv").write_text("hash,block_number,value\n0x1,1,1.23457E+20\n")
    with pytest.raises(InputFileError, match="lost precision"):
        ingest_etl_files(ledger, etl, chain="ethereum", family="ethereum")
    bq = tmp_path / "bq"
    bq.mkdir()
    (bq / "transactions-000000000000.json").write_text(
        '{"hash": "0x1", "block_number": "1", "value": "1.23457E+20",'
        ' "block_timestamp": "2015-10-23 00:00:00 UTC"}\n')
    ingest_etl_files(ledger, bq, chain="ethereum", family="ethereum")
    assert ledger.con.execute("SELECT value FROM ethereum.transactions").fetchall() == [(123457 * 10**15,)]


def test_same_token_transfers_from_csv_and_bigquery_are_stored_once(tmp_path: Path, ledger: Ledger) -> None:
    """ethereum-etl CSV (no timestamp) + BigQuery JSON (timestamp) of one transfer: one row, one leg."""
    d = tmp_path / "both"
    d.mkdir()
    (d / "blocks.csv").write_text("number,hash,timestamp\n5,0xb5,1446561880\n")
    cols = "token_address,from_address,to_address,value,transaction_hash,log_index,block_number"
    (d / "token_transfers.csv").write_text(f"{cols}\n0xt,0xa,0xb,100,0xtx,3,5\n")
    (d / "token_transfers-000000000000.json").write_text(
        '{"token_address": "0xt", "from_address": "0xa", "to_address": "0xb", "value": "100",'
        ' "transaction_hash": "0xtx", "log_index": "3", "block_number": "5",'
        ' "block_timestamp": "2015-11-03 14:44:40 UTC", "block_hash": "0xb5"}\n')
    ingest_etl_files(ledger, d, chain="ethereum", family="ethereum")
    rows = ledger.con.execute(
        "SELECT value, epoch(block_timestamp), block_hash FROM ethereum.token_transfers").fetchall()
    assert rows == [(100, 1446561880, "0xb5")]
    # Same key, different value: an error naming the column, nothing written.
    (d / "token_transfers-000000000001.json").write_text(
        '{"token_address": "0xt", "from_address": "0xa", "to_address": "0xb", "value": "101",'
        ' "transaction_hash": "0xtx", "log_index": "3", "block_number": "5"}\n')
    with pytest.raises(InputFileError, match="appears twice with different value"):
        ingest_etl_files(ledger, d, chain="ethereum", family="ethereum")


def test_decode_token_transfer_rejects_non_transfer() -> None:
    log = {"topics": ["0x" + "00" * 32], "data": "0x", "address": "0x1"}
    assert decode_token_transfer(log) is None


@pytest.mark.parametrize(
    ("name", "content", "line", "needle"),
    [
        ("blocks.csv", "number,hash\n1,0xa\n2,0xb,extra\n", 3, "expected 2 columns"),
        ("blocks.json", '{"number": 1, "hash": "0xa"}\n{"number": 2, "hash": \n', 2, "bad JSON"),
        ("transactions.csv", "hash,block_number,value\n0x1,1,12\n0x2,1,twelve\n", 3, "not a number"),
        ("transactions.json", '{"hash": "0x1", "block_number": 1, "value": -5}\n', 1, "negative"),
        ("logs.json", '{"log_index": 0, "block_number": 1}\n', 1, "transaction_hash"),
        ("transactions.json", '{"hash": "0x1", "block_number": 1, "value": "1.2345678901234567E+25"}\n',
         1, "lost precision"),
        ("transactions.json", '{"hash": "0x1", "block_number": 1, "value": 1.5}\n', 1, "not an integer"),
    ],
)
def test_malformed_rows_name_file_and_line_and_write_nothing(
    eth_483920: Path, tmp_path: Path, ledger: Ledger, name: str, content: str, line: int, needle: str
) -> None:
    ingest_etl_files(ledger, eth_483920, chain="ethereum")
    before = _dump(ledger, "ethereum")
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    # A good file that sorts first (its rows must not be written either).
    (bad_dir / "a_blocks.csv").write_text("number,hash\n7,0x07\n")
    (bad_dir / name).write_text(content)
    with pytest.raises(InputFileError) as err:
        ingest_etl_files(ledger, bad_dir, chain="ethereum")
    assert err.value.path == str(bad_dir / name) and err.value.line == line
    assert needle in str(err.value)
    assert _dump(ledger, "ethereum") == before


def test_wrong_family_is_refused(shared_data: Path, ledger: Ledger) -> None:
    ingest_etl_files(ledger, shared_data / BTC / "bitcoin/block_1", chain="bitcoin")
    with pytest.raises(ConfigError, match="look like ethereum"):
        ingest_etl_files(ledger, shared_data / ETH / "test_export_traces_job", chain="bitcoin")


def test_ingesting_twice_changes_nothing(eth_483920: Path, ledger: Ledger) -> None:
    ingest_etl_files(ledger, eth_483920, chain="ethereum")
    first = _dump(ledger, "ethereum")
    res = ingest_etl_files(ledger, eth_483920, chain="ethereum")
    assert (res.blocks, res.skipped_blocks, res.rows) == (0, 1, {})
    assert _dump(ledger, "ethereum") == first


def test_partial_imports_keep_other_tables(eth_483920: Path, tmp_path: Path, ledger: Ledger) -> None:
    # blocks first, then transactions alone: the second import must not drop the blocks.
    only_blocks = _link(tmp_path / "ob", blocks__csv=(eth_483920 / "blocks.csv").resolve())
    only_txs = _link(tmp_path / "ot", transactions__csv=(eth_483920 / "transactions.csv").resolve())
    ingest_etl_files(ledger, only_blocks, chain="ethereum")
    ingest_etl_files(ledger, only_txs, chain="ethereum")
    assert (ledger.count("ethereum", "blocks"), ledger.count("ethereum", "transactions")) == (1, 4)


# -- kill -9 and resume -------------------------------------------------------------------


def _replicated_input(src: Path, dst: Path, copies: int) -> Path:
    """The stream export repeated with block numbers shifted by 10 per copy."""
    dst.mkdir()
    for table in ("blocks", "transactions", "logs", "token_transfers"):
        rows = _jsonl(src / f"expected_{table}.json")
        with open(dst / f"{table}.json", "w") as fh:
            for c in range(copies):
                for r in rows:
                    r = dict(r)
                    key = "number" if table == "blocks" else "block_number"
                    r[key] = r[key] + 10 * c
                    suffix = f"{c:04x}"
                    for col in ("hash", "block_hash", "transaction_hash"):
                        if isinstance(r.get(col), str):
                            r[col] = r[col][:-4] + suffix
                    fh.write(json.dumps(r) + "\n")
    return dst


def test_kill_and_resume_equals_clean_import(shared_data: Path, tmp_path: Path) -> None:
    src = _replicated_input(shared_data / ETH / "test_stream/blocks_17173049_17173050",
                            tmp_path / "big", copies=40)
    env = {**os.environ, "CHAINSLEUTH_ETL_BATCH_ROWS": "3000"}
    exe = Path(sys.executable).parent / "chainsleuth"

    def cmd(db: Path) -> list[str]:
        return [str(exe), "--db", str(db), "ingest", "etl", str(src), "--chain", "ethereum"]

    clean = tmp_path / "clean.duckdb"
    t0 = time.monotonic()
    subprocess.run(cmd(clean), env=env, check=True, capture_output=True)
    wall = time.monotonic() - t0
    killed = tmp_path / "killed.duckdb"
    partial_seen = []
    for fraction in (0.55, 0.7, 0.85, 0.95):
        proc = subprocess.Popen(cmd(killed), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(wall * fraction)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if killed.exists():
            with Ledger(killed) as led:
                n = led.count("ethereum", "blocks") if led.chains() else 0
            partial_seen.append(n)
    subprocess.run(cmd(killed), env=env, check=True, capture_output=True)
    with Ledger(clean, read_only=True) as a, Ledger(killed, read_only=True) as b:
        assert a.count("ethereum", "blocks") == 80
        assert _dump(a, "ethereum") == _dump(b, "ethereum")
    # At least one kill must have landed between batches for the test to mean something.
    assert any(0 < n < 80 for n in partial_seen), partial_seen
