"""``chainsleuth demo``: the README's main job."""

from __future__ import annotations

from decimal import Decimal

import typer
from rich.panel import Panel
from rich.table import Table

from ..config import data_dir
from ..errors import ConfigError
from ..store import Ledger
from ..store.sql import chain_summary, print_chain_summary
from .common import console, state
from .progress import RichIngestProgress


def _btc(sat: int | None) -> str:
    return "" if sat is None else f"{Decimal(sat) / Decimal(10**8):,.8f}"


def _eth(wei: int | None) -> str:
    return "" if wei is None else f"{Decimal(wei) / Decimal(10**18):,.6f}"


def demo(ctx: typer.Context) -> None:
    """Ingest the real blocks in the shared data into the ledger and summarise them."""
    from ..demo import run_demo

    st = state(ctx)
    data = data_dir()
    if data is None:
        raise ConfigError("the real data folder was not found: set CHAINSLEUTH_DATA (e.g. ../shared/data)")
    console.print(Panel.fit(f"chainsleuth demo\nledger: {st.db}\ndata:   {data}", style="bold"))
    with Ledger(st.db) as ledger, RichIngestProgress(console, quiet=st.quiet) as progress:
        summary = run_demo(ledger, data, progress)
    print_chain_summary(chain_summary(st.db), console)

    t = Table(title="bitcoin mainnet outputs by script type (raw blk files)")
    for c in ("type", "outputs", "BTC"):
        t.add_column(c, justify="right" if c != "type" else "left")
    for r in summary.bitcoin_by_type:
        t.add_row(str(r["type"]), f"{r['outputs']:,}", _btc(r["satoshi"]))
    console.print(t)

    t = Table(title="largest outputs")
    for c in ("address", "BTC", "block", "transaction"):
        t.add_column(c)
    for r in summary.bitcoin_largest:
        t.add_row(r["address"], _btc(r["satoshi"]), str(r["block_number"]), r["transaction_hash"])
    console.print(t)
    cons = summary.bitcoin_conservation
    console.print(
        f"value conservation on bitcoin.transfers: {cons['resolved_spends']:,} spends with all prevouts "
        f"known, {cons['violations']} violate inputs = outputs + fee; "
        f"{cons['spends_with_unknown_prevouts']:,} spend coins from blocks not in the ledger (kept, flagged NULL)."
    )

    t = Table(title="ethereum mainnet blocks 17,173,049-17,173,050 (ethereum-etl export): transfers")
    for col in ("kind", "asset", "legs", "ETH"):
        t.add_column(col)
    for r in summary.ethereum_by_kind:
        t.add_row(r["kind"], r["asset"], f"{r['legs']:,}", _eth(r["wei"]))
    console.print(t)
    t = Table(title="most transferred tokens")
    for col in ("token contract", "transfers", "senders", "receivers"):
        t.add_column(col)
    for r in summary.ethereum_top_tokens:
        t.add_row(r["token"], f"{r['transfers']:,}", f"{r['senders']:,}", f"{r['receivers']:,}")
    console.print(t)
    console.print(f"[green]done.[/] Explore with: chainsleuth --db {st.db} sql \"SELECT * FROM bitcoin.transfers LIMIT 10\"")
