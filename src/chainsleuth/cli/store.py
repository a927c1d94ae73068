"""Store commands: ``chains``, ``sql``, ``export parquet``, ``import parquet``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import console, state

export_app = typer.Typer(help="Export ledger tables.", no_args_is_help=True)
import_app = typer.Typer(help="Import ledger tables.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
    app.add_typer(import_app, name="import")
    app.command("sql")(sql)
    app.command("chains")(chains)


def sql(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="A read-only SQL query (DuckDB dialect).")],
    format: Annotated[str, typer.Option("--format", "-f", help="table|csv|json")] = "table",
    limit: Annotated[int, typer.Option(help="Rows to show in table format (0 = all).")] = 100,
) -> None:
    """Run a read-only query against the ledger."""
    from ..store.sql import format_result, run_readonly

    st = state(ctx)
    result = run_readonly(st.db, query)
    format_result(result, format, console, limit=limit)


def chains(ctx: typer.Context) -> None:
    """List the chains in the ledger with their block range and row counts."""
    from ..store.sql import chain_summary, print_chain_summary

    st = state(ctx)
    print_chain_summary(chain_summary(st.db), console)


@export_app.command("parquet")
def export_parquet_cmd(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Output folder: DIR/<chain>/<table>.parquet")],
    chain: Annotated[list[str] | None, typer.Option(help="Chain(s) to export (default: all).")] = None,
) -> None:
    """Export every table of the chosen chains to Parquet."""
    from ..store.parquet import export_parquet

    st = state(ctx)
    from ..store import Ledger

    with Ledger(st.db, read_only=True) as ledger:
        written = export_parquet(ledger, directory, chains=chain)
    for path, rows in written:
        console.print(f"{rows:>10,}  {path}")


@import_app.command("parquet")
def import_parquet_cmd(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Folder written by 'export parquet'.")],
) -> None:
    """Import tables exported with 'export parquet' (replacing the same blocks)."""
    from ..store import Ledger
    from ..store.parquet import import_parquet

    st = state(ctx)
    with Ledger(st.db) as ledger:
        counts = import_parquet(ledger, directory)
    for (chain, table), rows in sorted(counts.items()):
        console.print(f"{rows:>10,}  {chain}.{table}")
