"""Ethereum RPC ingest against a real anvil node: exact values, reconciliation, reorgs, kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from chainsleuth.errors import ConfigError
from chainsleuth.ingest.base import NullProgress
from chainsleuth.ingest.ethereum_rpc import ingest_ethereum_rpc
from chainsleuth.store import Ledger
from chainsleuth.store.schema import ETHEREUM_TABLES
from nodes_ethereum import AnvilNode, free_port

pytestmark = pytest.mark.node

TOKEN_SUPPLY = 2**130  # beyond HUGEINT: the mint leg goes to amount_overflow
CHAIN = "anvil"


def build_scenario(node: AnvilNode) -> dict[str, Any]:
    """Native, token, internal, reverted-inner and failed transactions; one multi-tx block."""
    a = node.accounts
    token = node.deploy("TestToken", TOKEN_SUPPLY)
    fwd = node.deploy("Forwarder")
    rev = node.deploy("Reverter")
    for i in range(6):
        node.tx(a[0], a[1 + i % 3], 10**18 + i)
    node.tx(a[0], token, 0, node.calldata("TestToken", "transfer(address,uint256)", a[2], 12345))
    node.tx(a[0], token, 0, node.calldata("TestToken", "transfer(address,uint256)", fwd, 2**100))
    fwd_tx = node.tx(a[1], fwd, 3 * 10**17 + 1, node.calldata("Forwarder", "forward(address[])", [a[3], a[4]]))
    try_tx = node.tx(a[1], fwd, 10**17, node.calldata("Forwarder", "tryForward(address,address)", rev, a[5]),
                     gas=300_000)
    failed_tx = node.tx(a[2], rev, 5, node.calldata("Reverter", "fail()"), gas=100_000)
    node.set_automine(False)
    multi = [node.tx(a[3], a[6], 777), node.tx(a[4], token, 0, "0x"),  # no fallback: fails
             node.tx(a[0], token, 0, node.calldata("TestToken", "transfer(address,uint256)", a[6], 5))]
    node.mine()
    node.set_automine(True)
    for i in range(12):  # more blocks, for resumption tests
        node.tx(a[5], a[7], 1000 + i)
    return {"token": token, "fwd": fwd, "rev": rev, "fwd_tx": fwd_tx, "try_tx": try_tx,
            "failed_tx": failed_tx, "multi": multi, "tip": node.block_number()}


@pytest.fixture(scope="module")
def scenario(anvil: AnvilNode) -> dict[str, Any]:
    return build_scenario(anvil)


def dump(led: Ledger, chain: str = CHAIN) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table, cols in ETHEREUM_TABLES.items():
        names = ", ".join(f'"{c}"' for c, _ in cols)
        out[table] = led.con.execute(f'SELECT {names} FROM "{chain}"."{table}" ORDER BY ALL').fetchall()
    return out


def leg_sum(led: Ledger, address: str, asset: str) -> int:
    rows = led.con.execute(
        f"""SELECT from_address, to_address, amount, amount_overflow FROM "{CHAIN}".transfers
            WHERE asset = ? AND (from_address = ? OR to_address = ?)""", [asset, address, address]).fetchall()
    total = 0
    for frm, to, amount, overflow in rows:
        value = int(overflow) if overflow is not None else int(amount)
        total += (value if to == address else 0) - (value if frm == address else 0)
    return total


@pytest.mark.parametrize("traces", ["parity", "geth"])
def test_ingest_reconciles_with_node(anvil: AnvilNode, scenario: dict[str, Any], tmp_path: Path,
                                     traces: str) -> None:
    tip = scenario["tip"]
    with Ledger(tmp_path / "l.duckdb") as led:
        res = ingest_ethereum_rpc(led, anvil.rpc_url, chain=CHAIN, end=tip, traces=traces, batch_size=4, workers=3)
        assert (res.blocks, res.first_block, res.last_block) == (tip + 1, 0, tip)
        n_tx = sum(len(anvil.rpc("eth_getBlockByNumber", hex(n), False)["transactions"]) for n in range(tip + 1))
        assert res.transactions == n_tx == led.count(CHAIN, "transactions") == led.count(CHAIN, "receipts")
        # Every account's ETH balance change equals the sum of its transfer legs (fees included).
        accounts = [*anvil.accounts[:8], scenario["token"], scenario["fwd"], scenario["rev"]]
        for acct in accounts:
            change = anvil.balance(acct, tip) - anvil.balance(acct, 0)
            assert leg_sum(led, acct, "ETH") == change, acct
        # Token balances, including the mint beyond HUGEINT.
        token = scenario["token"]
        for acct in [*anvil.accounts[:8], scenario["fwd"]]:
            bal = anvil.call_view(token, "TestToken", "balanceOf(address)", acct)
            assert leg_sum(led, acct, token) == bal, acct
        mint = led.con.execute(f'SELECT value, value_overflow FROM "{CHAIN}".token_transfers '
                               "WHERE from_address = '0x' || repeat('0', 40)").fetchall()
        assert mint == [(None, str(TOKEN_SUPPLY))]
        # The reverted inner call: its successful child carries status 0 too.
        traces_of_try = led.con.execute(
            f'SELECT trace_address, status, value, error IS NOT NULL FROM "{CHAIN}".traces '
            "WHERE transaction_hash = ? ORDER BY trace_address NULLS FIRST", [scenario["try_tx"]]).fetchall()
        assert traces_of_try == [(None, 1, 10**17, False), ("0", 0, 10**17, True), ("0,0", 0, 10**17, False)]
        internal = led.con.execute(
            f"""SELECT to_address, amount FROM "{CHAIN}".transfers WHERE transaction_hash = ? AND kind = 'internal'
                ORDER BY position""", [scenario["fwd_tx"]]).fetchall()
        half = (3 * 10**17 + 1) // 2
        assert internal == [(anvil.accounts[3], half), (anvil.accounts[4], half)]
        statuses = dict(led.con.execute(f'SELECT transaction_hash, status FROM "{CHAIN}".receipts').fetchall())
        assert statuses[scenario["failed_tx"]] == 0 and statuses[scenario["multi"][1]] == 0
        assert statuses[scenario["multi"][0]] == 1
        ts = led.con.execute(f'SELECT count(*) FROM "{CHAIN}".transactions t JOIN "{CHAIN}".blocks b '
                             "ON b.number = t.block_number WHERE t.block_timestamp = b.timestamp").fetchone()
        assert ts is not None and ts[0] == n_tx


def test_ingest_twice_is_identical_and_resumes(anvil: AnvilNode, scenario: dict[str, Any], tmp_path: Path) -> None:
    tip = scenario["tip"]
    with Ledger(tmp_path / "a.duckdb") as led:
        ingest_ethereum_rpc(led, anvil.rpc_url, chain=CHAIN, end=tip, batch_size=5)
        first = dump(led)
        again = ingest_ethereum_rpc(led, anvil.rpc_url, chain=CHAIN, start=0, end=tip, batch_size=5)
        assert (again.skipped_blocks, again.blocks) == (tip + 1, 0)
        assert dump(led) == first
    with Ledger(tmp_path / "b.duckdb") as led:  # in two halves, resuming after the tip
        ingest_ethereum_rpc(led, anvil.rpc_url, chain=CHAIN, end=tip // 2, batch_size=3)
        res = ingest_ethereum_rpc(led, anvil.rpc_url, chain=CHAIN, end=tip, batch_size=3)
        assert res.first_block == tip // 2 + 1
        assert dump(led) == first


def test_reorg_rolls_back_orphans(anvil_fresh: AnvilNode, tmp_path: Path) -> None:
    node = anvil_fresh
    a = node.accounts
    for i in range(3):
        node.tx(a[0], a[1], 100 + i)
    snap = node.rpc("evm_snapshot")
    fork = node.block_number()
    orphans = [node.tx(a[0], a[2], 200 + i) for i in range(3)]
    with Ledger(tmp_path / "r.duckdb") as led:
        ingest_ethereum_rpc(led, node.rpc_url, chain=CHAIN)
        assert node.rpc("evm_revert", snap) is True
        for i in range(5):  # a longer, different branch
            node.tx(a[3], a[4], 300 + i)
        progress = NullProgress()
        res = ingest_ethereum_rpc(led, node.rpc_url, chain=CHAIN, progress=progress)
        assert res.reorgs == [(fork, 3)]
        assert any("reorg" in m for m in progress.messages)
        hashes = {r[0] for r in led.con.execute(f'SELECT hash FROM "{CHAIN}".transactions').fetchall()}
        assert not hashes & set(orphans)
        got = dump(led)
    with Ledger(tmp_path / "clean.duckdb") as clean:
        ingest_ethereum_rpc(clean, node.rpc_url, chain=CHAIN)
        assert dump(clean) == got


def _trace_count(led: Ledger, upto: int) -> int:
    row = led.con.execute(f'SELECT count(*) FROM "{CHAIN}".traces WHERE block_number <= ?', [upto]).fetchone()
    assert row is not None
    return int(row[0])


def test_rerun_with_traces_adds_them_and_untraced_run_keeps_them(
    anvil: AnvilNode, scenario: dict[str, Any], tmp_path: Path
) -> None:
    tip = scenario["tip"]
    with Ledger(tmp_path / "clean.duckdb") as clean:
        ingest_ethereum_rpc(clean, anvil.rpc_url, chain=CHAIN, end=tip, traces="parity")
        want = dump(clean)
    with Ledger(tmp_path / "t.duckdb") as led:
        ingest_ethereum_rpc(led, anvil.rpc_url, chain=CHAIN, end=tip, traces="none", batch_size=4)
        assert led.count(CHAIN, "traces") == 0
        # The same blocks again, now with traces: not skipped, traces and internal legs added.
        res = ingest_ethereum_rpc(led, anvil.rpc_url, chain=CHAIN, start=0, end=tip, traces="parity",
                                  batch_size=4)
        assert (res.blocks, res.skipped_blocks) == (tip + 1, 0)
        assert dump(led) == want
        internal = led.con.execute(f"""SELECT count(*) FROM "{CHAIN}".transfers
                                       WHERE transaction_hash = ? AND kind = 'internal'""",
                                   [scenario["fwd_tx"]]).fetchone()
        assert internal == (2,)
        again = ingest_ethereum_rpc(led, anvil.rpc_url, chain=CHAIN, start=0, end=tip, traces="parity")
        assert (again.blocks, again.skipped_blocks) == (0, tip + 1)
        # Without traces, stored traced blocks already hold everything: skipped.
        untraced = ingest_ethereum_rpc(led, anvil.rpc_url, chain=CHAIN, start=0, end=tip, traces="none")
        assert (untraced.blocks, untraced.skipped_blocks) == (0, tip + 1)
        assert dump(led) == want
    with Ledger(tmp_path / "half.duckdb") as led:
        # Traced up to the middle, then one untraced batch over everything: it
        # rewrites the stored half but must keep the traces it did not fetch.
        half = tip // 2
        ingest_ethereum_rpc(led, anvil.rpc_url, chain=CHAIN, end=half, traces="parity")
        traced = _trace_count(led, half)
        assert traced > 0
        res = ingest_ethereum_rpc(led, anvil.rpc_url, chain=CHAIN, start=0, end=tip, traces="none",
                                  batch_size=tip + 1)
        assert res.blocks == tip + 1
        assert _trace_count(led, half) == traced and led.count(CHAIN, "traces") == traced
        # A traced run then fetches only what lacks traces, and ends equal to a clean one.
        res = ingest_ethereum_rpc(led, anvil.rpc_url, chain=CHAIN, start=0, end=tip, traces="parity",
                                  batch_size=1)
        assert (res.blocks, res.skipped_blocks) == (tip - half, half + 1)
        assert dump(led) == want


def test_shorter_chain_after_node_restart_is_a_reorg(anvil_fresh: AnvilNode, tmp_path: Path) -> None:
    """A restarted dev node has fewer, different blocks: roll back, report, re-ingest."""
    node = anvil_fresh
    a = node.accounts
    for i in range(4):
        node.tx(a[0], a[1], 100 + i)
    with Ledger(tmp_path / "r.duckdb") as led:
        ingest_ethereum_rpc(led, node.rpc_url, chain=CHAIN)
        assert led.count(CHAIN, "blocks") == 5
        node.stop()
        time.sleep(1.1)  # a new genesis timestamp, so a new genesis hash
        node.start()
        node.tx(a[2], a[3], 7)
        progress = NullProgress()
        res = ingest_ethereum_rpc(led, node.rpc_url, chain=CHAIN, progress=progress)
        assert res.reorgs == [(-1, 5)]
        assert any("reorg" in m and "below the stored tip" in m for m in progress.messages)
        got = dump(led)
        hashes = [r[0] for r in led.con.execute(f'SELECT hash FROM "{CHAIN}".blocks ORDER BY number').fetchall()]
        assert hashes == [node.rpc("eth_getBlockByNumber", hex(n), False)["hash"] for n in range(2)]
    with Ledger(tmp_path / "clean.duckdb") as clean:
        ingest_ethereum_rpc(clean, node.rpc_url, chain=CHAIN)
        assert dump(clean) == got


def test_node_behind_the_stored_tip_keeps_blocks(anvil_fresh: AnvilNode, tmp_path: Path) -> None:
    """A node whose latest block is a stored block is behind, not forked: nothing removed."""
    node = anvil_fresh
    a = node.accounts
    node.tx(a[0], a[1], 1)
    snap = node.rpc("evm_snapshot")
    node.tx(a[0], a[1], 2)
    with Ledger(tmp_path / "r.duckdb") as led:
        ingest_ethereum_rpc(led, node.rpc_url, chain=CHAIN)
        before = dump(led)
        assert node.rpc("evm_revert", snap) is True
        progress = NullProgress()
        res = ingest_ethereum_rpc(led, node.rpc_url, chain=CHAIN, progress=progress)
        assert (res.blocks, res.reorgs) == (0, [])
        assert any("behind" in m for m in progress.messages)
        assert dump(led) == before


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "chainsleuth.cli.main", *args]


def test_kill9_then_rerun_equals_clean(anvil: AnvilNode, scenario: dict[str, Any], tmp_path: Path) -> None:
    tip = scenario["tip"]
    db = tmp_path / "k.duckdb"
    cmd = _cli("--db", str(db), "-q", "ingest", "ethereum", "--rpc", anvil.rpc_url, "--chain", CHAIN,
               "--to", str(tip), "--batch-size", "1", "--workers", "1")
    tips = []
    for delay in (0.3, 0.45, 0.6, 0.8):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not db.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # the ledger file appears when the run starts writing
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with Ledger(db) as led:
            t = led.tip(CHAIN) if led.chains() else None
            tips.append(t[0] if t else -1)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    with Ledger(tmp_path / "clean.duckdb") as clean, Ledger(db) as led:
        ingest_ethereum_rpc(clean, anvil.rpc_url, chain=CHAIN, end=tip)
        assert dump(led) == dump(clean)
    # At least one kill landed mid-ingest (the test must exercise a partial ledger).
    assert any(t < tip for t in tips), tips
    print("tips after kill -9:", tips)


def test_unreachable_node_is_a_clear_error(tmp_path: Path) -> None:


    url = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(_cli("--db", str(tmp_path / "u.duckdb"), "-q", "ingest", "ethereum", "--rpc", url),
                          capture_output=True, text=True, timeout=120, check=False, env=env)
    assert proc.returncode == 2
    assert "cannot reach the node" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout


def test_from_beyond_latest_and_bad_traces(anvil: AnvilNode, scenario: dict[str, Any], ledger: Ledger) -> None:
    with pytest.raises(ConfigError, match="beyond the node's latest block"):
        ingest_ethereum_rpc(ledger, anvil.rpc_url, chain=CHAIN, start=scenario["tip"] + 1000)
    with pytest.raises(ConfigError, match="traces"):
        ingest_ethereum_rpc(ledger, anvil.rpc_url, chain=CHAIN, traces="erigon")
