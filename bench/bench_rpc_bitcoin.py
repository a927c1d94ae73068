"""RPC ingest benchmark: chainsleuth vs bitcoin-etl on the same regtest node and range.

Builds a regtest chain with >= 10,000 transactions (fan-out with ``sendmany``,
then many small payments, mining as it goes), then in one run times
``ingest_bitcoin_rpc`` (into a fresh DuckDB ledger) and ``bitcoinetl
export_blocks_and_transactions`` (bitcoin-etl 1.5.2 in its own venv) over the
same range (the whole chain, 0..tip) with the same worker count and batch size. Writes
``bench/out/rpc_bitcoin.json``.

chainsleuth's default for a full-history ingest fetches serialized blocks
(``getblock <hash> 0``) and decodes them with the raw-block decoder; its JSON
mode (verbosity 3) is timed too. Note: in JSON mode chainsleuth asks for verbosity 3 (prevouts inline: input values,
addresses and fees exact) and writes a database; bitcoin-etl asks for verbosity
2 (inputs unenriched) and writes JSON lines. The comparison is of the two tools
as users run them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import httpx  # noqa: E402

from chainsleuth.ingest.bitcoin_rpc import ingest_bitcoin_rpc  # noqa: E402
from chainsleuth.store import Ledger  # noqa: E402
from nodes_bitcoin import BitcoinNode, install_bitcoind  # noqa: E402

ETL_VENV = Path(os.environ.get("BITCOIN_ETL_VENV", "/tmp/bitcoin-etl"))


def ensure_bitcoin_etl() -> Path:
    exe = ETL_VENV / "bin" / "bitcoinetl"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(ETL_VENV)], check=True)
        subprocess.run([str(ETL_VENV / "bin" / "pip"), "install", "-q", "bitcoin-etl==1.5.2"], check=True)
    return exe


def _batch(node: BitcoinNode, method: str, params: list[list[Any]], wallet: str | None = None) -> list[Any]:
    url = f"http://127.0.0.1:{node.port}/" + (f"wallet/{wallet}" if wallet else "")
    calls = [{"jsonrpc": "1.0", "id": k, "method": method, "params": p} for k, p in enumerate(params)]
    reply = httpx.post(url, json=calls, auth=("cs", "cs-regtest"), timeout=600).json()
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--txs", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=10)
    args = ap.parse_args()
    etl = ensure_bitcoin_etl()
    bindir = install_bitcoind()
    with tempfile.TemporaryDirectory(prefix="cs-bench-btc-") as tmp:
        tmpd = Path(tmp)
        (tmpd / "node").mkdir()
        node = BitcoinNode(bindir, tmpd / "node")
        try:
            t0 = time.perf_counter()
            lo, hi = build_chain(node, args.txs)
            built = time.perf_counter() - t0
            n_blocks = hi - lo + 1
            print(f"chain built: blocks {lo}..{hi} in {built:.0f}s")

            lo = 0  # the whole chain: the default full-history ingest (raw blocks)
            n_blocks = hi - lo + 1
            timings = {}
            # The first run pays the decoder's one-time Numba load (about a second);
            # the second, into a fresh ledger, shows the steady state.
            for mode, raw in (("chainsleuth_cold", True), ("chainsleuth", True),
                              ("chainsleuth_json_v3", False)):
                t0 = time.perf_counter()
                with Ledger(tmpd / f"{mode}.duckdb") as led:
                    res = ingest_bitcoin_rpc(led, node.rpc_url, start=lo, end=hi, raw=raw,
                                             batch_size=args.batch_size, workers=args.workers)
                timings[mode] = time.perf_counter() - t0
            n_txs = res.transactions
            cs_s = timings["chainsleuth"]

            t0 = time.perf_counter()
            subprocess.run(
                [str(etl), "export_blocks_and_transactions", "-s", str(lo), "-e", str(hi),
                 "-p", node.rpc_url, "-c", "bitcoin", "-w", str(args.workers), "-b", str(args.batch_size),
                 "--blocks-output", str(tmpd / "blocks.json"),
                 "--transactions-output", str(tmpd / "txs.json")],
                check=True, capture_output=True,
            )
            etl_s = time.perf_counter() - t0
            with open(tmpd / "txs.json") as fh:
                etl_txs = sum(1 for _ in fh)
        finally:
            node.stop()
    assert etl_txs == n_txs, (etl_txs, n_txs)
    out = {
        "blocks": n_blocks, "transactions": n_txs, "workers": args.workers,
        "batch_size": args.batch_size,
        "chainsleuth": {"seconds": cs_s, "blocks_per_s": n_blocks / cs_s, "tx_per_s": n_txs / cs_s,
                        "mode": "getblock 0 + raw decoder"},
        "chainsleuth_cold": {
            "seconds": timings["chainsleuth_cold"],
            "blocks_per_s": n_blocks / timings["chainsleuth_cold"],
            "tx_per_s": n_txs / timings["chainsleuth_cold"],
            "mode": "getblock 0 + raw decoder, first run in the process (JIT cache load)"},
        "chainsleuth_json_v3": {
            "seconds": timings["chainsleuth_json_v3"],
            "blocks_per_s": n_blocks / timings["chainsleuth_json_v3"],
            "tx_per_s": n_txs / timings["chainsleuth_json_v3"], "mode": "getblock 3 JSON"},
        "bitcoin_etl": {"seconds": etl_s, "blocks_per_s": n_blocks / etl_s, "tx_per_s": n_txs / etl_s},
        "ratio": etl_s / cs_s,
        "ratio_json_v3": etl_s / timings["chainsleuth_json_v3"],
        "ratio_cold": etl_s / timings["chainsleuth_cold"],
        "load_average": os.getloadavg(),
    }
    print(f"{'tool':<22}{'seconds':>9}{'blocks/s':>11}{'tx/s':>11}")
    for name in ("chainsleuth", "chainsleuth_cold", "chainsleuth_json_v3", "bitcoin_etl"):
        r = out[name]
        assert isinstance(r, dict)
        print(f"{name:<22}{r['seconds']:>9.2f}{r['blocks_per_s']:>11.1f}{r['tx_per_s']:>11.0f}")
    print(f"chainsleuth / bitcoin-etl speed ratio: {out['ratio']:.1f}x (JSON verbosity-3 mode: "
          f"{out['ratio_json_v3']:.1f}x, first run in process: {out['ratio_cold']:.1f}x)  (load avg {out['load_average']})")
    (REPO / "bench" / "out").mkdir(parents=True, exist_ok=True)
    (REPO / "bench" / "out" / "rpc_bitcoin.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
