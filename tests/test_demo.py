"""The README's main job: `chainsleuth demo` on the real shared data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chainsleuth.demo import run_demo
from chainsleuth.store import Ledger


def test_demo_ingests_real_blocks_and_summarises(shared_data: Path, tmp_path: Path) -> None:
    with Ledger(tmp_path / "demo.duckdb") as ledger:
        summary = run_demo(ledger, shared_data)
        # genesis: 50 BTC to Satoshi's P2PK key, shown as its P2PKH address (bitcoin-etl convention)
        assert ledger.con.execute(
            "SELECT addresses, value, type FROM bitcoin.outputs WHERE block_number = 0"
        ).fetchall() == [(["1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"], 5_000_000_000, "pubkey")]
        heights = [r[0] for r in ledger.con.execute(
            "SELECT number FROM bitcoin.blocks ORDER BY number").fetchall()]
        assert heights[0] == 0 and 176149 in heights and len(heights) == 6
        assert ledger.tip("bitcoin_testnet") == (
            0, "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943")
        # ethereum mainnet blocks 17173049-17173050 from ethereum-etl's stream export
        assert ledger.count("ethereum", "transactions") == 298
        assert ledger.count("ethereum", "token_transfers") == 291
        # fee legs (burnt + tip) add up to what the receipts say was paid
        paid, legs = ledger.con.execute(
            """SELECT (SELECT sum(CAST(gas_used AS HUGEINT) * effective_gas_price) FROM ethereum.receipts),
                      (SELECT sum(amount) FROM ethereum.transfers WHERE kind = 'fee')""").fetchall()[0]
        assert paid == legs and paid > 0
        # a second run changes nothing
        before = {t: ledger.count("bitcoin", t) for t in ("blocks", "transactions", "inputs", "outputs")}
        run_demo(ledger, shared_data)
        assert {t: ledger.count("bitcoin", t) for t in before} == before
    assert summary.bitcoin_conservation["violations"] == 0
    assert summary.bitcoin_conservation["resolved_spends"] > 0
    kinds = {(r["kind"], r["asset"]): r["legs"] for r in summary.ethereum_by_kind}
    assert kinds[("token", "tokens")] == 291
    # London-era blocks: every tx burns a base fee (298 legs) and most tip the miner
    assert kinds[("fee", "ETH")] > 298


def test_demo_cli_runs_without_error(shared_data: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "chainsleuth.cli.main", "--db", str(tmp_path / "d.duckdb"), "--quiet", "demo"],
        capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "CHAINSLEUTH_DATA": str(shared_data)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "pubkeyhash" in proc.stdout and "most transferred tokens" in proc.stdout
