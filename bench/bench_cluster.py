"""Address clustering: chainsleuth's union-find vs scipy, networkit and rustworkx, one run.

Part 1, the algorithm. A synthetic ledger of co-spends is generated directly in
NumPy (not through DuckDB) with a realistic shape:

* inputs per transaction heavy-tailed: ``min(zipf(2.2), 2000)`` (most spends have
  one input, a few consolidations have thousands);
* address reuse: 85% of inputs spend from addresses drawn uniformly from a large
  population, 15% from a small "hot" set (services) with power-law popularity.

Every transaction with k inputs gives k-1 pairs (its first input, each other
input), the same pairs the multi-input heuristic makes. Each tool finds the
connected components of those pairs:

* chainsleuth: ``UnionFind.union`` (Numba; linking by index so the root is the
  oldest id, path halving, and a status per pair saying whether it was applied,
  which is what the evidence table needs) then ``labels()``; also
  ``chainsleuth+guard`` with the super-cluster guard on (set sizes kept);
* scipy: ``coo_matrix`` -> CSR -> ``csgraph.connected_components`` (the matrix build
  is part of the cost; it is the only way to feed it);
* networkit: ``Graph.addEdges`` from the arrays, ``components.ConnectedComponents``;
* rustworkx: ``PyGraph.extend_from_edge_list`` (needs a Python list of tuples) and
  ``connected_components``. Its input list alone costs ~100 bytes per edge, so it
  runs at a smaller scale (``--rustworkx-inputs``) next to the others at that scale.

Each tool runs in its own subprocess on the same arrays (loaded from .npy), so
peak memory (ru_maxrss, read right after the tool finishes) is its own; the
input arrays' share (``arrays_rss_bytes``, incl. the interpreter) is reported too. All tools
must agree: the partition, canonicalised to each component's smallest id, is
hashed and compared.

Part 2, end to end: ``cluster_chain`` on a real DuckDB ledger holding a smaller
synthetic chain (``--e2e-inputs``), written through ``Ledger.write_batch``.

Usage: .venv/bin/python bench/bench_cluster.py [--inputs 50000000] [--e2e-inputs 5000000]
Writes bench/out/cluster.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).parent / "out" / "cluster.json"


def generate(n_inputs: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, int, dict[str, Any]]:
    """Co-spend pairs (a, b) over ``n`` address ids for about ``n_inputs`` inputs."""
    rng = np.random.default_rng(seed)
    sizes: list[np.ndarray] = []
    total = 0
    while total < n_inputs:
        s = np.minimum(rng.zipf(2.2, size=1_000_000), 2000).astype(np.int64)
        sizes.append(s)
        total += int(s.sum())
    per_tx = np.concatenate(sizes)
    cut = int(np.searchsorted(np.cumsum(per_tx), n_inputs))
    per_tx = per_tx[: cut + 1]
    n_in = int(per_tx.sum())
    n_addr = int(n_in * 0.6)
    hot = max(n_addr // 50, 1)
    addr = rng.integers(0, n_addr, size=n_in, dtype=np.int64)
    is_hot = rng.random(n_in) < 0.15
    # power-law popularity inside the hot set: id = hot * u^3
    addr[is_hot] = (hot * rng.random(int(is_hot.sum())) ** 3).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(per_tx)[:-1]])
    anchor = np.repeat(addr[starts], per_tx)
    keep = np.ones(n_in, np.bool_)
    keep[starts] = False
    a, b = anchor[keep], addr[keep]
    shape = {
        "transactions": int(per_tx.shape[0]), "inputs": n_in, "addresses": n_addr,
        "pairs": int(a.shape[0]),
        "single_input_share": round(float((per_tx == 1).mean()), 4),
        "max_inputs_per_tx": int(per_tx.max()),
        "mean_inputs_per_tx": round(float(per_tx.mean()), 3),
    }
    return a, b, n_addr, shape


def canonical_hash(labels: np.ndarray) -> tuple[int, str]:
    """(components, hash of each element's smallest component member)."""
    n = labels.shape[0]
    _, inv = np.unique(labels, return_inverse=True)
    mins = np.full(int(inv.max()) + 1, n, np.int64)
    np.minimum.at(mins, inv, np.arange(n, dtype=np.int64))
    canon = mins[inv]
    return int(mins.shape[0]), hashlib.sha256(canon.tobytes()).hexdigest()[:16]


CHILD = r"""
import json, resource, sys, time
import numpy as np
tool, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, sys.argv[4])
from bench_cluster import canonical_hash
a = np.load(path + ".a.npy"); b = np.load(path + ".b.npy")
rss_arrays = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
setup = 0.0
if tool == "chainsleuth":
    from chainsleuth.entities.unionfind import UnionFind
    UnionFind(4).union(np.array([0, 2]), np.array([1, 3]))  # compile / load the cache
    t = time.perf_counter()
    uf = UnionFind(n, track_sizes=False)  # as cluster_chain with the guard off
    status, _, _ = uf.union(a, b)
    labels = uf.labels()
    elapsed = time.perf_counter() - t
    extra = {"applied_unions": int((status == 1).sum())}
elif tool == "chainsleuth+guard":
    from chainsleuth.entities.unionfind import UnionFind
    UnionFind(4).union(np.array([0, 2]), np.array([1, 3]), super_threshold=10)
    t = time.perf_counter()
    uf = UnionFind(n)
    status, _, _ = uf.union(a, b, super_threshold=10_000)
    labels = uf.labels()
    elapsed = time.perf_counter() - t
    extra = {"applied_unions": int((status == 1).sum()), "super_merges": int((status == 3).sum())}
elif tool == "scipy":
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    t = time.perf_counter()
    m = coo_matrix((np.ones(a.shape[0], np.int8), (a, b)), shape=(n, n)).tocsr()
    setup = time.perf_counter() - t
    _, labels = connected_components(m, directed=False)
    elapsed = time.perf_counter() - t
    extra = {}
elif tool == "networkit":
    import networkit as nk
    nk.setNumberOfThreads(2)
    t = time.perf_counter()
    g = nk.Graph(n)
    g.addEdges((a, b))
    setup = time.perf_counter() - t
    cc = nk.components.ConnectedComponents(g)
    cc.run()
    labels = np.asarray(cc.getPartition().getVector(), dtype=np.int64)
    elapsed = time.perf_counter() - t
    extra = {}
elif tool == "rustworkx":
    import rustworkx as rx
    t = time.perf_counter()
    g = rx.PyGraph(multigraph=False)
    g.add_nodes_from(range(n))
    g.extend_from_edge_list(list(zip(a.tolist(), b.tolist())))
    setup = time.perf_counter() - t
    comps = rx.connected_components(g)
    elapsed = time.perf_counter() - t
    labels = np.empty(n, np.int64)
    for i, c in enumerate(comps):
        labels[list(c)] = i
    extra = {}
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # before the checks below
comps, h = canonical_hash(labels)
print(json.dumps({"tool": tool, "seconds": elapsed, "setup_seconds": setup, "components": comps,
                  "partition_hash": h, "peak_rss_bytes": peak, "arrays_rss_bytes": rss_arrays, **extra}))
"""


def run_tools(a: np.ndarray, b: np.ndarray, n: int, tools: list[str], tmp: Path,
              repeat: int) -> list[dict[str, Any]]:
    """Run every tool in its own process; chainsleuth and scipy (the close pair)
    ``repeat`` times interleaved, reporting the median; the slower peers once."""
    base = str(tmp / f"pairs_{a.shape[0]}")
    np.save(base + ".a.npy", a)
    np.save(base + ".b.npy", b)
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
    for r in range(repeat):
        for tool in tools:
            if r > 0 and tool not in ("chainsleuth", "chainsleuth+guard", "scipy"):
                continue
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, tool, base, str(n), str(Path(__file__).parent)],
                capture_output=True, text=True, timeout=3600)
            if proc.returncode != 0:
                runs[tool].append({"tool": tool, "error": proc.stderr[-2000:]})
                print(f"  {tool}: FAILED {proc.stderr[-500:]}", flush=True)
                continue
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            runs[tool].append(res)
            print(f"  {tool:<12} {res['seconds']:8.2f} s  peak {res['peak_rss_bytes'] / 2**30:6.2f} GiB  "
                  f"components {res['components']:,}  {res['partition_hash']}", flush=True)
    results = []
    for rs in runs.values():
        ok = [x for x in rs if "error" not in x]
        if not ok:
            results.append(rs[0])
            continue
        best = dict(sorted(ok, key=lambda x: x["seconds"])[len(ok) // 2])  # the median run
        best["all_seconds"] = [round(x["seconds"], 3) for x in ok]
        best["peak_rss_bytes"] = max(x["peak_rss_bytes"] for x in ok)
        results.append(best)
    return results


def e2e(n_inputs: int, tmp: Path) -> dict[str, Any]:
    """cluster_chain on a DuckDB ledger of a synthetic chain with ~n_inputs inputs."""
    import pyarrow as pa

    from chainsleuth.entities import cluster_chain
    from chainsleuth.store import Ledger

    rng = np.random.default_rng(11)
    per_tx = np.minimum(rng.zipf(2.2, size=n_inputs), 2000).astype(np.int64)
    per_tx = per_tx[: int(np.searchsorted(np.cumsum(per_tx), n_inputs)) + 1]
    n_tx = per_tx.shape[0]
    n_in = int(per_tx.sum())
    n_addr = int(n_in * 0.6)
    hot = max(n_addr // 50, 1)
    addr = rng.integers(0, n_addr, size=n_in, dtype=np.int64)
    is_hot = rng.random(n_in) < 0.15
    addr[is_hot] = (hot * rng.random(int(is_hot.sum())) ** 3).astype(np.int64)
    tx_per_block = 2_000
    block_of_tx = np.arange(n_tx) // tx_per_block
    n_blocks = int(block_of_tx[-1]) + 1
    names = np.char.add("1addr", addr.astype(str)).astype(object)
    path = tmp / "e2e.duckdb"
    t = time.perf_counter()
    with Ledger(path) as led:
        led.ensure_chain("synth", "bitcoin", network="regtest")
        tx_start = np.concatenate([[0], np.cumsum(per_tx)])
        step = 100  # blocks per write batch
        for lo in range(0, n_blocks, step):
            hi = min(lo + step, n_blocks) - 1
            t0, t1 = lo * tx_per_block, min((hi + 1) * tx_per_block, n_tx)
            i0, i1 = int(tx_start[t0]), int(tx_start[t1])
            txh = np.char.add("tx", np.arange(t0, t1).astype(str)).astype(object)
            tx_of_in = np.repeat(np.arange(t0, t1), per_tx[t0:t1])
            idx_in = np.arange(i0, i1) - np.repeat(tx_start[t0:t1], per_tx[t0:t1])
            blocks = np.arange(lo, hi + 1)
            ts = 1_500_000_000 + 600 * blocks
            in_block = block_of_tx[tx_of_in]
            out_addr = np.char.add("1out", np.arange(t0, t1).astype(str)).astype(object)
            tables = {
                "blocks": pa.table({"number": blocks, "hash": [f"h{x}" for x in blocks],
                                    "timestamp": pa.array(ts)}),
                "transactions": pa.table({
                    "hash": pa.array(txh, pa.string()), "block_number": block_of_tx[t0:t1],
                    "index": np.arange(t0, t1) % tx_per_block, "is_coinbase": np.zeros(t1 - t0, bool),
                    "input_count": per_tx[t0:t1], "output_count": np.ones(t1 - t0, np.int64),
                    "input_value": per_tx[t0:t1] * 1000, "output_value": per_tx[t0:t1] * 1000 - 100,
                    "fee": np.full(t1 - t0, 100)}),
                "inputs": pa.table({
                    "transaction_hash": pa.array(txh[tx_of_in - t0], pa.string()),
                    "block_number": in_block, "index": idx_in,
                    "spent_transaction_hash": pa.array(["prev"] * (i1 - i0), pa.string()),
                    "spent_output_index": idx_in,
                    "addresses": pa.ListArray.from_arrays(
                        np.arange(i1 - i0 + 1, dtype=np.int32), pa.array(names[i0:i1], pa.string())),
                    "value": np.full(i1 - i0, 1000)}),
                "outputs": pa.table({
                    "transaction_hash": pa.array(txh, pa.string()), "block_number": block_of_tx[t0:t1],
                    "index": np.zeros(t1 - t0, np.int64),
                    "addresses": pa.ListArray.from_arrays(
                        np.arange(t1 - t0 + 1, dtype=np.int32), pa.array(out_addr, pa.string())),
                    "value": per_tx[t0:t1] * 1000 - 100}),
            }
            led.write_batch("synth", tables, (lo, hi))
    write_s = time.perf_counter() - t
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with Ledger(path) as led:
        t = time.perf_counter()
        res = cluster_chain(led, "synth", batch_blocks=500)
        full_s = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out = {"inputs": n_in, "transactions": n_tx, "blocks": n_blocks, "write_seconds": round(write_s, 2),
           "cluster_seconds": round(full_s, 2), "unions": res.unions, "clusters": res.clusters,
           "addresses": res.addresses, "inputs_per_second": round(n_in / full_s),
           "peak_rss_bytes": peak, "rss_before_cluster_bytes": rss0,
           "ledger_bytes": path.stat().st_size}
    print(f"  e2e cluster_chain: {n_in:,} inputs, {n_tx:,} txs in {full_s:.1f} s "
          f"({n_in / full_s:,.0f} inputs/s), {res.clusters:,} clusters; ledger written in {write_s:.1f} s",
          flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", type=int, default=50_000_000)
    ap.add_argument("--rustworkx-inputs", type=int, default=5_000_000)
    ap.add_argument("--e2e-inputs", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of chainsleuth and scipy (median)")
    ap.add_argument("--skip-e2e", action="store_true")
    args = ap.parse_args()
    report: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": sys.version.split()[0], "load_avg_at_start": os.getloadavg()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "note": "shared 2-core machine; other jobs were running (see load_avg_at_start)",
        "runs": [],
    }
    with tempfile.TemporaryDirectory(dir="/tmp") as td:
        tmp = Path(td)
        scales = [(args.rustworkx_inputs,
                   ["chainsleuth", "chainsleuth+guard", "scipy", "networkit", "rustworkx"])]
        if args.inputs != args.rustworkx_inputs:
            scales.append((args.inputs, ["chainsleuth", "chainsleuth+guard", "scipy", "networkit"]))
        for n_inputs, tools in scales:
            t = time.perf_counter()
            a, b, n, shape = generate(n_inputs)
            print(f"scale {shape['inputs']:,} inputs, {shape['pairs']:,} pairs, {n:,} addresses "
                  f"(generated in {time.perf_counter() - t:.1f} s)", flush=True)
            results = run_tools(a, b, n, tools, tmp, args.repeat)
            del a, b
            ok = [r for r in results if "error" not in r]
            agree = len({(r["components"], r["partition_hash"]) for r in ok}) == 1
            ours = next((r for r in ok if r["tool"] == "chainsleuth"), None)
            ratios = {r["tool"]: round(r["seconds"] / ours["seconds"], 2)
                      for r in ok if ours and r["tool"] != "chainsleuth"}
            report["runs"].append({"shape": shape, "results": results, "partitions_agree": agree,
                                   "peer_time_over_chainsleuth": ratios})
            print(f"  partitions agree: {agree}; peer time / chainsleuth time (medians): {ratios}",
                  flush=True)
        if not args.skip_e2e:
            report["end_to_end"] = e2e(args.e2e_inputs, tmp)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
