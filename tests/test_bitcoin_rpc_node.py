"""RPC ingest against a real Bitcoin Knots regtest node (see tests/nodes_bitcoin.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from chainsleuth.errors import ConfigError
from chainsleuth.ingest.base import NullProgress
from chainsleuth.ingest.bitcoin_rpc import ingest_bitcoin_rpc
from chainsleuth.store import Ledger
from chainsleuth.store.schema import BITCOIN_TABLES

pytestmark = pytest.mark.node

CHAIN = "bitcoin_regtest"
CLI = str(Path(sys.executable).with_name("chainsleuth"))


@pytest.fixture(scope="module")
def active_node(bitcoind: Any) -> Any:
    from nodes_bitcoin import make_activity

    make_activity(bitcoind)
    return bitcoind


def _ingest(path: Path, url: str, **kw: Any) -> Any:
    with Ledger(path) as led:
        return ingest_bitcoin_rpc(led, url, **kw)


def _diff(a: Path, b: Path) -> dict[str, tuple[int, int, int]]:
    """Per table: (rows in a, rows only in a, rows only in b), comparing all columns."""
    con = duckdb.connect()
    con.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
    out = {}
    for table in BITCOIN_TABLES:
        q = f'SELECT * FROM {{}}.{CHAIN}."{table}"'
        n = con.execute(f"SELECT count(*) FROM ({q.format('a')})").fetchone()
        only_a = con.execute(f"SELECT count(*) FROM ({q.format('a')} EXCEPT ALL {q.format('b')})").fetchone()
        only_b = con.execute(f"SELECT count(*) FROM ({q.format('b')} EXCEPT ALL {q.format('a')})").fetchone()
        assert n and only_a and only_b
        out[table] = (n[0], only_a[0], only_b[0])
    con.close()
    return out


def _assert_same(a: Path, b: Path) -> None:
    diff = _diff(a, b)
    assert all(v[1] == 0 and v[2] == 0 for v in diff.values()), diff
    assert diff["blocks"][0] > 0


def _sat(d: Decimal) -> int:
    return int(d * 100_000_000)


@pytest.mark.parametrize("raw", [True, False], ids=["raw-blocks", "json-verbosity3"])
def test_ingest_matches_node(active_node: Any, tmp_path: Path, raw: bool) -> None:
    node = active_node
    top = node.height()
    res = _ingest(tmp_path / "l.duckdb", node.rpc_url, batch_size=7, workers=3, raw=raw)
    assert res.chain == CHAIN and res.blocks == top + 1 and res.first_block == 0
    con = duckdb.connect(str(tmp_path / "l.duckdb"), read_only=True)
    s = CHAIN
    seen_types: set[str] = set()
    n_checked = 0
    for h in range(top + 1):
        blk = node.rpc_exact("getblock", node.rpc("getblockhash", h), 3)
        txs = con.execute(
            f'SELECT hash, is_coinbase, input_value, output_value, fee, input_count, output_count '
            f'FROM {s}.transactions WHERE block_number = ? ORDER BY "index"', [h]).fetchall()
        assert [t[0] for t in txs] == [t["txid"] for t in blk["tx"]]
        row = con.execute(f"SELECT hash, previous_block_hash, coinbase_param, transaction_count "
                          f"FROM {s}.blocks WHERE number = ?", [h]).fetchone()
        assert row == (blk["hash"], blk.get("previousblockhash"), blk["tx"][0]["vin"][0]["coinbase"],
                       len(blk["tx"]))
        for (txid, is_cb, in_v, out_v, fee, n_in, n_out), tx in zip(txs, blk["tx"], strict=True):
            outs = con.execute(f'SELECT "index", value, addresses, type FROM {s}.outputs '
                               f'WHERE transaction_hash = ? ORDER BY "index"', [txid]).fetchall()
            assert len(outs) == n_out == len(tx["vout"])
            for (idx, val, addrs, typ), vo in zip(outs, tx["vout"], strict=True):
                spk = vo["scriptPubKey"]
                assert (idx, val, typ) == (vo["n"], _sat(vo["value"]), spk["type"])
                seen_types.add(typ)
                if "address" in spk:
                    assert addrs == [spk["address"]]
                elif typ in ("pubkey", "multisig"):
                    assert addrs and all(a.startswith(("m", "n")) for a in addrs)  # regtest P2PKH
                else:
                    assert typ == "nulldata" and addrs == []
            assert out_v == sum(_sat(v["value"]) for v in tx["vout"])
            if is_cb:
                assert (n_in, in_v, fee) == (0, 0, 0)
                continue
            ins = con.execute(f'SELECT spent_transaction_hash, spent_output_index, value, type, addresses '
                              f'FROM {s}.inputs WHERE transaction_hash = ? ORDER BY "index"', [txid]).fetchall()
            assert len(ins) == n_in == len(tx["vin"])
            for (ptx, pn, val, typ, addrs), vi in zip(ins, tx["vin"], strict=True):
                assert (ptx, pn, val, typ) == (vi["txid"], vi["vout"], _sat(vi["prevout"]["value"]),
                                               vi["prevout"]["scriptPubKey"]["type"])
                stored = con.execute(f'SELECT value, addresses FROM {s}.outputs WHERE transaction_hash = ? '
                                     f'AND "index" = ?', [ptx, pn]).fetchone()
                assert stored == (val, addrs)
            assert in_v == sum(_sat(v["prevout"]["value"]) for v in tx["vin"])
            assert fee == in_v - out_v == _sat(tx["fee"])
            n_checked += 1
    con.close()
    assert n_checked >= 8
    assert {"pubkey", "pubkeyhash", "scripthash", "witness_v0_keyhash", "witness_v1_taproot",
            "multisig", "nulldata"} <= seen_types


def test_twice_identical_and_verbosity2_equal(active_node: Any, tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.duckdb", tmp_path / "b.duckdb", tmp_path / "c.duckdb"
    end = active_node.height()
    _ingest(a, active_node.rpc_url, end=end)
    _ingest(b, active_node.rpc_url, end=end)
    res = _ingest(b, active_node.rpc_url, start=0, end=end)  # a range already stored
    assert res.skipped_blocks == end + 1 and res.blocks == 0
    _assert_same(a, b)
    # every fetch mode gives the same rows: raw blocks (the default from genesis),
    # JSON verbosity 3, and the old-node path (verbosity 2 + store/getrawtransaction prevouts)
    _ingest(c, active_node.rpc_url, end=end, verbosity=2, batch_size=10)
    _assert_same(a, c)
    e = tmp_path / "e.duckdb"
    _ingest(e, active_node.rpc_url, end=end, raw=False)
    _assert_same(a, e)
    d = tmp_path / "d.duckdb"
    _ingest(d, active_node.rpc_url, start=150, end=end, verbosity=2)  # prevouts only via RPC
    with Ledger(d) as led:
        assert led.con.execute(f"SELECT count(*) FROM {CHAIN}.inputs WHERE value IS NULL").fetchone() == (0,)


def test_resume_after_partial_range(active_node: Any, tmp_path: Path) -> None:
    full, part = tmp_path / "full.duckdb", tmp_path / "part.duckdb"
    end = active_node.height()
    _ingest(full, active_node.rpc_url, end=end)
    r1 = _ingest(part, active_node.rpc_url, start=0, end=end // 2)
    r2 = _ingest(part, active_node.rpc_url, end=end)
    assert (r1.last_block, r2.first_block, r2.last_block) == (end // 2, end // 2 + 1, end)
    _assert_same(full, part)


def test_bad_ranges(active_node: Any, tmp_path: Path) -> None:
    tip = active_node.height()
    with Ledger(tmp_path / "x.duckdb") as led:
        with pytest.raises(ConfigError, match="beyond the node's tip"):
            ingest_bitcoin_rpc(led, active_node.rpc_url, start=tip + 5)
        with pytest.raises(ConfigError, match="beyond the node's tip"):
            ingest_bitcoin_rpc(led, active_node.rpc_url, start=0, end=tip + 1)


def test_reorgs(fresh_bitcoind: Any, tmp_path: Path) -> None:
    node = fresh_bitcoind
    node.mine(120)
    store = tmp_path / "s.duckdb"
    _ingest(store, node.rpc_url)
    # 1. longer competing branch from height 115
    node.rpc("invalidateblock", node.rpc("getblockhash", 115))
    other = node.rpc("getnewaddress", "", "bech32m", wallet="w")
    node.mine(8, address=other)
    progress = NullProgress()
    with Ledger(store) as led:
        res = ingest_bitcoin_rpc(led, node.rpc_url, progress=progress, batch_size=4)
    assert res.reorgs == [(114, 6)] and any("reorg" in m for m in progress.messages)
    fresh = tmp_path / "f1.duckdb"
    _ingest(fresh, node.rpc_url)
    _assert_same(store, fresh)
    # 2. a shorter branch (stored tip no longer on the best chain, nothing above it to fetch)
    node.rpc("invalidateblock", node.rpc("getblockhash", 120))
    node.mine(1, address=node.miner_address)  # new 120 on top of 119
    node.rpc("invalidateblock", node.rpc("getblockhash", 118))  # best chain now ends at 117
    res = _ingest(store, node.rpc_url)
    assert res.reorgs and res.reorgs[0][0] == 117
    fresh = tmp_path / "f2.duckdb"
    _ingest(fresh, node.rpc_url)
    _assert_same(store, fresh)
    # 3. reconsiderblock brings the longer branch back
    node.rpc("reconsiderblock", _hash_at(node, 118))
    res = _ingest(store, node.rpc_url)
    assert node.height() >= 120
    fresh = tmp_path / "f3.duckdb"
    _ingest(fresh, node.rpc_url)
    _assert_same(store, fresh)


def _hash_at(node: Any, height: int) -> str:
    """The hash of the invalidated block at ``height`` (from the node's chain tips)."""
    for tip in node.rpc("getchaintips"):
        if tip["status"] == "invalid" and tip["height"] - tip["branchlen"] < height <= tip["height"]:
            blk = node.rpc("getblockheader", tip["hash"])
            while blk["height"] > height:
                blk = node.rpc("getblockheader", blk["previousblockhash"])
            return str(blk["hash"])
    raise AssertionError("no invalid branch")


def _cli(db: Path, url: str, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CLI, "--db", str(db), "--quiet", "ingest", "bitcoin", "--rpc", url, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})},
    )


def test_kill9_then_rerun_equals_clean(active_node: Any, tmp_path: Path) -> None:
    end = active_node.height()
    args = ("--batch-size", "1", "--workers", "1", "--to", str(end))
    clean = tmp_path / "clean.duckdb"
    t0 = time.monotonic()
    proc = _cli(clean, active_node.rpc_url, *args)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    full = time.monotonic() - t0  # kill at fractions of a whole run (start-up included)
    db = tmp_path / "killed.duckdb"
    tips = []
    for frac in (0.4, 0.55, 0.7, 0.85):
        proc = _cli(db, active_node.rpc_url, *args)
        time.sleep(full * frac)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        if db.exists():
            with Ledger(db) as led:
                tip = led.tip(CHAIN) if led.chains() else None
            tips.append(-1 if tip is None else tip[0])
    print("tips after kill -9:", tips)
    assert any(0 <= t < end for t in tips), tips  # some kills really landed mid-ingest
    proc = _cli(db, active_node.rpc_url, *args)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    _assert_same(clean, db)


def test_wrong_password_exit_2(active_node: Any, tmp_path: Path) -> None:
    url = active_node.rpc_url.replace(":cs-regtest@", ":wrong@")
    proc = _cli(tmp_path / "w.duckdb", url)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "refused the credentials" in out + err and "wrong" not in out + err
    assert "Traceback" not in out + err


def test_unreachable_node_clear_message(tmp_path: Path) -> None:
    from nodes_bitcoin import free_port

    url = f"http://u:p@127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    proc = _cli(tmp_path / "u.duckdb", url,
                env={"CHAINSLEUTH_RPC_RETRIES": "2", "CHAINSLEUTH_RPC_BACKOFF": "0.05"})
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "cannot reach the node" in out + err and "after 3 attempts" in out + err
    assert "Traceback" not in out + err
    assert time.monotonic() - t0 < 30
