"""``chainsleuth prices``: load the daily USD price series and look up values."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..config import data_dir
from ..errors import ConfigError
from ..store import Ledger
from .common import console, date_option, state

prices_app = typer.Typer(help="Daily USD prices (BTC, ETH) for valuation at the time.", no_args_is_help=True)


@prices_app.command("import")
def import_cmd(
    ctx: typer.Context,
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Price files (default: the BTC and ETH daily series in $CHAINSLEUTH_DATA).")] = None,
) -> None:
    """Load daily price series; re-importing a source replaces its rows."""
    from ..prices import DEFAULT_FILES, import_price_files

    files = list(paths or [])
    if not files:
        d = data_dir()
        if d is None:
            raise ConfigError("no data folder: pass the files, or set CHAINSLEUTH_DATA to the shared data folder")
        files = [d / f for f in DEFAULT_FILES]
    with Ledger(state(ctx).db) as ledger:
        done = import_price_files(ledger, [(f, None) for f in files])
    for r in done:
        console.print(f"{r.asset}: {r.rows:,} daily prices {r.first_day} .. {r.last_day} from {r.source}",
                      markup=False)  # fmt: skip


@prices_app.command("show")
def show_cmd(
    ctx: typer.Context,
    asset: Annotated[str | None, typer.Argument(help="BTC, ETH or a token contract address.")] = None,
    on: Annotated[str | None, typer.Option("--date", help="Day (YYYY-MM-DD); default: the latest price.")] = None,
    amount: Annotated[int | None, typer.Option(help="Amount in base units (satoshi, wei) to value.")] = None,
) -> None:
    """Without an asset: the loaded series. With one: its price (and an amount's value) on a day."""
    from ..prices import price_imports, usd_value
    from ..prices.valuation import usd_text

    day = date_option(on, "--date")
    if amount is not None and amount < 0:
        raise ConfigError(f"--amount must be a non-negative number of base units, not {amount}")
    with Ledger(state(ctx).db) as ledger:
        if asset is None:
            t = Table("asset", "source", "days", "first", "last", "file")
            for r in price_imports(ledger):
                t.add_row(str(r["asset"]), str(r["source"]), f"{r['rows']:,}", str(r["first_day"]),
                          str(r["last_day"]), str(r["path"]))  # fmt: skip
            console.print(t, markup=False)
            return
        v = usd_value(ledger, asset, amount if amount is not None else 0, None, day)
    price = "no price" if v.price is None else f"{usd_text(v.price)} USD"
    console.print(f"{asset} on {v.price_day or 'latest'}: {price} ({v.flag}; {v.source or 'no source'})", markup=False)
    if amount is not None:
        console.print(f"{amount} base units = {'no price' if v.usd is None else f'{usd_text(v.usd)} USD'}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(prices_app, name="prices")
