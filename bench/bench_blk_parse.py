"""Raw block decoding: chainsleuth vs python-bitcoinlib on the same real mainnet bytes, one run.

Usage: .venv/bin/python bench/bench_blk_parse.py [--repeat N]
Writes bench/out/blk_parse.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from bitcoin.core import CBlock

from chainsleuth.config import data_dir
from chainsleuth.ingest.blk_files import decode_blocks, ingest_blk_files
from chainsleuth.store import Ledger

FILES = ["version2.blk", "version3.blk", "version4.blk", "scriptwitness.blk", "block176149.blk"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    d = data_dir()
    if d is None:
        raise SystemExit("real data not found: set CHAINSLEUTH_DATA")
    blocks = []
    for f in FILES:
        data = (d / "raw_blocks" / f).read_bytes()
        blocks.append(data[8 : 8 + int.from_bytes(data[4:8], "little")])
    blocks = blocks * args.repeat
    buf = np.frombuffer(b"".join(blocks), np.uint8)
    sizes = np.array([len(b) for b in blocks], np.int64)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    mb = buf.shape[0] / 1e6
    decode_blocks(buf[: ends[0]], starts[:1], ends[:1], [0], "mainnet")  # JIT warm-up

    t = time.perf_counter()
    tables = decode_blocks(buf, starts, ends, list(range(len(blocks))), "mainnet")
    ours = time.perf_counter() - t
    ntx = tables["transactions"].num_rows

    t = time.perf_counter()
    n_ref = 0
    for b in blocks:
        blk = CBlock.deserialize(b)
        n_ref += len([tx.GetTxid() for tx in blk.vtx])
    ref = time.perf_counter() - t
    assert n_ref == ntx

    # With the DB write: real files into a fresh ledger (one copy of each block).
    with tempfile.TemporaryDirectory() as tmp, Ledger(Path(tmp) / "b.duckdb") as led:
        paths = [d / "raw_blocks" / f for f in FILES]
        t = time.perf_counter()
        res = ingest_blk_files(led, paths, first_height=176149)
        with_db = time.perf_counter() - t
    rows = {
        "chainsleuth decode (rows+txids+addresses+asm)": (ntx / ours, mb / ours, ours),
        "python-bitcoinlib deserialize+GetTxid": (ntx / ref, mb / ref, ref),
        "chainsleuth ingest incl. DuckDB write": (res.transactions / with_db,
                                                  sum(sizes[: len(FILES)]) / 1e6 / with_db, with_db),
    }
    print(f"{len(blocks)} blocks, {ntx:,} transactions, {mb:.1f} MB")
    print(f"{'decoder':50s} {'tx/s':>12s} {'MB/s':>8s} {'s':>7s}")
    for k, (tps, mbs, s) in rows.items():
        print(f"{k:50s} {tps:12,.0f} {mbs:8.1f} {s:7.3f}")
    ratio = ref / ours
    print(f"ratio decode vs python-bitcoinlib: {ratio:.1f}x")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "blk_parse.json").write_text(json.dumps({
        "blocks": len(blocks), "transactions": ntx, "megabytes": mb,
        "results": {k: {"tx_per_s": v[0], "mb_per_s": v[1], "seconds": v[2]} for k, v in rows.items()},
        "ratio_vs_python_bitcoinlib": ratio,
    }, indent=2))


if __name__ == "__main__":
    main()
