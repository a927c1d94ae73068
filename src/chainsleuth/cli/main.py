"""``chainsleuth`` entry point: global options, command groups, error handling."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..config import db_path
from ..errors import ChainsleuthError
from . import conversions as conversions_cmd
from . import demo as demo_cmd
from . import entities as entities_cmd
from . import exposure as exposure_cmd
from . import flows as flows_cmd
from . import incidents as incidents_cmd
from . import ingest as ingest_cmd
from . import lab as lab_cmd
from . import prices as prices_cmd
from . import report as report_cmd
from . import store as store_cmd
from . import tags as tags_cmd
from .common import State, err_console

app = typer.Typer(
    name="chainsleuth",
    help="Open-source crypto-crime forensics: ingest, cluster, attribute, trace, screen, report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _global(
    ctx: typer.Context,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            help="Ledger file (DuckDB). Default: $CHAINSLEUTH_DB or ./chainsleuth.duckdb.",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    ctx.obj = State(db=db_path(db), quiet=quiet)


app.add_typer(ingest_cmd.app, name="ingest")
store_cmd.register(app)
app.command("demo")(demo_cmd.demo)
conversions_cmd.register(app)
entities_cmd.register(app)
exposure_cmd.register(app)
flows_cmd.register(app)
lab_cmd.register(app)
tags_cmd.register(app)
incidents_cmd.register(app)
prices_cmd.register(app)
report_cmd.register(app)


def main() -> None:
    """Run the CLI; user errors print one line and exit 2, bugs keep their traceback.

    Typer/Click handle usage errors themselves (exit 2 with usage help); our own
    :class:`ChainsleuthError` propagates out of standalone mode and is printed here.
    """
    try:
        app()
    except ChainsleuthError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted; committed batches are kept, rerun to resume[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
