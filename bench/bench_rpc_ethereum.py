"""Benchmark: chainsleuth Ethereum RPC ingest vs ethereum-etl, side by side in one run.

Builds an anvil chain of ``--txs`` transactions (native ETH and ERC-20 transfers,
``--per-block`` per block, sent in JSON-RPC batches with automine off), then on
the same node and range, with the same worker count and batch size, times:

* chainsleuth ``ingest_ethereum_rpc`` (blocks, transactions, receipts, logs,
  token transfers and parity traces, into DuckDB), and again without traces;
* ethereum-etl ``export_all`` (blocks, transactions, receipts, logs, token
  transfers, contracts, tokens, as CSV) and ``export_traces`` (parity);
* the node floor: the bare RPC calls chainsleuth makes (full blocks,
  ``eth_getBlockReceipts``, ``trace_block``), same batches and concurrency,
  replies read and JSON-decoded but not mapped or stored.

One warm-up round of each is run and dropped; then ``--rounds`` rounds, the
tools interleaved, and the median of each is reported. Prints blocks/s, tx/s,
the ratios and how far each tool is above the floor; writes
``bench/out/rpc_ethereum.json``.

ethereum-etl runs from its own venv (``--etl``, see /work/shared/recipes/peer-tools.md).

    .venv/bin/python bench/bench_rpc_ethereum.py --txs 10000 --etl /tmp/ethereum-etl/bin/ethereumetl
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from chainsleuth.ingest.ethereum_rpc import ingest_ethereum_rpc  # noqa: E402
from chainsleuth.ingest.jsonrpc import JsonRpcClient  # noqa: E402
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


def node_floor(url: str, tip: int, workers: int, batch_size: int, traces: bool) -> float:
    """Seconds for the bare RPC calls of an ingest: fetched and decoded, nothing else."""
    ranges = [(lo, min(tip, lo + batch_size - 1)) for lo in range(0, tip + 1, batch_size)]
    with JsonRpcClient(url, max_connections=max(4, workers * 2)) as client:
        hashes = [b["hash"] for b in client.batch([("eth_getBlockByNumber", [hex(n), False])
                                                  for n in range(tip + 1)])]

        def one(r: tuple[int, int]) -> None:
            numbers = range(r[0], r[1] + 1)
            client.batch([("eth_getBlockByNumber", [hex(n), True]) for n in numbers])
            client.batch([("eth_getBlockReceipts", [hashes[n]]) for n in numbers])
            if traces:
                client.batch([("trace_block", [hex(n)]) for n in numbers])

        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(one, ranges))
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--txs", type=int, default=10_000)
    ap.add_argument("--per-block", type=int, default=50)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=10, help="blocks per RPC batch, both tools")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds after the warm-up (median)")
    ap.add_argument("--etl", default=os.environ.get("ETHEREUM_ETL", "/tmp/ethereum-etl/bin/ethereumetl"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "rpc_ethereum.json"))
    args = ap.parse_args()
    if not Path(args.etl).exists():
        raise SystemExit(f"ethereum-etl not found at {args.etl}; install it per /work/shared/recipes/peer-tools.md")

    node = _start()
    out_dir = Path(tempfile.mkdtemp(prefix="etl-bench-"))
    times: dict[str, list[float]] = {k: [] for k in (
        "cs_parity", "cs_none", "etl_all", "etl_traces", "floor_parity", "floor_none")}
    txs = 0
    try:
        t0 = time.perf_counter()
        info = build_chain(node, args.txs, args.per_block)
        tip = info["tip"]
        print(f"built anvil chain: {tip + 1} blocks, {args.txs} txs in {time.perf_counter() - t0:.1f}s")
        url, w, b = node.rpc_url, args.workers, args.batch_size
        etl_common = ["-s", "0", "-e", str(tip), "-p", url, "-w", str(w)]

        def cs(traces: str) -> float:
            nonlocal txs
            r = run_chainsleuth(url, tip, w, b, traces)
            txs = int(r["transactions"])
            return r["seconds"]

        runs: list[tuple[str, Callable[[], float]]] = [
            ("cs_parity", lambda: cs("parity")),
            ("etl_all", lambda: run_etl(args.etl, ["export_all", *etl_common, "-B", str(b),
                                                   "-b", str(tip + 1),  # one partition
                                                   "-o", str(out_dir / "all")])),
            ("cs_none", lambda: cs("none")),
            ("etl_traces", lambda: run_etl(args.etl, ["export_traces", *etl_common, "-b", str(b),
                                                      "-o", str(out_dir / "traces.csv")])),
            ("floor_parity", lambda: node_floor(url, tip, w, b, True)),
            ("floor_none", lambda: node_floor(url, tip, w, b, False)),
        ]
        for round_no in range(args.rounds + 1):  # round 0 is the warm-up
            for name, fn in runs:
                secs = fn()
                if round_no:
                    times[name].append(secs)
            shutil.rmtree(out_dir / "all", ignore_errors=True)
            print(f"round {round_no}{' (warm-up)' if not round_no else ''} done", flush=True)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
        node.stop()

    med = {k: statistics.median(v) for k, v in times.items()}
    blocks = tip + 1
    etl_total = med["etl_all"] + med["etl_traces"]
    cs_s, floor_s = med["cs_parity"], med["floor_parity"]
    result = {
        "machine_note": "2 cores shared with other jobs; anvil on the same machine",
        "blocks": blocks, "transactions": txs, "workers": w, "batch_size": b,
        "rounds": args.rounds, "statistic": "median after one warm-up round, tools interleaved",
        "chainsleuth_traces_parity_s": round(cs_s, 3),
        "chainsleuth_traces_none_s": round(med["cs_none"], 3),
        "ethereum_etl_export_all_s": round(med["etl_all"], 3),
        "ethereum_etl_export_traces_s": round(med["etl_traces"], 3),
        "node_floor_traces_parity_s": round(floor_s, 3),
        "node_floor_traces_none_s": round(med["floor_none"], 3),
        "chainsleuth_tx_per_s": round(txs / cs_s, 1),
        "chainsleuth_blocks_per_s": round(blocks / cs_s, 1),
        "ethereum_etl_tx_per_s": round(txs / etl_total, 1),
        "ethereum_etl_blocks_per_s": round(blocks / etl_total, 1),
        # Like for like: everything incl. traces vs export_all + export_traces;
        # and without traces vs export_all alone.
        "ratio_with_traces": round(etl_total / cs_s, 2),
        "ratio_without_traces": round(med["etl_all"] / med["cs_none"], 2),
        # How close each tool is to the node: time over the bare-RPC floor, and the
        # ratio chainsleuth would reach if its own work cost nothing.
        "chainsleuth_over_floor": round(cs_s / floor_s, 2),
        "ethereum_etl_over_floor": round(etl_total / floor_s, 2),
        "ratio_if_client_cost_zero_with_traces": round(etl_total / floor_s, 2),
        "ratio_if_client_cost_zero_without_traces": round(med["etl_all"] / med["floor_none"], 2),
        "runs_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
    }
    for k, v in result.items():
        print(f"{k:42} {v}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
