"""Benchmark: a 6-hop forward haircut trace in a synthetic 10M-transfer account ledger.

Goal (issue 4): < 1 s. Reported separately:
* ``propagate_s``: the compiled propagation over the loaded arrays (the hot loop),
* ``load_s``: the one DuckDB query that materialises the legs and fetches them,
* ``cold_trace_s``: the first ``trace()`` of a session: loads the legs (one DuckDB
  query materialising them in time order, then column fetches) and traces,
* ``trace_s``: a further ``trace()`` in the same session (legs cached per
  connection, chain, window and tip): seed lookup + propagate + results.

The ledger is generated inside DuckDB (native ETH transactions between 1M
addresses, pseudo-random by ``hash``); it is cached in ``bench/out/``.

    .venv/bin/python bench/bench_trace.py [--transfers 10000000] [--addresses 1000000]

No peer tool runs here: BlockSci (the reference for these models) is not
installable on this machine; see docs/flows.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from chainsleuth.flows import propagate
from chainsleuth.flows.trace import trace
from chainsleuth.store import Ledger

OUT = Path(__file__).resolve().parent / "out"


def build(path: Path, n: int, n_addr: int) -> None:
    with Ledger(path) as led:
        led.ensure_chain("synth", "ethereum", network="synthetic")
        led.con.execute(f"""
            INSERT INTO synth.transactions (hash, block_number, block_timestamp, transaction_index,
                                            from_address, to_address, value)
            SELECT '0x' || lpad(format('{{:x}}', i), 64, '0'), i // 100,
                   make_timestamp(1600000000000000 + (i // 100) * 12000000), i % 100,
                   '0xa' || lpad(CAST(hash(i) % {n_addr} AS VARCHAR), 39, '0'),
                   '0xa' || lpad(CAST(hash(i * 7 + 3) % {n_addr} AS VARCHAR), 39, '0'),
                   CAST(1 + hash(i * 13 + 5) % 1000000000 AS HUGEINT)
            FROM range({n}) t(i)""")  # fmt: skip
        led.con.execute(f"""INSERT INTO synth.blocks (number, hash, timestamp)
            SELECT b, '0xb' || b, make_timestamp(1600000000000000 + b * 12000000) FROM range({n // 100 + 1}) t(b)""")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--transfers", type=int, default=10_000_000)
    ap.add_argument("--addresses", type=int, default=1_000_000)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"trace_{args.transfers}_{args.addresses}.duckdb"
    if not path.exists():
        t0 = time.perf_counter()
        build(path, args.transfers, args.addresses)
        print(f"built {args.transfers:,} transfers in {time.perf_counter() - t0:.1f} s")
    with Ledger(path) as led:
        seed_row = led.con.execute("SELECT from_address FROM synth.transactions WHERE block_number = 0 LIMIT 1").fetchone()
        assert seed_row is not None
        seed = str(seed_row[0])
        one = np.zeros(1, dtype=np.int64)
        flag = np.zeros(1, dtype=np.bool_)
        propagate.run_account(one, one, one + 1, flag, flag, flag, one.astype(np.int8), flag, 1,
                              model="haircut", max_hops=6, min_value=0)  # compile first  # fmt: skip
        t0 = time.perf_counter()
        trace(led, "synth", [seed], model="haircut", hops=6)
        cold_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = trace(led, "synth", [seed], model="haircut", hops=6)
        trace_s = time.perf_counter() - t0
        # the hot loop alone, on the arrays the trace loaded
        arr = led.con.execute("SELECT src, dst, is_fee FROM _cs_acct ORDER BY rn").fetchnumpy()
        t1 = time.perf_counter()
        amount = led.con.execute("SELECT CAST(amount AS BIGINT) AS v FROM _cs_acct ORDER BY rn").fetchnumpy()["v"]
        load_s = time.perf_counter() - t1
        src = np.asarray(arr["src"], dtype=np.int64)
        dst = np.asarray(arr["dst"], dtype=np.int64)
        n_states = int(max(src.max(), dst.max())) + 1
        seed_id = int(src[0])
        seed_row_mask = dst == seed_id
        is_seed = np.zeros(n_states, dtype=np.int8)
        is_seed[seed_id] = 1
        t2 = time.perf_counter()
        out = propagate.run_account(
            src, dst, np.asarray(amount, dtype=np.int64), np.asarray(arr["is_fee"], dtype=np.bool_),
            seed_row_mask, np.zeros(src.shape[0], dtype=np.bool_), is_seed,
            np.zeros(n_states, dtype=np.bool_), n_states, model="haircut", max_hops=6, min_value=0,
        )  # fmt: skip
        prop_s = time.perf_counter() - t2
        tainted_accounts = int((out["tnt"] > 0).sum())
    result = {
        "transfers": args.transfers, "addresses": args.addresses, "model": "haircut", "hops": 6,
        "cold_trace_s": round(cold_s, 3), "trace_s": round(trace_s, 3), "propagate_s": round(prop_s, 3), "amount_fetch_s": round(load_s, 3),
        "propagate_transfers_per_s": round(args.transfers / prop_s),
        "edges": len(res.edges), "holdings": len(res.holdings), "tainted_accounts": tainted_accounts,
        "left_untraced": {k: {a: str(v) for a, v in d.items()} for k, d in res.left.items()},
        "seed_value": {a: str(v) for a, v in res.seed_value.items()},
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "goal_s": 1.0, "note": "machine shared with other jobs (2 cores); propagate_s is the compiled hot loop",
    }  # fmt: skip
    (OUT / "trace.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
