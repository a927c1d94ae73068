"""The XBlock phishing importer and the real-data leg (`chainsleuth demo --real`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chainsleuth.demo import RealSummary, run_real_demo
from chainsleuth.errors import ChainsleuthError, ConfigError
from chainsleuth.ingest.xblock import _topological, eth_to_wei, ingest_xblock, read_xblock
from chainsleuth.store import Ledger

HEADER = ",TxHash,BlockHeight,TimeStamp,From,To,Value,ContractAddress,Input,isError\n"
A = "0x" + "a" * 40
B = "0x" + "b" * 40
C = "0x" + "c" * 40


def _h(n: int) -> str:
    return "0x" + f"{n:064x}"


@pytest.mark.parametrize(("text", "wei"), [
    ("0.586269480000000000", 586_269_480_000_000_000),
    ("6.91400000000E-7", 691_400_000_000),
    ("0E-18", 0),
    ("25533.614517758401081460", 25_533_614_517_758_401_081_460),
    ("1E-18", 1),
    # 29 significant digits: more than Decimal's default context keeps (it gave ...680)
    ("12345678901.123456789012345678", 12_345_678_901_123_456_789_012_345_678),
    ("1.5E+3", 1_500 * 10**18),
    ("0E-999999999", 0),
    ("0E+999999999", 0),
])  # fmt: skip
def test_eth_to_wei_is_exact(text: str, wei: int) -> None:
    assert eth_to_wei(text) == wei


@pytest.mark.parametrize("text", ["1E-19", "0.0000000000000000001", "-1", "abc", "NaN", "1E+999999999", "1E-999999999", "Infinity"])
def test_eth_to_wei_refuses_what_is_not_whole_wei(text: str) -> None:
    with pytest.raises(ConfigError):
        eth_to_wei(text)


def test_topological_order_agrees_with_every_file() -> None:
    # file 1 says x < z, file 2 says z < y: x, z, y (not the hash order x, y, z)
    assert _topological(["x", "y", "z"], {("x", "z"), ("z", "y")}) == ["x", "z", "y"]
    # a cycle (files disagree) still yields every node once
    assert sorted(_topological(["p", "q"], {("p", "q"), ("q", "p")})) == ["p", "q"]


def _dataset(root: Path, files: dict[str, str], phishing: list[str]) -> Path:
    d = root / "xblock_eth_phishing_dsc180b"
    (d / "phishing accounts" / "phishing").mkdir(parents=True)
    (d / "phishing").mkdir()
    (d / "phishing accounts" / "phishing-address.txt").write_text("\r\n".join(phishing) + "\r\n")
    for name, body in files.items():
        (d / "phishing accounts" / "phishing" / name).write_text(HEADER + body)
    return root


def test_small_dataset_dedup_internal_calls_and_order(tmp_path: Path) -> None:
    # A receives 1.5 ETH from C, then (same block, later) sends 1 ETH to B; B's file lists
    # the same tx. A's contract forwards 0.25 ETH twice inside one tx (two equal calls).
    a_rows = (
        f"0,{_h(1)},100,1000,{C},{A},1.500000000000000000,NULL,0x,0\n"
        f"1,{_h(2)},100,1000,{A},{B},1.000000000000000000,NULL,0x,0\n"
        f"0,{_h(3)},101,1012,{A},{B},0.250000000000000000,NULL,NULL,0\n"
        f"1,{_h(3)},101,1012,{A},{B},0.250000000000000000,NULL,NULL,0\n"
        f"2,{_h(3)},101,1012,{C},{A},0E-18,NULL,0x,0\n"
        f"3,{_h(4)},102,1030,{A},{C},2.000000000000000000,NULL,0x,1\n"
    )
    b_rows = (
        f"0,{_h(2)},100,1000,{A},{B},1.000000000000000000,NULL,0x,0\n"
        f"0,{_h(3)},101,1012,{A},{B},0.250000000000000000,NULL,NULL,0\n"
        f"1,{_h(3)},101,1012,{A},{B},0.250000000000000000,NULL,NULL,0\n"
    )
    root = _dataset(tmp_path, {f"{A}.csv": a_rows, f"{B}.csv": b_rows}, [A])
    with Ledger(tmp_path / "x.duckdb") as led:
        res = ingest_xblock(led, root)
        assert (res.transactions, res.internal_calls, res.blocks) == (4, 2, 3)
        legs = led.con.execute(
            "SELECT transaction_hash, transaction_index, kind, from_address, to_address, amount "
            "FROM ethereum_xblock.transfers ORDER BY block_number, transaction_index, kind, position"
        ).fetchall()
        assert legs == [
            (_h(1), 0, "native", C, A, 1_500_000_000_000_000_000),
            (_h(2), 1, "native", A, B, 1_000_000_000_000_000_000),
            (_h(3), 0, "internal", A, B, 250_000_000_000_000_000),
            (_h(3), 0, "internal", A, B, 250_000_000_000_000_000),
        ]  # the failed tx 4 (isError=1) moves nothing
        again = ingest_xblock(led, root)
        assert again.rows == res.rows and led.count("ethereum_xblock", "transactions") == 4


def test_bad_value_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    root = _dataset(tmp_path, {f"{A}.csv": f"0,{_h(1)},100,1000,{C},{A},1E-19,NULL,0x,0\n"}, [A])
    with Ledger(tmp_path / "x.duckdb") as led:
        with pytest.raises(ConfigError, match="whole number of wei"):
            ingest_xblock(led, root)
        assert "ethereum_xblock" not in {c["name"] for c in led.chains()}


def test_conflicting_copies_are_refused(tmp_path: Path) -> None:
    rows_a = f"0,{_h(1)},100,1000,{C},{A},1.0,NULL,0x,0\n"
    rows_b = f"0,{_h(1)},100,1000,{C},{A},2.0,NULL,0x,0\n"
    root = _dataset(tmp_path, {f"{A}.csv": rows_a, f"{B}.csv": rows_b}, [A])
    with pytest.raises(ChainsleuthError, match="differs between account files"):
        read_xblock(root)


# ------------------------------------------------------------------------------ real files
@pytest.fixture(scope="module")
def real(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Ledger, RealSummary]]:
    if not (shared_data / "xblock_eth_phishing_dsc180b").is_dir():
        pytest.skip("xblock_eth_phishing_dsc180b not in the shared data")
    with Ledger(tmp_path_factory.mktemp("xb") / "real.duckdb") as led:
        yield led, run_real_demo(led, shared_data)


def test_real_files_are_ingested_exactly(real: tuple[Ledger, RealSummary]) -> None:
    led, s = real
    # 169,466 rows in 3,362 files (962 files in both folders); 100,629 distinct transactions
    assert (s.transactions, s.internal_calls) == (100_629, 8_589)
    assert (s.labelled_accounts, s.seed_accounts) == (1262, 1246)
    # phishing/0x002bf459....csv line 2: 0.586269480000000000 ETH from 0xd551... in block 5,659,116
    assert led.con.execute(
        "SELECT from_address, to_address, amount, block_number FROM ethereum_xblock.transfers "
        "WHERE transaction_hash = '0x8ce1d46abe9e2be0712ecc078bc8f3234ba4a4568e33402e158656163e01bf3d'"
    ).fetchall() == [("0xd551234ae421e3bcba99a0da6d736074f22192ff", "0x002bf459dc58584d58886169ea0e80f3ca95ffaf",
                      586_269_480_000_000_000, 5_659_116)]  # fmt: skip
    # a transaction listed in two account files is stored once
    assert led.con.execute("SELECT count(*) FROM ethereum_xblock.transactions GROUP BY hash HAVING count(*) > 1").fetchall() == []


def test_real_trace_reaches_labelled_exchanges(real: tuple[Ledger, RealSummary]) -> None:
    _, s = real
    by_label = {e["label"]: e["value"] for e in s.exchanges}
    # by hand from "phishing accounts/phishing/0x8ba95127....csv": six internal payouts to
    # Bittrex 0xfbb1b73c... of 0.12417871 + 0.10489233 + 0.1 + 0.145 + 0.35619 + 0.13700819 ETH
    assert by_label["Bittrex"] == 967_269_230_000_000_000
    # 0x414bca67....csv: three payouts of 0.1 ETH to Poloniex 2 (0x209c4784...)
    assert by_label["Poloniex 2"] == 300_000_000_000_000_000
    assert {"Binance", "Bitfinex"} <= {name for name, _ in s.exchange_totals()}
    # haircut conserves: seed value = endpoints + holdings + fees + untraced, to the wei
    assert s.result is not None
    ends = sum(e["value"] for e in s.exchanges) + sum(e["value"] for e in s.other_services)
    assert ends + s.holdings_value + s.fees + s.left_untraced == s.seed_value
    assert s.seed_value == s.result.seed_value["ETH"] > 0


def test_demo_real_cli(shared_data: Path, tmp_path: Path) -> None:
    if not (shared_data / "xblock_eth_phishing_dsc180b").is_dir():
        pytest.skip("xblock_eth_phishing_dsc180b not in the shared data")
    proc = subprocess.run(
        [sys.executable, "-m", "chainsleuth.cli.main", "--db", str(tmp_path / "d.duckdb"), "--quiet", "demo", "--real"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "CHAINSLEUTH_DATA": str(shared_data)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Bittrex" in proc.stdout and "0.967269230000000000" in proc.stdout
