"""Evaluation (issue 5): trace the heist lab's laundering under each taint model and score it.

For each lab seed (default: 0, the shipped demo scenario, and 1-5) the lab is run on real
local nodes (``chainsleuth lab --seed N --out DIR``, which writes ``DIR/lab.duckdb`` with
both chains, the lab's tags, the decoded conversions and the ground truth in schema
``lab``); the ledger is clustered once, then traced forward from ``lab.seeds`` under
haircut, poison, FIFO and LIFO (service stops on) and scored by
:func:`chainsleuth.lab.evaluate.evaluate`. Results: ``bench/out/eval_heist_lab.json`` and a
Markdown table on stdout (pasted into docs/accuracy.md).

    .venv/bin/python bench/eval_heist_lab.py [--seeds 0,1,2,3,4,5] [--scale default]
    .venv/bin/python bench/eval_heist_lab.py --ledger DIR/lab.duckdb     # score an existing lab run
    .venv/bin/python bench/eval_heist_lab.py --dataset src/chainsleuth/demo_data/heist  # the shipped one
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

from chainsleuth.demo import DEMO_STOPS, MODELS, investigate, load_dataset
from chainsleuth.store import Ledger

OUT = Path(__file__).resolve().parent / "out"


def _pct(x: Fraction | None) -> str:
    return "n/a" if x is None else f"{float(x):.2%}"


def score_ledger(ledger: Ledger, label: str) -> list[dict[str, Any]]:
    """Cluster once, then trace and score under every model."""
    chains = sorted(c["name"] for c in ledger.chains())
    rows: list[dict[str, Any]] = []
    # the four models with service stops, then haircut through the mixer's pool: the
    # difference is what stopping at the mixer (its unlinkability) costs
    through_mixer = tuple(c for c in DEMO_STOPS if c not in ("mixing_service", "coinjoin"))
    runs = [(m, DEMO_STOPS) for m in MODELS] + [("haircut", through_mixer)]
    for i, (model, stops) in enumerate(runs):
        t0 = time.monotonic()
        s = investigate(ledger, chains, model=model, cluster=(i == 0), exposure=False, stop_categories=stops)
        if stops is through_mixer:
            model = "haircut, through mixer"
        ev = s.evaluation
        if ev is None:
            raise SystemExit(f"{label}: no ground truth (lab.endpoints) in the ledger")
        row = {**ev.to_json(), "scenario": label, "model": model, "seconds": round(time.monotonic() - t0, 2)}
        rows.append(row)
        svc = ev.service_recall()
        print(f"{label:>10} {model:>8}: service recall "
              + ", ".join(f"{a} {_pct(Fraction(f, t) if t else None)}" for a, (f, t) in svc.items())
              + f"; endpoint precision {_pct(ev.endpoint_precision)} ({ev.endpoints_true}/{ev.endpoints_flagged})"
              f"; address precision {_pct(ev.address_precision)}, recall {_pct(ev.address_recall)}", flush=True)  # fmt: skip
    return rows


def run_lab(seed: int, scale: str, workdir: Path, extra: list[str]) -> Path | str:
    """The lab ledger of this seed, or the lab's error (the evaluation goes on and reports it)."""
    out = workdir / f"seed{seed}"
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "chainsleuth.cli.main", "--quiet", "lab", "--seed", str(seed), "--scale", scale,
           "--out", str(out), *extra]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        err = " ".join(proc.stderr.split())[-500:]
        print(f"lab seed {seed} failed ({proc.returncode}): {err}", flush=True)
        return err
    print(f"lab seed {seed}: {time.monotonic() - t0:.0f} s", flush=True)
    return out / "lab.duckdb"


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| scenario | model | service recall (exchange + OTC, per asset) | of it, straight out of the mixer "
             "| recall of the rest | endpoint precision (service) | endpoint precision (address) | address precision "
             "| address recall |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        svc = "; ".join(f"{a} {v['ratio']:.2%}" if v["ratio"] is not None else f"{a} n/a"
                        for a, v in r["service_recall"].items())  # fmt: skip
        ep, es = r["endpoint_precision"], r["endpoint_precision_service"]
        ap, ar = r["address_precision"], r["address_recall"]

        def pc(d: dict[str, Any], a: str, b: str) -> str:
            return "n/a" if d["ratio"] is None else f"{d['ratio']:.2%} ({d[a]}/{d[b]})"

        truth = {a: int(v["truth"]) for a, v in r["service_recall"].items()}
        mix = "; ".join(f"{a} {int(v) / truth[a]:.2%}" for a, v in r.get("from_mixer", {}).items() if truth.get(a))
        rest = "; ".join(f"{a} {v['ratio']:.2%}" for a, v in r.get("service_recall_without_mixer", {}).items()
                         if v["ratio"] is not None)  # fmt: skip
        if "through mixer" in r["model"]:
            rest = "(mixer not a stop)"
        lines.append(f"| {r['scenario']} | {r['model']} | {svc} | {mix} | {rest} | {pc(es, 'true', 'flagged')} "
                     f"| {pc(ep, 'true', 'flagged')} | {pc(ap, 'true', 'flagged')} | {pc(ar, 'found', 'truth')} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2,3,4,5")
    ap.add_argument("--scale", default="default")
    ap.add_argument("--ledger", type=Path, help="score this lab ledger instead of running the lab")
    ap.add_argument("--dataset", type=Path, help="score a heist dataset folder (loaded into a scratch ledger)")
    ap.add_argument("--workdir", type=Path, help="where lab runs go (default: a temporary folder)")
    ap.add_argument("--table", nargs="+", type=Path, help="only print the table of these result JSON files")
    ap.add_argument("--lab-arg", action="append", default=[], help="extra argument for `chainsleuth lab`")
    args = ap.parse_args()
    if args.table:
        docs = [json.loads(p.read_text()) for p in args.table]
        print(markdown([r for d in docs for r in d["rows"]]))
        for d in docs:
            for fl in d.get("failed", []):
                print(f"\n{fl['scenario']}: the lab run failed: {fl['error']}")
        return
    rows: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    if args.ledger or args.dataset:
        with tempfile.TemporaryDirectory() as tmp:
            path = args.ledger or Path(tmp) / "eval.duckdb"
            with Ledger(path) as led:
                if args.dataset:
                    load_dataset(led, args.dataset)
                label = args.dataset.name if args.dataset else args.ledger.parent.name.replace("seed", "seed ")
                rows += score_ledger(led, label)
    else:
        work = args.workdir or Path(tempfile.mkdtemp(prefix="cs-eval-"))
        for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
            got = run_lab(seed, args.scale, work, args.lab_arg)
            if isinstance(got, str):
                failed.append({"scenario": f"seed {seed}", "error": got})
                continue
            with Ledger(got) as led:
                rows += score_ledger(led, f"seed {seed}")
    OUT.mkdir(exist_ok=True)
    result = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.platform(),
              "cpus": __import__("os").cpu_count(), "python": platform.python_version(), "rows": rows, "failed": failed}  # fmt: skip
    (OUT / "eval_heist_lab.json").write_text(json.dumps(result, indent=2))
    print(markdown(rows))
    for f in failed:
        print(f"\n{f['scenario']}: the lab run failed: {f['error']}")


if __name__ == "__main__":
    main()
