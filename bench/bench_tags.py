"""Tag import: all public GraphSense TagPacks (524k tags) into a fresh ledger, one run.

Goal (issue 3): under 30 s. Set side by side, in the same run, against the parse step
alone of the reference approach: ``yaml.load(..., Loader=yaml.CSafeLoader)`` of every
pack (what graphsense-tagpack-tool does before it validates and inserts; the tool itself
needs PostgreSQL and cannot run here). chainsleuth's figure includes what the baseline
omits: validation against the taxonomy, address normalisation, Arrow build and the DuckDB
insert with commit.

Usage: .venv/bin/python bench/bench_tags.py   Writes bench/out/tags.json.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import yaml

from chainsleuth.config import data_dir
from chainsleuth.store import Ledger
from chainsleuth.tags import import_tags


def main() -> None:
    root = data_dir()
    if root is None:
        raise SystemExit("real data not found: set CHAINSLEUTH_DATA")
    packs = root / "graphsense_tagpacks" / "packs"
    files = sorted(packs.rglob("*.yaml"))

    t = time.perf_counter()
    baseline_tags = 0
    for f in files:
        with f.open("rb") as fh:
            baseline_tags += len(yaml.load(fh, Loader=yaml.CSafeLoader)["tags"])
    baseline_s = time.perf_counter() - t

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        with Ledger(Path(tmp) / "tags.duckdb") as ledger:
            result = import_tags(ledger, "tagpack", packs)
        ours_s = time.perf_counter() - t

    out = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average": os.getloadavg(),
        "files": len(files),
        "tags_imported": result.tags,
        "tags_in_yaml": baseline_tags,
        "chainsleuth_import_s": round(ours_s, 2),
        "baseline_csafeloader_parse_only_s": round(baseline_s, 2),
        "ratio_baseline_over_chainsleuth": round(baseline_s / ours_s, 2),
        "goal_s": 30,
    }
    Path(__file__).with_name("out").mkdir(exist_ok=True)
    Path(__file__).with_name("out").joinpath("tags.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
