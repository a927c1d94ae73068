"""Benchmark: chainsleuth Ethereum RPC ingest vs ethereum-etl, side by side in one run.

Builds an anvil chain of ``--txs`` transactions (native ETH and ERC-20 transfers,
``--per-block`` per block, sent in JSON-RPC batches with automine off), then on
the same node and range times:

* chainsleuth ``ingest_ethereum_rpc`` (blocks, transactions, receipts, logs,
  token transfers and parity traces, into DuckDB);
* ethereum-etl ``export_all`` (blocks, transactions, receipts, logs, token
  transfers, contracts, tokens, as CSV) and ``export_traces`` (parity), with the
  same worker count.

ethereum-etl runs from its own venv (``--etl``, see /work/shared/recipes/peer-tools.md).
Prints blocks/s, tx/s and the ratios; writes ``bench/out/rpc_ethereum.json``.

    .venv/bin/python bench/bench_rpc_ethereum.py --txs 10000 --etl /tmp/ethereum-etl/bin/ethereumetl
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from chainsleuth.ingest.ethereum_rpc import ingest_ethereum_rpc  # noqa: E402
from chainsleuth.store import Ledger  # noqa: E402
from nodes_ethereum import AnvilNode, _start  # noqa: E402


def build_chain(node: AnvilNode, n_txs: int, per_block: int) -> dict[str, int]:
    a = node.accounts
    token = node.deploy("TestToken", 10**30)
    node.set_automine(False)
    # Explicit nonces: anvil handles a batch's requests concurrently.
    nonces = {acct: int(node.rpc("eth_getTransactionCount", acct, "pending"), 16) for acct in a}

    def nonce(acct: str) -> str:
        nonces[acct] += 1
        return hex(nonces[acct] - 1)

    seed = [("eth_sendTransaction", [{"from": a[0], "to": token, "nonce": nonce(a[0]), "gas": hex(80_000),
                                      "data": node.calldata("TestToken", "transfer(address,uint256)",
                                                            acct, 10**27)}]) for acct in a[1:]]
    node.rpc_batch(seed)
    node.mine()
    sent = 0
    while sent < n_txs:
        calls = []
        for i in range(min(per_block, n_txs - sent)):
            k = sent + i
            sender = a[k % len(a)]
            to = a[(k * 7 + 3) % len(a)]
            if k % 2:  # ERC-20 transfer
                tx = {"from": sender, "to": token, "gas": hex(80_000),
                      "data": node.calldata("TestToken", "transfer(address,uint256)", to, 1000 + k)}
            else:
                tx = {"from": sender, "to": to, "value": hex(10**15 + k), "gas": hex(21_000)}
            tx["nonce"] = nonce(sender)
            calls.append(("eth_sendTransaction", [tx]))
        node.rpc_batch(calls)
        node.mine()
        sent += len(calls)
    node.set_automine(True)
    return {"tip": node.block_number(), "token": int(token, 16)}


def run_chainsleuth(url: str, tip: int, workers: int, batch_size: int, traces: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d, Ledger(Path(d) / "bench.duckdb") as led:
        t0 = time.perf_counter()
        res = ingest_ethereum_rpc(led, url, chain="anvil", start=0, end=tip, traces=traces,
                                  batch_size=batch_size, workers=workers)
        secs = time.perf_counter() - t0
        return {"seconds": secs, "blocks": res.blocks, "transactions": res.transactions,
                "rows": sum(res.rows.values())}


def run_etl(etl: str, args: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([etl, *args], capture_output=True, text=True, check=False)
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"ethereum-etl failed: {proc.stderr[-2000:]}")
    return secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--txs", type=int, default=10_000)
    ap.add_argument("--per-block", type=int, default=50)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=10, help="chainsleuth blocks per RPC batch")
    ap.add_argument("--etl", default=os.environ.get("ETHEREUM_ETL", "/tmp/ethereum-etl/bin/ethereumetl"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "rpc_ethereum.json"))
    args = ap.parse_args()
    if not Path(args.etl).exists():
        raise SystemExit(f"ethereum-etl not found at {args.etl}; install it per /work/shared/recipes/peer-tools.md")

    node = _start()
    try:
        t0 = time.perf_counter()
        info = build_chain(node, args.txs, args.per_block)
        tip = info["tip"]
        print(f"built anvil chain: {tip + 1} blocks, {args.txs} txs in {time.perf_counter() - t0:.1f}s")

        cs = run_chainsleuth(node.rpc_url, tip, args.workers, args.batch_size, "parity")
        cs_none = run_chainsleuth(node.rpc_url, tip, args.workers, args.batch_size, "none")
        out_dir = Path(tempfile.mkdtemp(prefix="etl-bench-"))
        try:
            etl_all = run_etl(args.etl, ["export_all", "-s", "0", "-e", str(tip), "-p", node.rpc_url,
                                         "-o", str(out_dir / "all"), "-w", str(args.workers),
                                         "-B", "100", "-b", str(tip + 1)])
            etl_traces = run_etl(args.etl, ["export_traces", "-s", "0", "-e", str(tip), "-p", node.rpc_url,
                                            "-o", str(out_dir / "traces.csv"), "-w", str(args.workers),
                                            "-b", str(args.batch_size)])
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)
    finally:
        node.stop()

    blocks, txs = tip + 1, cs["transactions"]
    etl_total = etl_all + etl_traces
    result = {
        "machine_note": "2 cores shared with other jobs; anvil on the same machine; one run",
        "blocks": blocks, "transactions": txs, "workers": args.workers,
        "chainsleuth_traces_parity_s": round(cs["seconds"], 3),
        "chainsleuth_traces_none_s": round(cs_none["seconds"], 3),
        "ethereum_etl_export_all_s": round(etl_all, 3),
        "ethereum_etl_export_traces_s": round(etl_traces, 3),
        "chainsleuth_tx_per_s": round(txs / cs["seconds"], 1),
        "chainsleuth_blocks_per_s": round(blocks / cs["seconds"], 1),
        "ethereum_etl_tx_per_s": round(txs / etl_total, 1),
        "ethereum_etl_blocks_per_s": round(blocks / etl_total, 1),
        # Like for like: everything incl. traces vs export_all + export_traces;
        # and without traces vs export_all alone.
        "ratio_with_traces": round(etl_total / cs["seconds"], 2),
        "ratio_without_traces": round(etl_all / cs_none["seconds"], 2),
    }
    for k, v in result.items():
        print(f"{k:32} {v}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
