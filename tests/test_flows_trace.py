"""``chainsleuth trace`` CLI: formats, output file, bad input, on a synthetic UTXO ledger."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from typer.testing import CliRunner

from chainsleuth.cli.main import app
from chainsleuth.entities.synthetic import Tx, write_utxo_blocks
from chainsleuth.store import Ledger
from chainsleuth.tags import import_tags


def _db(tmp_path: Path) -> Path:
    path = tmp_path / "c.duckdb"
    with Ledger(path) as led:
        write_utxo_blocks(led, "btc", [
            [Tx("c0", [], [("thief", 1000)]), Tx("c1", [], [("clean", 3000)])],
            [Tx("t1", [("c0", 0), ("c1", 0)], [("ex", 2000), ("b", 1900)])],
        ])  # fmt: skip
        f = tmp_path / "t.csv"
        f.write_text("address,currency,label,category,confidence\nex,BTC,Ex & Co,exchange,service_data\n")
        import_tags(led, "csv", f)
    return path


def test_cli_formats(tmp_path: Path) -> None:
    db = _db(tmp_path)
    run = CliRunner()
    base = ["--db", str(db), "trace", "--from", "thief"]
    out = run.invoke(app, [*base, "--format", "json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["endpoints"][0] | {"first_time": None, "last_time": None} == {
        "address": "ex", "asset": "BTC", "value": "500", "cluster_id": None,
        "labels": ["Ex & Co"], "category": "exchange", "first_time": None, "last_time": None}  # fmt: skip
    assert doc["holdings"] == [{"address": "b", "asset": "BTC", "value": "475"}]
    assert doc["fees"] == {"BTC": "25"} and doc["accounted_share"] == {"BTC": 1.0}
    out = run.invoke(app, [*base, "--format", "csv", "--model", "fifo"])
    rows = list(csv.DictReader(io.StringIO(out.output)))
    assert [(r["section"], r["address"] or r["to"], r["value"]) for r in rows] == [
        ("edge", "ex", "1000"), ("endpoint", "ex", "1000")]  # fmt: skip
    target = tmp_path / "g.graphml"
    out = run.invoke(app, [*base, "--format", "graphml", "--output", str(target)])
    assert out.exit_code == 0 and '<edge source="thief" target="ex">' in target.read_text()
    out = run.invoke(app, base)
    assert out.exit_code == 0 and "Ex & Co" in out.output and "accounted 1000" in out.output
    out = run.invoke(app, [*base, "--hops", "1", "--max-fanout", "1"])
    assert "limit max_fanout left 1000 BTC untraced" in out.output


def test_cli_bad_input(tmp_path: Path) -> None:
    db = _db(tmp_path)
    run = CliRunner()
    for args, message in [
        (["--from", "nobody"], "does not occur"),
        (["--from", "thief", "--model", "median"], "unknown taint model"),
        (["--from", "thief", "--chain", "eth"], "unknown chain"),
        (["--from", "thief", "--format", "xml"], "unknown --format"),
        (["--from", "thief", "--since", "yesterday"], "not a date"),
        (["--from", "thief", "--hops", "0"], "at least 1"),
    ]:
        out = run.invoke(app, ["--db", str(db), "trace", *args])
        assert out.exit_code != 0 and message in str(out.exception), (args, out.output)
