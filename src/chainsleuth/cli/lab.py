"""``chainsleuth lab``: play the DPRK-style heist lab on local nodes (docs/lab.md)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.table import Table

from ..store import Ledger
from .common import console, state
from .progress import RichIngestProgress


def _amount(asset: str, value: int, decimals: dict[str, int]) -> str:
    d = decimals.get(asset, 18)
    return f"{Decimal(value) / Decimal(10**d):,.{min(d, 8)}f}"


def lab(
    ctx: typer.Context,
    seed: Annotated[int, typer.Option(help="Seed of keys, amounts and choices (same seed, same run).")] = 0,
    scale: Annotated[str, typer.Option(
        help="tiny|small|default|large, optionally with overrides: 'small,hops=4,splits=10'.")] = "default",
    background: Annotated[int | None, typer.Option(help="Background actions (overrides the scale's).")] = None,
    hops: Annotated[int | None, typer.Option(help="Peel hops per chain on Bitcoin (overrides the scale's).")] = None,
    delays: Annotated[str | None, typer.Option(
        help="Seconds between stages, e.g. 'split=600,mixer=3600,bridge=1200,peel=1800,cashout=10800'.")] = None,
    anvil_rpc: Annotated[str | None, typer.Option(help="Use this anvil instead of starting one.")] = None,
    bitcoin_rpc: Annotated[str | None, typer.Option(
        help="Use this regtest node (http://user:pass@host:port, a fresh one) instead of starting one.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the lab ledger (OUT/lab.duckdb).")] = Path("lab-out"),
    export_demo: Annotated[Path | None, typer.Option(
        help="Also export ledger, tags and ground truth as a Parquet dataset into this folder.")] = None,
) -> None:
    """Replay a DPRK-style heist (theft, split, swaps, mixer, bridge, peel chains, cash-out) on
    anvil and Bitcoin Knots regtest, ingest both chains and write tags and ground truth."""
    from ..lab import LabParams, run_lab

    st = state(ctx)
    params = LabParams(seed=seed, scale=scale, background=background, hops=hops, delays=delays,
                       anvil_rpc=anvil_rpc, bitcoin_rpc=bitcoin_rpc, out=out, export_demo=export_demo)
    with RichIngestProgress(console, quiet=st.quiet) as progress:
        res = run_lab(params, progress)
    with Ledger(res.ledger, read_only=True) as ledger:
        meta = dict(ledger.con.execute("SELECT key, value FROM lab.meta").fetchall())
    symbols = {v: k for k, v in orjson.loads(meta["tokens"]).items()}
    decimals = {k: int(v) for k, v in orjson.loads(meta["token_decimals"]).items()}
    console.print(f"lab seed {seed}, scale {res.scale.name}: ethereum {res.eth_blocks:,} blocks "
                  f"{res.eth_transactions:,} txs; bitcoin {res.btc_blocks:,} blocks {res.btc_transactions:,} txs; "
                  f"{res.swaps:,} swaps decoded, bridge {res.bridge_matched} matched / {res.bridge_unmatched} "
                  f"unmatched; {res.seconds['total']:.1f} s", markup=False)
    t = Table(title="where the stolen value went (ground truth, lab.endpoints)")
    for c in ("chain", "kind", "service", "asset", "amount", "rows"):
        t.add_column(c, justify="right" if c in ("amount", "rows") else "left")
    for e in res.endpoints:
        asset = str(e["asset"])
        t.add_row(e["chain"], e["kind"], e["service"] or "-", symbols.get(asset, asset),
                  _amount(asset, int(e["value"]), decimals), str(e["count"]))
    console.print(t)
    stolen = ", ".join(f"{_amount(a, v, decimals)} {symbols.get(a, a)}" for a, v in res.stolen.items())
    bad = [c for c in res.conservation if c["difference"] != 0]
    console.print(f"stolen: {stolen}; books balance on every asset: {'yes' if not bad else 'NO'}", markup=False)
    console.print(f"ledger: {res.ledger}" + (f"; dataset: {res.exported} ({res.export_bytes / 1e6:.1f} MB)"
                                             if res.exported else ""), markup=False)


def register(app: typer.Typer) -> None:
    app.command("lab")(lab)
