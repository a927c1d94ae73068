"""The persistent trace index of account chains: built once, reused by later sessions,
rebuilt when the ledger changes (new blocks, reorg rollback), never written on a
read-only ledger, and giving the same traces as the direct load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chainsleuth.flows import trace_index
from chainsleuth.flows.trace import trace
from chainsleuth.store import Ledger
from test_flows_models import write_account_blocks

BLOCKS: list[list[dict[str, Any]]] = [
    [{"from": "0xfund", "to": "0xthief", "value": 100}],
    [{"from": "0xclean", "to": "0xmule", "value": 300}],
    [{"from": "0xthief", "to": "0xmule", "value": 100, "gas_fee": 4}],
    [{"from": "0xmule", "to": "0xd", "value": 200}],
]


def _held(r: Any) -> dict[str, int]:
    return {h["address"]: h["value"] for h in r.holdings}


def test_index_reused_rebuilt_and_rolled_back(tmp_path: Path) -> None:
    db = tmp_path / "i.duckdb"
    with Ledger(db) as led:
        write_account_blocks(led, "eth", BLOCKS[:3])
        assert trace_index.index_info(led, "eth") is None
        r = trace(led, "eth", ["0xthief"])
        assert _held(r) == {"0xmule": 100}
        info = trace_index.index_info(led, "eth")
        assert info is not None and info["legs"] == 4 and info["fits_int64"]  # 3 value legs, 1 gas leg
        side = trace_index.load_sidecar(led, "eth", info["key"])  # the arrays, written by that trace
        assert side is not None and side["n_states"] == 5  # fund, thief, clean, mule, miner
        assert [int(x) for x in side["src"]] == [1, 0, 4, 4]  # ids in address order: clean 0, fund 1, miner 2, mule 3, thief 4
        assert [int(x) for x in side["amount"]] == [100, 300, 100, 4]  # time order; gas after its value leg
    with Ledger(db) as led:  # a new session reads the stored index, it does not rebuild it
        assert trace_index.fresh_index(led, "eth") == info
        assert _held(trace(led, "eth", ["0xthief"])) == {"0xmule": 100}
        assert trace_index.index_info(led, "eth") == info
        write_account_blocks(led, "eth", BLOCKS)  # blocks 0-2 rewritten as they were, block 3 appended
        assert trace_index.fresh_index(led, "eth") is None  # the tip moved: stale
        # mule holds 400 with 100 tainted and pays 200: 50 of it
        assert _held(trace(led, "eth", ["0xthief"])) == {"0xmule": 50, "0xd": 50}
        assert trace_index.fresh_index(led, "eth") is not None
        led.rollback_to("eth", 2)  # a reorg removes block 3 again
        assert trace_index.fresh_index(led, "eth") is None
        stale = trace_index.index_info(led, "eth")
        assert stale is not None and trace_index.load_sidecar(led, "eth", trace_index.ledger_key(led, "eth")) is None
        assert _held(trace(led, "eth", ["0xthief"])) == {"0xmule": 100}
        # a damaged sidecar is not trusted: the arrays are read from the index tables again
        (trace_index.sidecar_dir(led, "eth") / "meta.json").write_text("{not json")
    with Ledger(db) as led:
        assert _held(trace(led, "eth", ["0xthief"])) == {"0xmule": 100}
        assert trace_index.load_sidecar(led, "eth", trace_index.ledger_key(led, "eth")) is not None
        trace_index.drop_index(led, "eth")
        assert trace_index.index_info(led, "eth") is None and not trace_index.sidecar_dir(led, "eth").exists()


def test_read_only_and_windows_match_the_direct_load(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    with Ledger(db) as led:
        write_account_blocks(led, "eth", BLOCKS)
    t2 = 1_600_000_000 + 12 * 2  # the time of block 2
    cases: list[dict[str, Any]] = [{}, {"since": t2}, {"until": t2}, {"backward": True}, {"model": "fifo"}]
    with Ledger(db, read_only=True) as led:  # no index may be written: the direct load
        direct = [trace(led, "eth", ["0xthief" if not c.get("backward") else "0xd"], **c).to_json() for c in cases]
        assert trace_index.index_info(led, "eth") is None
    with Ledger(db) as led:
        indexed = [trace(led, "eth", ["0xthief" if not c.get("backward") else "0xd"], **c).to_json() for c in cases]
        assert trace_index.index_info(led, "eth") is not None
    assert indexed == direct
    # since block 2: the thief's balance predates the window (a seed's shortfall is seed value:
    # 100 + its gas 4); mule's 300 too, so its 200 to d draws 100 clean before the window
    assert direct[1]["seed_value"] == {"ETH": "104"} and direct[1]["fees"] == {"ETH": "4"}
    assert direct[1]["holdings"] == [{"address": "0xd", "asset": "ETH", "value": "100"}]
    assert direct[2]["holdings"] == [{"address": "0xmule", "asset": "ETH", "value": "100"}]


def test_trace_index_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from chainsleuth.cli.main import app
    from chainsleuth.entities.synthetic import Tx, write_utxo_blocks

    db = tmp_path / "c.duckdb"
    with Ledger(db) as led:
        write_account_blocks(led, "eth", BLOCKS)
    run = CliRunner()
    out = run.invoke(app, ["--db", str(db), "trace-index"])
    assert out.exit_code == 0 and "trace index of eth: 5 legs, built in" in out.output, out.output
    out = run.invoke(app, ["--db", str(db), "trace-index", "--chain", "eth"])
    assert out.exit_code == 0 and "5 legs, up to date" in out.output
    out = run.invoke(app, ["--db", str(db), "trace-index", "--drop"])
    assert out.exit_code == 0 and "dropped" in out.output
    with Ledger(db) as led:
        assert trace_index.index_info(led, "eth") is None
        write_utxo_blocks(led, "btc", [[Tx("c0", [], [("a", 1000)])]])
    out = run.invoke(app, ["--db", str(db), "trace-index", "--chain", "btc"])
    assert out.exit_code != 0 and "no trace index" in str(out.exception)
    out = run.invoke(app, ["--db", str(db), "trace-index"])
    assert out.exit_code != 0 and "pass --chain" in str(out.exception)


def test_backfilled_block_below_the_tip_is_seen(tmp_path: Path) -> None:
    """A block rewritten below an unchanged tip (back-fill) changes the row counts: the
    index and the session's cached legs are refreshed."""
    with Ledger(tmp_path / "b.duckdb") as led:
        write_account_blocks(led, "eth", [BLOCKS[0], [], [{"from": "0xthief", "to": "0xmule", "value": 100}]])
        assert _held(trace(led, "eth", ["0xthief"])) == {"0xmule": 100}
        tip = led.tip("eth")
        write_account_blocks(led, "eth", [BLOCKS[0], [{"from": "0xthief", "to": "0xa", "value": 50}],
                                          [{"from": "0xthief", "to": "0xmule", "value": 100}]])  # fmt: skip
        assert led.tip("eth") == tip
        # the thief now pays 50 first: 100 - 50 leaves 50 tainted, then 100 to mule draws
        # 50 more from before the ledger (a seed's shortfall is seed value)
        assert _held(trace(led, "eth", ["0xthief"])) == {"0xa": 50, "0xmule": 100}
