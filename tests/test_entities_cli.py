"""``chainsleuth cluster`` / ``entity why`` / ``entity show`` through the real CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chainsleuth.entities.synthetic import Tx, write_utxo_blocks
from chainsleuth.store import Ledger

CLI = [sys.executable, "-m", "chainsleuth.cli.main"]
COIN = 100_000_000


def _run(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "--db", str(db), "--quiet", *args], capture_output=True,
                          text=True, timeout=120, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


def test_cluster_why_show(tmp_path: Path) -> None:
    db = tmp_path / "l.duckdb"
    with Ledger(db) as led:
        write_utxo_blocks(led, "btc", [
            [Tx("c1", [], [("A", COIN), ("B", COIN), ("A", COIN), ("C", COIN)])],
            [Tx("t1", [("c1", 0), ("c1", 1)], [("X", 2 * COIN - 1000)]),
             Tx("t2", [("c1", 2), ("c1", 3)], [("Y", 2 * COIN - 1000)])],
        ])
    r = _run(db, "cluster")
    assert r.returncode == 0, r.stderr
    assert "btc: full run 1, blocks 0..1, 3 transactions, 5 new addresses, 2 unions -> 3 entities over 5 addresses" in r.stdout
    assert "up to date (block 1)" in _run(db, "cluster", "--chain", "btc").stdout
    r = _run(db, "entity", "why", "B", "C")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if "multi_input" in ln]
    assert len(lines) == 2 and "t1" in lines[0] and "t2" in lines[1]
    assert "B ~ C: 2 step(s)" in r.stdout
    r = _run(db, "entity", "show", "C")
    assert r.returncode == 0, r.stderr
    assert "entity 0 on btc (contains C)" in r.stdout
    assert "addresses     3" in r.stdout and "sample        A, B, C" in r.stdout
    assert "received      400,000,000" in r.stdout and "links         multi_input: 2" in r.stdout
    # user errors: one line, exit 2, no traceback
    for args, message in (
        (("entity", "why", "A", "nobody"), "'nobody' is not in the clusters of chain 'btc'"),
        (("entity", "why", "A", "X"), "are not the same entity"),
        (("cluster", "--chain", "nope"), "unknown chain 'nope'"),
        (("cluster", "--change", "magic"), "unknown change heuristic(s) magic"),
    ):
        r = _run(db, *args)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


def test_conflicting_tags_on_one_entity_are_reported(tmp_path: Path) -> None:
    """An exchange-tagged and a mixer-tagged address co-spend: `tags conflicts` and
    `entity show` report it; nothing is resolved away."""
    import subprocess
    import sys

    from chainsleuth.entities import cluster_chain
    from chainsleuth.entities.synthetic import Tx, write_utxo_blocks
    from chainsleuth.tags import import_tags

    exch, mixer = "1BoatSLRHtKNngkdXEeobR76b53LETtpyT", "1Q2TWHE3GMdB6BZKafqwxXtWAWgFt5Jvm3"
    db = tmp_path / "c.duckdb"
    tags_csv = tmp_path / "t.csv"
    tags_csv.write_text("address,currency,label,category,confidence\n"
                        f"{exch},BTC,Some Exchange,exchange,forensic\n"
                        f"{mixer},BTC,Some Mixer,mixing_service,forensic\n")
    with Ledger(db) as led:
        write_utxo_blocks(led, "btc", [
            [Tx("c0", [], [(exch, 10**8), (mixer, 10**8)])],
            [Tx("t1", [("c0", 0), ("c0", 1)], [("1Other", 2 * 10**8 - 500)])],
        ])
        cluster_chain(led, "btc")
        import_tags(led, "csv", tags_csv)
    cli = [sys.executable, "-m", "chainsleuth.cli.main", "--db", str(db)]
    out = subprocess.run([*cli, "tags", "conflicts", "--chain", "btc", "--format", "json"],
                         capture_output=True, text=True, check=True).stdout
    import json

    rows = json.loads(out)
    assert len(rows) == 1 and rows[0]["categories"] == ["exchange", "mixing_service"]
    show = subprocess.run([*cli, "entity", "show", exch, "--chain", "btc"],
                          capture_output=True, text=True, check=True).stdout
    assert "conflicting tags" in show and "[exchange, forensic]" in show
