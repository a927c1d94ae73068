"""Raw block decoding: chainsleuth vs python-bitcoinlib on the same real mainnet bytes, one run.

Three like-for-like levels, each timed as the median of interleaved runs after a warm-up:

* parse: structure, txids, values, scripts, prevouts. chainsleuth ``parse_blocks``
  (columns of offsets into the buffer) vs python-bitcoinlib ``CBlock.deserialize``
  plus ``GetTxid()`` per transaction (Python objects). The headline ratio.
* decode to addresses: chainsleuth ``decode_blocks`` (canonical rows: hex, asm, types,
  addresses, in-batch prevout values) vs python-bitcoinlib deserialize + GetTxid +
  ``CBitcoinAddress.from_scriptPubKey`` for every output.
* decode + write: ``decode_blocks`` + ``Ledger.write_batch`` of all the blocks as one
  batch into a fresh DuckDB ledger (open, insert, input resolution, commit, close with
  its checkpoint; the phases are reported).
* ingest: ``ingest_blk_files`` of the five files into a fresh ledger (scan, validate,
  decode, write, and the checkpoint when the ledger closes). Their blocks are at scattered heights, so this is five one-block
  batches: the per-batch costs (transaction, commit, resolution queries) weigh more
  than in a contiguous ingest.

The last two are set against the python-bitcoinlib decode of the same blocks, which
writes nothing.

Numba compile time (empty cache) and cache-load time are measured in subprocesses and
reported apart from the throughput figures.

Usage: .venv/bin/python bench/bench_blk_parse.py [--repeat N] [--runs N]
Writes bench/out/blk_parse.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from bitcoin.core import CBlock
from bitcoin.wallet import CBitcoinAddress, CBitcoinAddressError

from chainsleuth.config import data_dir
from chainsleuth.ingest.blk_files import decode_blocks, ingest_blk_files, parse_blocks
from chainsleuth.store import Ledger

FILES = ["version2.blk", "version3.blk", "version4.blk", "scriptwitness.blk", "block176149.blk"]

_FIRST_CALL = """
import time, numpy as np
t = time.perf_counter()
from chainsleuth.ingest.blk_files import decode_blocks
t_import = time.perf_counter() - t
data = open({path!r}, "rb").read()
size = int.from_bytes(data[4:8], "little")
buf = np.frombuffer(data[8:8 + size], np.uint8)
t = time.perf_counter()
decode_blocks(buf, np.array([0]), np.array([size]), [0], "mainnet")
print(t_import, time.perf_counter() - t)
"""


def _first_call_seconds(path: Path, cache_dir: str) -> tuple[float, float]:
    """(import s, first decode_blocks s) in a fresh interpreter using ``cache_dir``."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", _FIRST_CALL.format(path=str(path))], env=env,
                         check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1])


def _bitcoinlib_parse(blocks: list[bytes]) -> int:
    n = 0
    for b in blocks:
        blk = CBlock.deserialize(b)
        n += len([tx.GetTxid() for tx in blk.vtx])
    return n


def _bitcoinlib_decode(blocks: list[bytes]) -> int:
    n = 0
    for b in blocks:
        blk = CBlock.deserialize(b)
        for tx in blk.vtx:
            tx.GetTxid()
            n += 1
            for out in tx.vout:
                try:  # noqa: SIM105 (plain try/except: contextlib.suppress would slow the peer)
                    str(CBitcoinAddress.from_scriptPubKey(out.scriptPubKey))
                except CBitcoinAddressError:
                    pass
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3, help="copies of the blocks per decode run")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per contender (median)")
    args = ap.parse_args()
    d = data_dir()
    if d is None:
        raise SystemExit("real data not found: set CHAINSLEUTH_DATA")
    paths = [d / "raw_blocks" / f for f in FILES]
    blocks = []
    for p in paths:
        data = p.read_bytes()
        blocks.append(data[8 : 8 + int.from_bytes(data[4:8], "little")])
    blocks = blocks * args.repeat
    buf = np.frombuffer(b"".join(blocks), np.uint8)
    sizes = np.array([len(b) for b in blocks], np.int64)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    heights = list(range(len(blocks)))
    mb = buf.shape[0] / 1e6
    file_mb = sum(p.stat().st_size for p in paths) / 1e6

    with tempfile.TemporaryDirectory() as cache:
        cold_import, cold_first = _first_call_seconds(paths[0], cache)
        warm_import, warm_first = _first_call_seconds(paths[0], cache)

    ntx = decode_blocks(buf, starts, ends, heights, "mainnet")["transactions"].num_rows
    assert parse_blocks(buf, starts, ends).tx_start.shape[0] == ntx
    assert _bitcoinlib_parse(blocks) == ntx == _bitcoinlib_decode(blocks)

    ingest_tx = 0

    phases: dict[str, list[float]] = {k: [] for k in ("open+ensure_chain", "decode", "write_batch", "close")}

    def decode_write() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            led = Ledger(Path(tmp) / "b.duckdb")
            led.ensure_chain("bitcoin", "bitcoin", network="mainnet")
            t1 = time.perf_counter()
            tables = decode_blocks(buf, starts, ends, heights, "mainnet")
            t2 = time.perf_counter()
            led.write_batch("bitcoin", tables, (0, len(blocks) - 1))
            t3 = time.perf_counter()
            led.close()  # DuckDB checkpoints the WAL into the file here
            t4 = time.perf_counter()
        for k, v in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            phases[k].append(v)

    def ingest() -> None:
        nonlocal ingest_tx
        with tempfile.TemporaryDirectory() as tmp, Ledger(Path(tmp) / "b.duckdb") as led:
            ingest_tx = ingest_blk_files(led, paths, first_height=176149).transactions

    contenders: dict[str, Callable[[], object]] = {
        "parse/chainsleuth": lambda: parse_blocks(buf, starts, ends),
        "parse/python-bitcoinlib": lambda: _bitcoinlib_parse(blocks),
        "decode/chainsleuth": lambda: decode_blocks(buf, starts, ends, heights, "mainnet"),
        "decode/python-bitcoinlib": lambda: _bitcoinlib_decode(blocks),
        "write/chainsleuth": decode_write,
        "ingest/chainsleuth": ingest,
    }
    first_ingest = 0.0
    for name, fn in contenders.items():  # warm-up (the first ingest is also reported)
        t = time.perf_counter()
        fn()
        if name == "ingest/chainsleuth":
            first_ingest = time.perf_counter() - t
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(args.runs):  # interleaved, so load changes hit every contender alike
        for name, fn in contenders.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    ingest_ref = med["decode/python-bitcoinlib"] * ingest_tx / ntx  # same blocks, one copy

    def row(tx: int, megabytes: float, s: float) -> dict[str, float]:
        return {"tx_per_s": tx / s, "mb_per_s": megabytes / s, "seconds": s}

    levels = {
        "parse": {
            "what": "structure+txids+values+scripts+prevouts; bitcoinlib CBlock.deserialize+GetTxid",
            "chainsleuth": row(ntx, mb, med["parse/chainsleuth"]),
            "python-bitcoinlib": row(ntx, mb, med["parse/python-bitcoinlib"]),
            "ratio": med["parse/python-bitcoinlib"] / med["parse/chainsleuth"],
        },
        "decode_to_addresses": {
            "what": "canonical rows (hex, asm, types, addresses); bitcoinlib deserialize+GetTxid"
                    "+CBitcoinAddress.from_scriptPubKey per output",
            "chainsleuth": row(ntx, mb, med["decode/chainsleuth"]),
            "python-bitcoinlib": row(ntx, mb, med["decode/python-bitcoinlib"]),
            "ratio": med["decode/python-bitcoinlib"] / med["decode/chainsleuth"],
        },
        "decode_and_write_batch": {
            "what": "decode_blocks + Ledger.write_batch, one batch, fresh ledger; bitcoinlib as decode",
            "chainsleuth": row(ntx, mb, med["write/chainsleuth"]),
            "python-bitcoinlib": row(ntx, mb, med["decode/python-bitcoinlib"]),
            "ratio": med["decode/python-bitcoinlib"] / med["write/chainsleuth"],
            "phases_median_s": {k: statistics.median(v) for k, v in phases.items()},
        },
        "ingest_files": {
            "what": "ingest_blk_files into a fresh ledger (5 files = 5 one-block batches, one copy); "
                    "bitcoinlib decode of the same blocks scaled from the decode runs, writing nothing",
            "chainsleuth": row(ingest_tx, file_mb, med["ingest/chainsleuth"]),
            "python-bitcoinlib": row(ingest_tx, file_mb, ingest_ref),
            "ratio": ingest_ref / med["ingest/chainsleuth"],
            "first_run_seconds": first_ingest,
        },
    }
    print(f"{len(blocks)} blocks, {ntx:,} transactions, {mb:.1f} MB; median of {args.runs} "
          f"interleaved runs after warm-up ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f})")
    print(f"{'level':24s} {'tool':18s} {'tx/s':>12s} {'MB/s':>8s} {'s':>8s} {'ratio':>7s}")
    for level, v in levels.items():
        for tool in ("chainsleuth", "python-bitcoinlib"):
            r = v[tool]
            assert isinstance(r, dict)
            ratio = f"{v['ratio']:6.1f}x" if tool == "chainsleuth" else ""
            print(f"{level:24s} {tool:18s} {r['tx_per_s']:12,.0f} {r['mb_per_s']:8.1f} {r['seconds']:8.4f} {ratio:>7s}")
    print("decode+write_batch phases (median s): "
          + ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in phases.items()))
    print(f"first ingest in this process: {first_ingest:.3f} s")
    print(f"Numba: compile with empty cache {cold_first:.2f} s (import {cold_import:.2f} s); "
          f"first call with warm cache {warm_first:.2f} s (import {warm_import:.2f} s)")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "blk_parse.json").write_text(json.dumps({
        "blocks": len(blocks), "transactions": ntx, "megabytes": mb, "runs": args.runs,
        "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0],
        "levels": levels,
        "ratio_vs_python_bitcoinlib": levels["parse"]["ratio"],
        "numba": {"cold_compile_s": cold_first, "cold_import_s": cold_import,
                  "cached_first_call_s": warm_first, "cached_import_s": warm_import},
        "times_s": times,
    }, indent=2))


if __name__ == "__main__":
    main()
