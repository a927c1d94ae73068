"""The ledger store: schema, batches, overflow, rollback, transfers view, Parquet, SQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainsleuth.errors import ConfigError, StoreError
from chainsleuth.store import Ledger
from chainsleuth.store.parquet import export_parquet, import_parquet
from chainsleuth.store.schema import HUGEINT_MAX, TABLES
from chainsleuth.store.sql import check_read_only, run_readonly

CLI = [sys.executable, "-m", "chainsleuth.cli.main"]


def _btc_fixture(ledger: Ledger) -> None:
    """Two blocks by hand: a coinbase, then a tx spending it to a P2PKH, a 2-of-3
    bare multisig, an OP_RETURN, with a 1,000 sat fee."""
    ledger.ensure_chain("btc", "bitcoin", network="regtest")
    ledger.write_batch(
        "btc",
        {
            "blocks": {"number": [0, 1], "hash": ["h0", "h1"], "timestamp": [1000, 2000],
                       "previous_block_hash": [None, "h0"]},
            "transactions": {
                "hash": ["cb", "tx"], "block_number": [0, 1], "block_hash": ["h0", "h1"],
                "is_coinbase": [True, False], "input_count": [0, 1], "output_count": [1, 3],
                "output_value": [5_000_000_000, 4_999_999_000], "input_value": [0, None],
                "fee": [0, None], "index": [0, 0],
            },
            "outputs": {
                "transaction_hash": ["cb", "tx", "tx", "tx"], "block_number": [0, 1, 1, 1],
                "index": [0, 0, 1, 2],
                "type": ["pubkey", "pubkeyhash", "multisig", "nulldata"],
                "required_signatures": [1, 1, 2, None],
                "addresses": [["1Miner"], ["1Alice"], ["1K1", "1K2", "1K3"], []],
                "value": [5_000_000_000, 3_000_000_000, 1_999_999_000, 0],
            },
            "inputs": {
                "transaction_hash": ["tx"], "block_number": [1], "index": [0],
                "spent_transaction_hash": ["cb"], "spent_output_index": [0],
            },
        },
        (0, 1),
    )


def test_chain_names_and_families(ledger: Ledger) -> None:
    ledger.ensure_chain("bitcoin_regtest", "bitcoin")
    ledger.ensure_chain("bitcoin_regtest", "bitcoin")  # idempotent
    with pytest.raises(StoreError, match="already holds bitcoin"):
        ledger.ensure_chain("bitcoin_regtest", "ethereum")
    for bad in ("Bitcoin", "1btc", "btc-main", "chainsleuth", ""):
        with pytest.raises(StoreError):
            ledger.ensure_chain(bad, "bitcoin")
    with pytest.raises(StoreError, match="unknown chain 'nope'"):
        ledger.tip("nope")
    tables = {r[0] for r in ledger.con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'bitcoin_regtest'"
    ).fetchall()}
    assert tables == set(TABLES["bitcoin"]) | {"transfers"}


def test_inputs_are_resolved_and_fee_computed(ledger: Ledger) -> None:
    _btc_fixture(ledger)
    row = ledger.con.execute(
        "SELECT addresses, value, type FROM btc.inputs WHERE transaction_hash = 'tx'"
    ).fetchone()
    assert row == (["1Miner"], 5_000_000_000, "pubkey")
    assert ledger.con.execute(
        "SELECT input_value, fee FROM btc.transactions WHERE hash = 'tx'"
    ).fetchone() == (5_000_000_000, 1_000)


def test_bitcoin_transfers_view_by_hand(ledger: Ledger) -> None:
    _btc_fixture(ledger)
    rows = ledger.con.execute(
        """SELECT transaction_hash, kind, position, from_address, to_address, asset, amount,
                  utxo_transaction_hash, utxo_index
           FROM btc.transfers ORDER BY transaction_hash, kind, position"""
    ).fetchall()
    assert rows == [
        ("cb", "output", 0, None, "1Miner", "BTC", 5_000_000_000, "cb", 0),
        ("tx", "fee", 0, None, None, "BTC", 1_000, None, None),
        ("tx", "input", 0, "1Miner", None, "BTC", 5_000_000_000, "cb", 0),
        ("tx", "output", 0, None, "1Alice", "BTC", 3_000_000_000, "tx", 0),
        ("tx", "output", 1, None, "multisig:2:1K1,1K2,1K3", "BTC", 1_999_999_000, "tx", 1),
        ("tx", "output", 2, None, None, "BTC", 0, "tx", 2),
    ]
    # value is conserved per transaction: inputs = outputs + fee
    assert ledger.con.execute(
        """SELECT sum(CASE WHEN kind = 'input' THEN amount ELSE -amount END)
           FROM btc.transfers WHERE transaction_hash = 'tx'"""
    ).fetchone() == (0,)


def _eth_fixture(ledger: Ledger) -> None:
    """One block: a plain ETH payment, a failed payment, a contract call that
    forwards 3 wei internally (plus a delegatecall and a reverted inner call that
    move nothing), and a token transfer."""
    ledger.ensure_chain("eth", "ethereum")
    ledger.write_batch(
        "eth",
        {
            "blocks": {"number": [7], "hash": ["0xb7"], "timestamp": [1_600_000_000],
                       "miner": ["0xminer"], "base_fee_per_gas": [1]},
            "transactions": {
                "hash": ["0xt1", "0xt2", "0xt3"], "block_number": [7] * 3,
                "transaction_index": [0, 1, 2], "from_address": ["0xa", "0xa", "0xb"],
                "to_address": ["0xb", "0xc", "0xk"], "value": [10**18, 5, 10],
                "gas_price": [2, 2, 3], "block_timestamp": [1_600_000_000] * 3,
            },
            "receipts": {
                "transaction_hash": ["0xt1", "0xt2", "0xt3"], "block_number": [7] * 3,
                "transaction_index": [0, 1, 2], "gas_used": [21000, 21000, 50000],
                "status": [1, 0, 1], "effective_gas_price": [2, 2, None],
            },
            "traces": {
                "block_number": [7] * 5, "transaction_hash": ["0xt3"] * 5,
                "transaction_index": [2] * 5,
                "from_address": ["0xb", "0xk", "0xk", "0xk", "0xk"],
                "to_address": ["0xk", "0xd", "0xe", "0xf", "0xg"],
                "value": [10, 3, 0, 4, 9],
                "trace_type": ["call"] * 5,
                "call_type": ["call", "call", "delegatecall", "call", "delegatecall"],
                "trace_address": ["", "0", "1", "2", "3"],
                "status": [1, 1, 1, 0, 1],
            },
            "token_transfers": {
                "token_address": ["0xusdt"], "from_address": ["0xk"], "to_address": ["0xd"],
                "value": [2**200], "transaction_hash": ["0xt3"], "log_index": [4],
                "block_number": [7],
            },
        },
        (7, 7),
    )


def test_ethereum_transfers_view_by_hand(ledger: Ledger) -> None:
    _eth_fixture(ledger)
    rows = ledger.con.execute(
        """SELECT transaction_hash, kind, position, from_address, to_address, asset,
                  amount, amount_overflow
           FROM eth.transfers ORDER BY transaction_hash, kind, position"""
    ).fetchall()
    # fees: base fee 1 wei/gas burnt (position 0), the rest to the miner (position 1)
    assert rows == [
        ("0xt1", "fee", 0, "0xa", None, "ETH", 21000, None),
        ("0xt1", "fee", 1, "0xa", "0xminer", "ETH", 21000, None),
        ("0xt1", "native", 0, "0xa", "0xb", "ETH", 10**18, None),
        ("0xt2", "fee", 0, "0xa", None, "ETH", 21000, None),  # failed: fee only
        ("0xt2", "fee", 1, "0xa", "0xminer", "ETH", 21000, None),
        ("0xt3", "fee", 0, "0xb", None, "ETH", 50000, None),  # gas_price when no effective price
        ("0xt3", "fee", 1, "0xb", "0xminer", "ETH", 100000, None),
        ("0xt3", "internal", 1, "0xk", "0xd", "ETH", 3, None),
        ("0xt3", "native", 0, "0xb", "0xk", "ETH", 10, None),
        ("0xt3", "token", 4, "0xk", "0xd", "0xusdt", None, str(2**200)),
    ]


def test_write_batch_is_idempotent_and_rollback(ledger: Ledger) -> None:
    _btc_fixture(ledger)
    before = {t: ledger.count("btc", t) for t in TABLES["bitcoin"]}
    _btc_fixture(ledger)
    assert {t: ledger.count("btc", t) for t in TABLES["bitcoin"]} == before
    assert ledger.tip("btc") == (1, "h1")
    assert ledger.rollback_to("btc", 0) == 1
    assert ledger.tip("btc") == (0, "h0")
    assert ledger.count("btc", "inputs") == 0 and ledger.count("btc", "outputs") == 1


def test_failed_batch_writes_nothing(ledger: Ledger) -> None:
    _btc_fixture(ledger)
    before = {t: ledger.count("btc", t) for t in TABLES["bitcoin"]}
    with pytest.raises(StoreError, match="no column"):
        ledger.write_batch(
            "btc",
            {"blocks": {"number": [2], "hash": ["h2"]}, "outputs": {"bogus": [1]}},
            (2, 2),
        )
    assert {t: ledger.count("btc", t) for t in TABLES["bitcoin"]} == before


amounts = st.one_of(
    st.integers(min_value=0, max_value=2**64),
    st.integers(min_value=HUGEINT_MAX - 5, max_value=HUGEINT_MAX + 5),
    st.integers(min_value=0, max_value=2**256 - 1),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(amounts, min_size=1, max_size=8))
def test_any_uint256_amount_is_kept_exactly(tmp_path: Path, values: list[int]) -> None:
    """Every uint256 survives the store and a Parquet round trip, flagged iff > HUGEINT."""
    import uuid

    run = tmp_path / uuid.uuid4().hex
    with Ledger(run / "a.duckdb") as led:
        led.ensure_chain("eth", "ethereum")
        n = len(values)
        led.write_batch("eth", {
            "blocks": {"number": [1], "hash": ["0x1"]},
            "token_transfers": {
                "token_address": ["0xt"] * n, "transaction_hash": ["0xh"] * n,
                "log_index": list(range(n)), "block_number": [1] * n, "value": values,
            },
        }, (1, 1))
        export_parquet(led, run / "pq")
        q = """SELECT coalesce(CAST(amount AS VARCHAR), amount_overflow), amount_overflow IS NOT NULL
               FROM eth.transfers ORDER BY position"""
        got = led.con.execute(q).fetchall()
    assert got == [(str(v), v > HUGEINT_MAX) for v in values]
    with Ledger(run / "b.duckdb") as led2:
        import_parquet(led2, run / "pq")
        assert led2.con.execute(q).fetchall() == got


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    outs=st.lists(st.integers(min_value=0, max_value=21 * 10**14), min_size=1, max_size=6),
    fee=st.integers(min_value=0, max_value=10**8),
)
def test_utxo_value_conservation(tmp_path: Path, outs: list[int], fee: int) -> None:
    """For any spend, the transfers legs conserve value: inputs = outputs + fee."""
    import uuid

    with Ledger(tmp_path / f"{uuid.uuid4().hex}.duckdb") as led:
        led.ensure_chain("btc", "bitcoin")
        total = sum(outs) + fee
        n = len(outs)
        led.write_batch("btc", {
            "blocks": {"number": [0, 1], "hash": ["a", "b"]},
            "transactions": {"hash": ["cb", "tx"], "block_number": [0, 1], "is_coinbase": [True, False],
                             "output_value": [total, sum(outs)]},
            "outputs": {"transaction_hash": ["cb"] + ["tx"] * n, "block_number": [0] + [1] * n,
                        "index": [0, *range(n)], "addresses": [["A"]] + [[f"B{i}"] for i in range(n)],
                        "value": [total, *outs]},
            "inputs": {"transaction_hash": ["tx"], "block_number": [1], "index": [0],
                       "spent_transaction_hash": ["cb"], "spent_output_index": [0]},
        }, (0, 1))
        legs = dict(led.con.execute(
            "SELECT kind, sum(amount) FROM btc.transfers WHERE transaction_hash='tx' GROUP BY kind"
        ).fetchall())
    assert legs["input"] == legs["output"] + legs.get("fee", 0) == total
    assert legs.get("fee", 0) == fee


def test_parquet_round_trip_row_for_row(tmp_path: Path) -> None:
    with Ledger(tmp_path / "a.duckdb") as a:
        _btc_fixture(a)
        _eth_fixture(a)
        export_parquet(a, tmp_path / "pq")
    with Ledger(tmp_path / "b.duckdb") as b:
        import_parquet(b, tmp_path / "pq")
        import_parquet(b, tmp_path / "pq")  # twice: still one copy
        b.con.execute(f"ATTACH '{tmp_path / 'a.duckdb'}' AS a (READ_ONLY)")
        for chain, family in (("btc", "bitcoin"), ("eth", "ethereum")):
            for table in TABLES[family]:
                for x, y in ((f"a.{chain}.{table}", f"{chain}.{table}"), (f"{chain}.{table}", f"a.{chain}.{table}")):
                    diff = b.con.execute(f"SELECT count(*) FROM (FROM {x} EXCEPT ALL FROM {y})").fetchone()
                    assert diff == (0,), (chain, table)


def test_sql_is_read_only(tmp_path: Path) -> None:
    db = tmp_path / "a.duckdb"
    with Ledger(db) as a:
        _eth_fixture(a)
    for bad in ("DELETE FROM eth.blocks", "COPY eth.blocks TO 'x.csv'", "ATTACH 'x.db'",
                "SELECT 1; DROP TABLE eth.blocks", "INSTALL httpfs", "SET threads=1"):
        with pytest.raises(ConfigError, match=r"read-only|parse"):
            check_read_only(bad)
    t = run_readonly(db, "WITH x AS (SELECT * FROM eth.transfers) SELECT count(*) AS n FROM x")
    assert t.to_pylist() == [{"n": 10}]


def test_cli_sql_formats_and_clear_errors(tmp_path: Path) -> None:
    db = tmp_path / "a.duckdb"
    with Ledger(db) as a:
        _eth_fixture(a)
    q = "SELECT amount, amount_overflow FROM eth.transfers WHERE kind = 'token'"
    out = subprocess.run([*CLI, "--db", str(db), "sql", q, "--format", "json"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [{"amount": None, "amount_overflow": str(2**200)}]
    q2 = "SELECT amount FROM eth.transfers WHERE kind = 'native' AND transaction_hash = '0xt1'"
    out = subprocess.run([*CLI, "--db", str(db), "sql", q2, "--format", "csv"],
                         capture_output=True, text=True, check=True).stdout
    assert out == "amount\n1000000000000000000\n"
    bad = subprocess.run([*CLI, "--db", str(db), "sql", "DELETE FROM eth.blocks"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "read-only" in bad.stderr and "Traceback" not in bad.stderr
    missing = subprocess.run([*CLI, "--db", str(tmp_path / "none.duckdb"), "sql", "SELECT 1"],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "no ledger" in missing.stderr and "Traceback" not in missing.stderr


def test_pre_byzantium_failure_and_reward_traces(ledger: Ledger) -> None:
    """No receipt status before Byzantium: the failed top-level trace decides. Reward
    traces (no transaction, empty trace_address) are minting legs."""
    ledger.ensure_chain("eth", "ethereum")
    ledger.write_batch("eth", {
        "blocks": {"number": [9], "hash": ["0xb9"], "miner": ["0xm"]},
        "transactions": {"hash": ["0xok", "0xoog"], "block_number": [9, 9],
                         "transaction_index": [0, 1], "from_address": ["0xa", "0xa"],
                         "to_address": ["0xb", "0xc"], "value": [5, 10**18], "gas_price": [1, 1]},
        "receipts": {"transaction_hash": ["0xok", "0xoog"], "block_number": [9, 9],
                     "gas_used": [21000, 90000], "status": [None, None], "root": ["0xr1", "0xr2"]},
        "traces": {"block_number": [9, 9, 9], "transaction_hash": ["0xok", "0xoog", None],
                   "from_address": ["0xa", "0xa", None], "to_address": ["0xb", "0xc", "0xm"],
                   "value": [5, 10**18, 5 * 10**18], "trace_type": ["call", "call", "reward"],
                   "call_type": ["call", "call", None], "reward_type": [None, None, "block"],
                   "trace_address": ["", "", ""], "status": [1, 0, 1],
                   "error": [None, "Out of gas", None]},
    }, (9, 9))
    rows = ledger.con.execute(
        "SELECT transaction_hash, kind, to_address, amount FROM eth.transfers ORDER BY ALL"
    ).fetchall()
    assert rows == [
        ("0xok", "fee", "0xm", 21000), ("0xok", "native", "0xb", 5),
        ("0xoog", "fee", "0xm", 90000),  # failed: no 1 ETH leg
        (None, "reward", "0xm", 5 * 10**18),
    ]


def test_inputs_resolved_when_prevouts_arrive_later(ledger: Ledger) -> None:
    """An out-of-order import (spend first, then the block with the coin) still resolves."""
    ledger.ensure_chain("btc", "bitcoin")
    ledger.write_batch("btc", {
        "blocks": {"number": [2], "hash": ["h2"]},
        "transactions": {"hash": ["spend"], "block_number": [2], "is_coinbase": [False],
                         "output_value": [90]},
        "outputs": {"transaction_hash": ["spend"], "block_number": [2], "index": [0],
                    "addresses": [["B"]], "value": [90]},
        "inputs": {"transaction_hash": ["spend"], "block_number": [2], "index": [0],
                   "spent_transaction_hash": ["coin"], "spent_output_index": [0]},
    }, (2, 2))
    assert ledger.con.execute("SELECT fee FROM btc.transactions").fetchall() == [(None,)]
    ledger.write_batch("btc", {
        "blocks": {"number": [1], "hash": ["h1"]},
        "transactions": {"hash": ["coin"], "block_number": [1], "is_coinbase": [True],
                         "output_value": [100]},
        "outputs": {"transaction_hash": ["coin"], "block_number": [1], "index": [0],
                    "addresses": [["A"]], "value": [100]},
    }, (1, 1))
    assert ledger.con.execute(
        "SELECT i.addresses, i.value, t.input_value, t.fee FROM btc.inputs i "
        "JOIN btc.transactions t ON t.hash = i.transaction_hash"
    ).fetchall() == [(["A"], 100, 100, 10)]


def test_sparse_parquet_import_keeps_the_gaps(tmp_path: Path) -> None:
    def blocks(led: Ledger, numbers: list[int]) -> None:
        led.ensure_chain("btc", "bitcoin")
        for n in numbers:
            led.write_batch("btc", {"blocks": {"number": [n], "hash": [f"h{n}"]}}, (n, n))

    with Ledger(tmp_path / "sparse.duckdb") as a:
        blocks(a, [1, 2, 9, 10])
        export_parquet(a, tmp_path / "pq")
    with Ledger(tmp_path / "full.duckdb") as b:
        blocks(b, list(range(1, 11)))
        import_parquet(b, tmp_path / "pq")
        assert [r[0] for r in b.con.execute("SELECT number FROM btc.blocks ORDER BY 1").fetchall()] == list(range(1, 11))


def test_query_after_scalar_helpers_and_huge_json(ledger: Ledger) -> None:
    from chainsleuth.store.sql import rows_as_dicts

    _eth_fixture(ledger)
    assert ledger.count("eth", "transactions") == 3 and ledger.tip("eth") == (7, "0xb7")
    big = ledger.query("SELECT CAST('123456789012345678901234567890123' AS HUGEINT) AS v")
    assert rows_as_dicts(big) == [{"v": "123456789012345678901234567890123"}]


def test_tip_after_delete_all_and_reinsert_in_reopened_file(tmp_path: Path) -> None:
    """Regression: DuckDB 1.5/2.0's top-N returned no row here, so tip() said empty."""
    db = tmp_path / "t.duckdb"
    with Ledger(db) as led:
        led.ensure_chain("btc", "bitcoin")
        for n in range(6):
            led.write_batch("btc", {"blocks": {"number": [n], "hash": [f"a{n}"]}}, (n, n))
    with Ledger(db) as led:
        led.rollback_to("btc", -1)
        led.write_batch("btc", {"blocks": {"number": [0, 1], "hash": ["x0", "x1"]}}, (0, 1))
        assert led.tip("btc") == (1, "x1")
        assert led.con.execute(
            "SELECT number FROM btc.blocks ORDER BY number DESC LIMIT 1").fetchall() == [(1,)]
