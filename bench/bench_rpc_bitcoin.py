"""RPC ingest benchmark: chainsleuth vs bitcoin-etl on the same regtest node and range.

Builds a regtest chain with >= 10,000 transactions (fan-out with ``sendmany``,
then many small payments, mining as it goes), then times, over the same range
(the whole chain, 0..tip), with the same worker count and batch size:

* ``chainsleuth`` raw mode (the default for a full-history ingest: serialized
  blocks from ``getblock <hash> 0`` decoded by the raw-block decoder), into a
  fresh DuckDB ledger each run, ledger open and close (its checkpoint) included;
* ``chainsleuth`` JSON mode (``getblock <hash> 3``, prevouts inline);
* ``bitcoinetl export_blocks_and_transactions`` (bitcoin-etl 1.5.2 in its own
  venv, same ``-w``/``-b``), a process per run as users run it;
* the node floor: the bare fetch of ``getblock`` 0, 2 and 3 for the range with
  the same batches and threads, reply bytes read and nothing decoded.

Steady state: one warm-up run of each, then 3 interleaved rounds; the median
is reported. First run: chainsleuth in a fresh process (interpreter start,
imports and the decoder's compiled-kernel load included), timed like
bitcoin-etl's process, median of 3. Writes ``bench/out/rpc_bitcoin.json``.

Note: in JSON mode chainsleuth asks for verbosity 3 (prevouts inline: input
values, addresses and fees exact) and writes a database; bitcoin-etl asks for
verbosity 2 (inputs unenriched) and writes JSON lines. The comparison is of the
two tools as users run them. ``--node-datadir`` keeps the built chain for later
runs (reused when it holds one). The machine is shared: see ``load_average``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import httpx  # noqa: E402

from chainsleuth.ingest.bitcoin_rpc import ingest_bitcoin_rpc  # noqa: E402
from chainsleuth.store import Ledger  # noqa: E402
from nodes_bitcoin import RPC_PASSWORD, RPC_USER, BitcoinNode, install_bitcoind  # noqa: E402

ETL_VENV = Path(os.environ.get("BITCOIN_ETL_VENV", "/tmp/bitcoin-etl"))
ROUNDS = 3

# A fresh interpreter: imports, kernel load and one ingest, timed from its start.
_COLD_SCRIPT = """
import sys, time
t0 = time.perf_counter()
from chainsleuth.ingest.bitcoin_rpc import ingest_bitcoin_rpc
from chainsleuth.store import Ledger
with Ledger(sys.argv[1]) as led:
    t1 = time.perf_counter()
    res = ingest_bitcoin_rpc(led, sys.argv[2], start=0, end=int(sys.argv[3]), raw=True,
                             batch_size=int(sys.argv[4]), workers=int(sys.argv[5]))
    t2 = time.perf_counter()
print(res.transactions, t1 - t0, t2 - t1)
"""


def ensure_bitcoin_etl() -> Path:
    exe = ETL_VENV / "bin" / "bitcoinetl"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(ETL_VENV)], check=True)
        subprocess.run([str(ETL_VENV / "bin" / "pip"), "install", "-q", "bitcoin-etl==1.5.2"], check=True)
    return exe


def _batch(node: BitcoinNode, method: str, params: list[list[Any]], wallet: str | None = None) -> list[Any]:
    url = f"http://127.0.0.1:{node.port}/" + (f"wallet/{wallet}" if wallet else "")
    calls = [{"jsonrpc": "1.0", "id": k, "method": method, "params": p} for k, p in enumerate(params)]
    reply = httpx.post(url, json=calls, auth=(RPC_USER, RPC_PASSWORD), timeout=600).json()
    errors = [r["error"] for r in reply if r.get("error")]
    if errors:
        raise RuntimeError(f"{method}: {errors[0]}")
    return [r["result"] for r in sorted(reply, key=lambda r: r["id"])]


def build_chain(node: BitcoinNode, target_txs: int) -> tuple[int, int]:
    """Fan out to 1,000 UTXOs, then each round spends every one of them in its own
    1-in-2-out tx (signed in one batch) and mines the round in one block."""
    node.ensure_wallet()
    node.mine(101)
    first = node.height() + 1
    w = "w"
    addrs = _batch(node, "getnewaddress", [["", "bech32"]] * 1000, wallet=w)
    for k in range(0, 1000, 250):
        node.rpc("sendmany", "", {a: 0.05 for a in addrs[k:k + 250]}, wallet=w)
    node.mine(1)
    dests = _batch(node, "getnewaddress", [["", t] for t in ("bech32", "bech32m", "legacy", "p2sh-segwit")] * 25, wallet=w)
    txs = 0
    while txs < target_txs:
        utxos = [u for u in node.rpc("listunspent", 1, 9999999, wallet=w)
                 if 0.002 < u["amount"] < 1][:1000]
        raws = _batch(node, "createrawtransaction", [
            [[{"txid": u["txid"], "vout": u["vout"]}],
             [{dests[k % len(dests)]: 0.001}, {u["address"]: round(u["amount"] - 0.001 - 0.00001, 8)}]]
            for k, u in enumerate(utxos)])
        signed = _batch(node, "signrawtransactionwithwallet", [[r] for r in raws], wallet=w)
        _batch(node, "sendrawtransaction", [[s["hex"]] for s in signed])
        node.mine(1)
        txs += len(raws) + 1
    node.mine(5)
    return first, node.height()


def _chain_tx_count(node: BitcoinNode) -> int:
    if node.height() < 1:
        return 1
    stats = node.rpc("getchaintxstats", 1)
    return int(stats["txcount"])


def node_floor(node: BitcoinNode, hi: int, verbosity: int, batch_size: int, workers: int) -> float:
    """Seconds to fetch getblock <verbosity> for 0..hi: same batches and threads, bytes only."""
    hashes = _batch(node, "getblockhash", [[h] for h in range(hi + 1)])
    groups = [hashes[k:k + batch_size] for k in range(0, len(hashes), batch_size)]
    url = f"http://127.0.0.1:{node.port}/"
    with httpx.Client(auth=(RPC_USER, RPC_PASSWORD), timeout=600) as client:
        def fetch(group: list[str]) -> int:
            body = [{"jsonrpc": "1.0", "id": k, "method": "getblock", "params": [h, verbosity]}
                    for k, h in enumerate(group)]
            return len(client.post(url, json=body).content)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            total = sum(pool.map(fetch, groups))
        elapsed = time.perf_counter() - t0
    assert total > 0
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--txs", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=10)
    ap.add_argument("--node-datadir", type=Path, default=None,
                    help="keep the regtest chain here (reused when it already holds one)")
    args = ap.parse_args()
    etl = ensure_bitcoin_etl()
    bindir = install_bitcoind()
    with tempfile.TemporaryDirectory(prefix="cs-bench-btc-") as tmp:
        tmpd = Path(tmp)
        datadir = args.node_datadir or tmpd / "node"
        datadir.mkdir(parents=True, exist_ok=True)
        node = BitcoinNode(bindir, datadir)
        try:
            if _chain_tx_count(node) < args.txs:
                t0 = time.perf_counter()
                build_chain(node, args.txs)
                print(f"chain built in {time.perf_counter() - t0:.0f}s")
            hi = node.height()
            n_blocks = hi + 1
            w, b = args.workers, args.batch_size
            runs = 0

            def cs(raw: bool) -> Callable[[], float]:
                def run() -> float:
                    nonlocal runs
                    runs += 1
                    path = tmpd / f"cs{runs}.duckdb"
                    t0 = time.perf_counter()
                    with Ledger(path) as led:
                        res = ingest_bitcoin_rpc(led, node.rpc_url, start=0, end=hi, raw=raw,
                                                 batch_size=b, workers=w)
                    elapsed = time.perf_counter() - t0
                    path.unlink()
                    counts.append(res.transactions)
                    return elapsed
                return run

            def cs_cold() -> float:
                nonlocal runs
                runs += 1
                path = tmpd / f"cs{runs}.duckdb"
                t0 = time.perf_counter()
                out = subprocess.run(
                    [sys.executable, "-c", _COLD_SCRIPT, str(path), node.rpc_url, str(hi), str(b), str(w)],
                    check=True, capture_output=True, text=True).stdout.split()
                elapsed = time.perf_counter() - t0
                path.unlink()
                counts.append(int(out[0]))
                cold_ingest.append(float(out[2]))
                return elapsed

            def etl_run() -> float:
                t0 = time.perf_counter()
                subprocess.run(
                    [str(etl), "export_blocks_and_transactions", "-s", "0", "-e", str(hi),
                     "-p", node.rpc_url, "-c", "bitcoin", "-w", str(w), "-b", str(b),
                     "--blocks-output", str(tmpd / "blocks.json"),
                     "--transactions-output", str(tmpd / "txs.json")],
                    check=True, capture_output=True,
                )
                elapsed = time.perf_counter() - t0
                with open(tmpd / "txs.json") as fh:
                    counts.append(sum(1 for _ in fh))
                return elapsed

            tools: dict[str, Callable[[], float]] = {
                "chainsleuth": cs(True),
                "chainsleuth_json_v3": cs(False),
                "chainsleuth_first_run": cs_cold,
                "bitcoin_etl": etl_run,
            }
            for verb in (0, 2, 3):
                tools[f"node_getblock_{verb}"] = functools.partial(node_floor, node, hi, verb, b, w)
            counts: list[int] = []
            cold_ingest: list[float] = []
            times: dict[str, list[float]] = {name: [] for name in tools}
            for fn in tools.values():  # warm-up, not counted
                fn()
            counts.clear()
            cold_ingest.clear()
            for _ in range(ROUNDS):
                for name, fn in tools.items():
                    times[name].append(fn())
            n_txs = _chain_tx_count(node)
        finally:
            node.stop()
    assert set(counts) == {n_txs}, (set(counts), n_txs)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    etl_s = med["bitcoin_etl"]
    modes = {
        "chainsleuth": "getblock 0 + raw decoder, in-process steady state (warm)",
        "chainsleuth_json_v3": "getblock 3 JSON, in-process steady state (warm)",
        "chainsleuth_first_run": "getblock 0 + raw decoder, fresh process (interpreter, imports, kernel load)",
        "bitcoin_etl": "export_blocks_and_transactions, a process per run (getblock 2, JSON lines)",
        "node_getblock_0": "bare fetch of getblock 0 (hex) for the range, bytes only",
        "node_getblock_2": "bare fetch of getblock 2 (JSON) for the range, bytes only",
        "node_getblock_3": "bare fetch of getblock 3 (JSON + prevouts) for the range, bytes only",
    }
    out: dict[str, Any] = {
        "blocks": n_blocks, "transactions": n_txs, "workers": args.workers,
        "batch_size": args.batch_size, "rounds": ROUNDS, "statistic": "median",
    }
    for name, secs in med.items():
        out[name] = {"seconds": secs, "runs": times[name], "blocks_per_s": n_blocks / secs,
                     "tx_per_s": n_txs / secs, "mode": modes[name],
                     "speed_vs_bitcoin_etl": etl_s / secs}
    out["chainsleuth_first_run"]["ingest_seconds_in_process"] = statistics.median(cold_ingest)
    out["ratio"] = etl_s / med["chainsleuth"]
    out["ratio_json_v3"] = etl_s / med["chainsleuth_json_v3"]
    out["ratio_first_run"] = etl_s / med["chainsleuth_first_run"]
    out["load_average"] = os.getloadavg()
    out["cpu_count"] = os.cpu_count()
    print(f"{n_blocks} blocks, {n_txs} tx, -w {args.workers} -b {args.batch_size}, median of {ROUNDS}")
    print(f"{'tool':<24}{'seconds':>9}{'blocks/s':>10}{'tx/s':>9}{'vs etl':>8}")
    for name in tools:
        r = out[name]
        print(f"{name:<24}{r['seconds']:>9.3f}{r['blocks_per_s']:>10.1f}{r['tx_per_s']:>9.0f}"
              f"{r['speed_vs_bitcoin_etl']:>7.2f}x")
    print(f"chainsleuth / bitcoin-etl: {out['ratio']:.2f}x steady, {out['ratio_first_run']:.2f}x first run "
          f"in a fresh process, {out['ratio_json_v3']:.2f}x JSON verbosity 3 (load avg {out['load_average']})")
    (REPO / "bench" / "out").mkdir(parents=True, exist_ok=True)
    (REPO / "bench" / "out" / "rpc_bitcoin.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
