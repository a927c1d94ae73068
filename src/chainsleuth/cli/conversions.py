"""``chainsleuth conversions``: decode DEX swaps and match bridge hops into the flows schema."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import ConfigError
from ..store import Ledger
from .common import console, state

conversions_app = typer.Typer(
    help="Swaps and bridge hops: where value changes asset or chain.", no_args_is_help=True)


@conversions_app.command("decode")
def decode_cmd(
    ctx: typer.Context,
    chain: Annotated[str, typer.Option("--chain", help="Account chain to decode (e.g. ethereum, anvil).")],
    start: Annotated[int | None, typer.Option(help="First block (default: all).")] = None,
    end: Annotated[int | None, typer.Option(help="Last block (default: all).")] = None,
    weth: Annotated[list[str] | None, typer.Option(
        "--wrapped-native", help="A WETH9-style wrapper of the native asset (repeatable).")] = None,
) -> None:
    """Decode Uniswap V2/V3-shaped swaps (and registered wrappers) into flows.swaps."""
    from ..flows.conversions import decode_conversions, register_wrapped_native

    with Ledger(state(ctx).db) as ledger:
        for token in weth or []:
            register_wrapped_native(ledger, chain, token)
        res = decode_conversions(ledger, chain, start=start, end=end)
    per = ", ".join(f"{k} {v:,}" for k, v in sorted(res.by_protocol.items())) or "none"
    console.print(f"{res.swaps:,} swaps ({per}); {res.pools:,} pools known; "
                  f"{res.unresolved:,} with unresolved tokens; {res.overflow:,} beyond HUGEINT")


def _rate(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    num, _, den = text.partition("/")
    try:
        return int(num), int(den or "1")
    except ValueError:
        raise ConfigError(f"--rate must be N or N/D in integers (e.g. 1/10000000000), not {text!r}") from None


@conversions_app.command("bridges")
def bridges_cmd(
    ctx: typer.Context,
    src: Annotated[str, typer.Option("--src", help="Chain of the locks/burns.")],
    dst: Annotated[str, typer.Option("--dst", help="Chain of the mints/releases/payouts.")],
    bridge: Annotated[str, typer.Option(help="Registered bridge definition.")] = "heist_lab_btc",
    contract: Annotated[list[str] | None, typer.Option(help="Bridge contract (repeatable; default any).")] = None,
    rate: Annotated[str | None, typer.Option(help="Destination units per source unit, N/D.")] = None,
    window: Annotated[int | None, typer.Option(help="Matching window in seconds.")] = None,
    require_tag: Annotated[bool, typer.Option(help="Only contracts tagged defi_bridge.")] = False,
) -> None:
    """Match a bridge's locks on --src to its payouts on --dst into flows.bridge_transfers."""
    from ..flows.conversions import match_bridges

    with Ledger(state(ctx).db) as ledger:
        res = match_bridges(ledger, src, dst, bridge=bridge, contracts=contract, rate=_rate(rate),
                            window_s=window, require_tag=require_tag)
    keys = ", ".join(f"{k} {v:,}" for k, v in sorted(res.by_key.items())) or "none"
    console.print(f"{res.matched:,} matched, {res.unmatched:,} unmatched ({keys})")
    if res.untagged_contracts:
        console.print(f"[yellow]not tagged as a bridge:[/] {', '.join(res.untagged_contracts)}")


def register(app: typer.Typer) -> None:
    app.add_typer(conversions_app, name="conversions")
