"""Exposure pass: the compiled sweeps over a synthetic ledger of >= 50M transfers, and the
DuckDB load path + point lookups at a smaller scale, in one run.

Part 1, the kernel. Transfers are generated directly in NumPy (account-chain shape: one
leg per event), time-ordered, over ``--nodes`` addresses with heavy-tailed popularity
(80% of endpoints uniform, 20% from a hot set of 1% of addresses, like services);
1 in 200 addresses is categorised, spread over six categories. Both sweeps (incoming,
outgoing) run over the same arrays, ``--hops`` deep. The throughput counted is
transfers / (forward + backward sweep seconds), single-threaded (one core). Peak memory
is the process's ru_maxrss after the sweeps; the input arrays' share is reported.

Reference, side by side on the same arrays: DuckDB (all threads) computing only the
*direct* incoming exposure (one join + group-by over the same transfers, Arrow input).
It does strictly less work (no indirect hops, one direction); the ratio shows what the
compiled sweep costs next to a columnar engine's plain aggregation. There is no open
peer tool for per-address indirect exposure to run instead (BlockSci's taint functions
trace from given seeds, not every address).

Part 2, end to end: ``--db-transfers`` native ETH transfers written through
``Ledger.write_batch``, tags imported from CSV, ``build_exposure`` (load + sweeps +
writes), then ``exposure_of`` on 2,000 random addresses (p50/p99 latency).

The figures of the run that the new one replaces are kept under ``previous_run`` (before/after
of a change to the sweep).

Usage: .venv/bin/python bench/bench_exposure.py [--transfers 50000000] [--nodes 5000000]
       [--db-transfers 500000]
Writes bench/out/exposure.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from chainsleuth.flows.categories import CATEGORIES, CATEGORY_INDEX
from chainsleuth.flows.exposure import ExposureInput, run_sweeps

OUT = Path(__file__).parent / "out" / "exposure.json"
CATS = ["sanctions", "stolen_funds", "mixer", "scam", "exchange", "gambling"]


def _rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def generate(n_transfers: int, n_nodes: int, shape: str, seed: int = 7) -> ExposureInput:
    """Time-ordered transfers over about ``n_nodes`` addresses (ids by first appearance).

    ``uniform``: 80% of endpoints uniform over all addresses, 20% from a hot set (1% of
    addresses, Zipf popularity) -- no locality at all, the worst case for the sweep.
    ``temporal``: the shape of real ledgers, where most value is moved on soon after it
    arrives: a receiver is a fresh address (rate n_nodes/n_transfers), else a hot service
    (Zipf) or a recently seen address; a sender is a recently seen address (how far back:
    geometric, mean 20,000 addresses) or a hot service (20%).
    """
    rng = np.random.default_rng(seed)
    hot = max(n_nodes // 100, 1)

    def zipf(k: int) -> np.ndarray:
        return np.minimum(rng.zipf(1.5, k) - 1, hot - 1)

    if shape == "uniform":
        src = rng.integers(0, n_nodes, n_transfers, dtype=np.int64)
        dst = rng.integers(0, n_nodes, n_transfers, dtype=np.int64)
        for arr in (src, dst):
            pick = rng.random(n_transfers) < 0.2
            arr[pick] = zipf(int(pick.sum()))
    else:
        fresh = rng.random(n_transfers) < (n_nodes - hot) / n_transfers
        newest = hot + np.cumsum(fresh) - 1  # the latest address id seen at each transfer
        dst = np.maximum(newest - rng.geometric(1 / 20_000, n_transfers), 0)
        pick = (rng.random(n_transfers) < 0.5) & ~fresh
        dst[pick] = zipf(int(pick.sum()))
        dst[fresh] = newest[fresh]
        src = np.maximum(newest - rng.geometric(1 / 20_000, n_transfers), 0)
        pick = rng.random(n_transfers) < 0.2
        src[pick] = zipf(int(pick.sum()))
        n_nodes = int(newest[-1]) + 1
    amt = np.floor(rng.lognormal(10.0, 2.0, n_transfers)) + 1.0
    cat = np.full(n_nodes, -1, np.int32)
    labelled = rng.choice(n_nodes, n_nodes // 200, replace=False)
    cat[labelled] = np.array([CATEGORY_INDEX[c] for c in CATS], np.int32)[
        rng.integers(0, len(CATS), len(labelled))
    ]
    ptr = np.arange(n_transfers + 1, dtype=np.int64)
    return ExposureInput(ptr, src.astype(np.int64), amt, ptr, dst.astype(np.int64), amt, cat,
                         n_transfers)  # fmt: skip


def bench_kernel(n_transfers: int, n_nodes: int, hops: int, shape: str) -> dict[str, Any]:
    t = time.perf_counter()
    data = generate(n_transfers, n_nodes, shape)
    gen_s = time.perf_counter() - t
    arrays_rss = _rss()
    run_sweeps(generate(1000, 100, shape), hops)  # JIT compile (cached) outside the timing
    t = time.perf_counter()
    present, expo_in, total_in, expo_out, _ = run_sweeps(data, hops)
    sweep_s = time.perf_counter() - t
    peak = _rss()
    attributed_in = float(expo_in.sum())
    nonzero = int(((expo_in.sum(axis=1) > 0).any(axis=1)).sum())
    del expo_in, expo_out
    # reference: DuckDB direct incoming exposure only, on the same arrays
    import duckdb
    import pyarrow as pa

    con = duckdb.connect()
    edges = pa.table({"src": data.src_node, "dst": data.dst_node, "amt": data.src_amt})
    cats = pa.table({"node": np.nonzero(data.node_cat >= 0)[0],
                     "cat": data.node_cat[data.node_cat >= 0]})  # fmt: skip
    con.register("edges", edges)
    con.register("cats", cats)
    t = time.perf_counter()
    n_direct = con.execute(
        "SELECT count(*) FROM (SELECT e.dst, c.cat, sum(e.amt) FROM edges e "
        "JOIN cats c ON c.node = e.src GROUP BY ALL)"
    ).fetchone()
    duck_s = time.perf_counter() - t
    return {
        "shape": shape, "transfers": n_transfers, "nodes": len(data.node_cat), "hops": hops,
        "categorised_nodes": int((data.node_cat >= 0).sum()), "categories": len(present),
        "generate_seconds": round(gen_s, 2),
        "sweeps_seconds": round(sweep_s, 2),
        "transfers_per_second_per_core": round(n_transfers / sweep_s),
        "goal_transfers_per_second_per_core": 5_000_000,
        "peak_rss_bytes": peak, "arrays_rss_bytes": arrays_rss,
        "nodes_with_incoming_exposure": nonzero,
        "attributed_incoming_value_fraction": attributed_in / float(total_in.sum()),
        "duckdb_direct_only_seconds": round(duck_s, 2),
        "duckdb_direct_rows": int(n_direct[0]) if n_direct else 0,
        "duckdb_threads": int(con.execute("SELECT current_setting('threads')").fetchone()[0]),  # type: ignore[index]
        "ratio_duckdb_direct_only_over_sweeps": round(duck_s / sweep_s, 3),
    }  # fmt: skip


def bench_ledger(n_transfers: int, hops: int) -> dict[str, Any]:
    from chainsleuth.errors import ConfigError
    from chainsleuth.flows.exposure import build_exposure, exposure_of
    from chainsleuth.store import Ledger
    from chainsleuth.tags import import_tags

    rng = np.random.default_rng(11)
    n_addr = max(n_transfers // 10, 100)
    addrs = np.array([f"0x{i:040x}" for i in range(n_addr)])
    per_block = 1000
    with tempfile.TemporaryDirectory() as tmp:
        led = Ledger(Path(tmp) / "x.duckdb")
        led.ensure_chain("eth", "ethereum")
        t = time.perf_counter()
        src = rng.integers(0, n_addr, n_transfers)
        dst = rng.integers(0, n_addr, n_transfers)
        val = (np.floor(rng.lognormal(40.0, 2.0, n_transfers))).astype(object)  # wei, > int64
        batch = 100
        for b0 in range(0, n_transfers // per_block, batch):
            blocks = range(b0, min(b0 + batch, n_transfers // per_block))
            lo, hi = blocks[0] * per_block, (blocks[-1] + 1) * per_block
            led.write_batch("eth", {
                "blocks": {"number": list(blocks), "hash": [f"b{b}" for b in blocks],
                           "timestamp": [b * 12 for b in blocks]},
                "transactions": {
                    "hash": [f"t{i}" for i in range(lo, hi)],
                    "block_number": [i // per_block for i in range(lo, hi)],
                    "transaction_index": [i % per_block for i in range(lo, hi)],
                    "from_address": addrs[src[lo:hi]].tolist(), "to_address": addrs[dst[lo:hi]].tolist(),
                    "value": [int(v) for v in val[lo:hi]],
                    "block_timestamp": [(i // per_block) * 12 for i in range(lo, hi)]},
            }, (blocks[0], blocks[-1]))  # fmt: skip
        write_s = time.perf_counter() - t
        labelled = rng.choice(n_addr, max(n_addr // 200, 6), replace=False)
        concepts = ["sanction", "service_hack", "mixing_service", "scam", "exchange", "gambling"]
        csv = Path(tmp) / "tags.csv"
        csv.write_text("address,currency,label,category,confidence\n" + "".join(
            f"{addrs[a]},ETH,l{a},{concepts[i % 6]},forensic\n" for i, a in enumerate(labelled)))  # fmt: skip
        import_tags(led, "csv", csv)
        t = time.perf_counter()
        run = build_exposure(led, "eth", hops=hops)
        build_s = time.perf_counter() - t
        exposure_of(led, "eth", str(addrs[0]))  # warm the connection
        lat = []
        for a in rng.choice(n_addr, 2000):
            t = time.perf_counter()
            with contextlib.suppress(ConfigError):  # an address that never moved value
                exposure_of(led, "eth", str(addrs[a]))
            lat.append(time.perf_counter() - t)
        led.close()
    ms = np.array(lat) * 1000
    return {
        "transfers": n_transfers, "addresses": n_addr, "write_batch_seconds": round(write_s, 2),
        "build_seconds": round(build_s, 2), "build_kernel_seconds": round(run.kernel_seconds, 3),
        "build_transfers_per_second": round(n_transfers / build_s),
        "exposure_rows": run.exposure_rows,
        "exposure_of_ms_p50": round(float(np.percentile(ms, 50)), 3),
        "exposure_of_ms_p99": round(float(np.percentile(ms, 99)), 3),
        "exposure_of_ms_max": round(float(ms.max()), 3),
        "goal_exposure_of_ms": 10,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--transfers", type=int, default=50_000_000)
    ap.add_argument("--nodes", type=int, default=5_000_000)
    ap.add_argument("--hops", type=int, default=4)
    ap.add_argument("--db-transfers", type=int, default=500_000)
    args = ap.parse_args()
    result: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "categories_known": len(CATEGORIES),
    }  # fmt: skip
    # before/after: the kernel figures of the run this one replaces
    if OUT.exists():
        prev = json.loads(OUT.read_text())
        result["previous_run"] = {"date": prev.get("date")} | {
            k: {f: prev[k].get(f) for f in ("sweeps_seconds", "transfers_per_second_per_core",
                                            "peak_rss_bytes")}
            for k in ("kernel_temporal", "kernel_uniform") if k in prev
        }  # fmt: skip
    result["ledger"] = bench_ledger(args.db_transfers, args.hops)
    print(json.dumps(result["ledger"], indent=2))
    for shape in ("temporal", "uniform"):  # peak RSS is cumulative: the larger run goes last
        result[f"kernel_{shape}"] = bench_kernel(args.transfers, args.nodes, args.hops, shape)
        print(json.dumps(result[f"kernel_{shape}"], indent=2))
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
