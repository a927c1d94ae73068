"""``chainsleuth ingest``: Bitcoin (RPC or blk files), Ethereum (RPC), blockchain-etl files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import ConfigError
from ..ingest.base import IngestResult
from ..store import Ledger
from .common import console, state
from .progress import RichIngestProgress

app = typer.Typer(help="Load chain data into the ledger.", no_args_is_help=True)


def _print_result(res: IngestResult) -> None:
    t = Table(title=f"ingested into [bold]{res.chain}[/]", show_header=True)
    t.add_column("table")
    t.add_column("rows", justify="right")
    for table, n in sorted(res.rows.items()):
        t.add_row(table, f"{n:,}")
    console.print(t)
    rng = "" if res.first_block is None else f" (heights {res.first_block}..{res.last_block})"
    rate = res.transactions / res.seconds if res.seconds > 0 else 0.0
    console.print(
        f"{res.blocks:,} blocks{rng}, {res.transactions:,} transactions in {res.seconds:.1f}s "
        f"({rate:,.0f} tx/s); {res.skipped_blocks:,} blocks already stored"
    )
    for fork, removed in res.reorgs:
        console.print(f"[yellow]reorg:[/] rolled back {removed} block(s) above height {fork}")


@app.command("bitcoin")
def ingest_bitcoin(
    ctx: typer.Context,
    rpc: Annotated[str | None, typer.Option(help="Node RPC URL, e.g. http://user:pass@127.0.0.1:8332")] = None,
    blk: Annotated[list[Path] | None, typer.Option(help="Raw blk*.dat files (repeatable).")] = None,
    network: Annotated[str, typer.Option(help="mainnet|testnet|regtest|signet (for --blk).")] = "mainnet",
    chain: Annotated[str | None, typer.Option(help="Chain (schema) name. Default: bitcoin, or bitcoin_<network>.")] = None,
    from_: Annotated[int | None, typer.Option("--from", help="First height (RPC). Default: after the stored tip.")] = None,
    to: Annotated[int | None, typer.Option(help="Last height (RPC). Default: the node's tip.")] = None,
    batch_size: Annotated[int, typer.Option(help="Blocks per RPC batch.")] = 50,
    workers: Annotated[int, typer.Option(help="Concurrent RPC batches.")] = 4,
    xor_key: Annotated[Path | None, typer.Option(help="blocks/xor.dat of Core >= 28 (default: found beside the blk files).")] = None,
    height: Annotated[int | None, typer.Option(help="Height of the first block in --blk files, when not from genesis and not in BIP34 coinbase.")] = None,
) -> None:
    """Ingest a Bitcoin-family chain from a Core/Knots node or from raw blk files."""
    st = state(ctx)
    if (rpc is None) == (not blk):
        raise ConfigError("give exactly one of --rpc URL or --blk FILE...")
    with Ledger(st.db) as ledger, RichIngestProgress(console, quiet=st.quiet) as progress:
        if rpc is not None:
            from ..ingest.bitcoin_rpc import ingest_bitcoin_rpc

            res = ingest_bitcoin_rpc(
                ledger, rpc, chain=chain, start=from_, end=to,
                batch_size=batch_size, workers=workers, progress=progress,
            )
        else:
            from ..ingest.blk_files import ingest_blk_files

            res = ingest_blk_files(
                ledger, list(blk or []), network=network, chain=chain,
                xor_key_path=xor_key, first_height=height, progress=progress,
            )
    _print_result(res)


@app.command("ethereum")
def ingest_ethereum(
    ctx: typer.Context,
    rpc: Annotated[str, typer.Option(help="Node RPC URL, e.g. http://127.0.0.1:8545")],
    chain: Annotated[str, typer.Option(help="Chain (schema) name.")] = "ethereum",
    from_: Annotated[int | None, typer.Option("--from", help="First block. Default: after the stored tip.")] = None,
    to: Annotated[int | None, typer.Option(help="Last block. Default: the node's latest.")] = None,
    traces: Annotated[str, typer.Option(help="parity (trace_block) | geth (debug_traceBlockByNumber callTracer) | none")] = "parity",
    batch_size: Annotated[int, typer.Option(help="Blocks per RPC batch.")] = 50,
    workers: Annotated[int, typer.Option(help="Concurrent RPC batches.")] = 4,
) -> None:
    """Ingest an Ethereum-family chain: blocks, transactions, receipts, logs, token transfers, traces."""
    if traces not in ("parity", "geth", "none"):
        raise ConfigError("--traces must be parity, geth or none")
    st = state(ctx)
    from ..ingest.ethereum_rpc import ingest_ethereum_rpc

    with Ledger(st.db) as ledger, RichIngestProgress(console, quiet=st.quiet) as progress:
        res = ingest_ethereum_rpc(
            ledger, rpc, chain=chain, start=from_, end=to, traces=traces,
            batch_size=batch_size, workers=workers, progress=progress,
        )
    _print_result(res)


@app.command("etl")
def ingest_etl(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A file or folder of bitcoin-etl / ethereum-etl / BigQuery exports (JSON lines or CSV).")],
    chain: Annotated[str, typer.Option(help="Chain (schema) name, e.g. bitcoin or ethereum.")],
    family: Annotated[str | None, typer.Option(help="bitcoin|ethereum (default: from the chain or the files).")] = None,
) -> None:
    """Ingest blockchain-etl exports (no node needed)."""
    st = state(ctx)
    from ..ingest.etl_files import ingest_etl_files

    with Ledger(st.db) as ledger, RichIngestProgress(console, quiet=st.quiet) as progress:
        res = ingest_etl_files(ledger, path, chain=chain, family=family, progress=progress)
    _print_result(res)
