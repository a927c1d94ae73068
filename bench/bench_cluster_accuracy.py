"""Clustering accuracy on ground truth (issue 3, part 3): the published table.

Starts a private Bitcoin Knots regtest node (as the tests do), runs the seeded
scenario of bench/accuracy/groundtruth.py at the LARGE scale (real wallets, one
per owner: payments with change, consolidations, reuse, round amounts, peel
chains, exchange batch payouts, PSBT-built generic / Whirlpool / JoinMarket
joins), ingests the chain with ``ingest_bitcoin_rpc``, clusters it with every
heuristic set of ``accuracy.harness.heuristic_sets`` and scores each against the
wallets' true ownership (``accuracy.metrics``).

Usage: .venv/bin/python bench/bench_cluster_accuracy.py [--scale large|small] [--seed 7]
Writes bench/out/cluster_accuracy.json and the table between the markers in
docs/accuracy.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from accuracy.groundtruth import LARGE, SMALL, generate  # noqa: E402
from accuracy.harness import evaluate, markdown_table  # noqa: E402
from chainsleuth.ingest.bitcoin_rpc import ingest_bitcoin_rpc  # noqa: E402
from chainsleuth.store import Ledger  # noqa: E402
from nodes_bitcoin import BitcoinNode, install_bitcoind  # noqa: E402

OUT = REPO / "bench" / "out" / "cluster_accuracy.json"
DOC = REPO / "docs" / "accuracy.md"
START, END = "<!-- table:start -->", "<!-- table:end -->"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=("large", "small"), default="large")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-doc", action="store_true", help="do not rewrite docs/accuracy.md")
    args = ap.parse_args()
    config = dataclasses.replace(LARGE if args.scale == "large" else SMALL, seed=args.seed)
    load = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="cs-accuracy-"))
    # a small keypool: wallet creation derives it for 8 descriptors per wallet
    (tmp / "node").mkdir()
    node = BitcoinNode(install_bitcoind(), tmp / "node", ["-keypool=100"])
    try:
        t0 = time.monotonic()
        scenario = generate(node.rpc_url, config)
        t_gen = time.monotonic() - t0
        with Ledger(tmp / "truth.duckdb") as led:
            t0 = time.monotonic()
            ingest_bitcoin_rpc(led, node.rpc_url, chain="truth")
            t_ingest = time.monotonic() - t0
            rows = evaluate(led, "truth", scenario)
    finally:
        node.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "scale": args.scale, "config": dataclasses.asdict(config),
        "scenario": scenario.counts(), "rows": rows,
        "seconds": {"generate": round(t_gen, 1), "ingest": round(t_ingest, 1)},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_avg_at_start": load},
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    table = markdown_table(rows)
    counts = ", ".join(f"{k} {v}" for k, v in scenario.counts().items())
    block = (f"{START}\nScale `{args.scale}` (seed {config.seed}), {result['date']}: {counts}.\n\n"
             f"{table}{END}")
    print(block)
    if not args.no_doc and DOC.exists():
        text = DOC.read_text()
        if START in text and END in text:
            head, rest = text.split(START, 1)
            DOC.write_text(head + block + rest.split(END, 1)[1])


if __name__ == "__main__":
    main()
