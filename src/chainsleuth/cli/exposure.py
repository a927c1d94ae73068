"""``chainsleuth exposure build|show``: per-address and per-entity risk exposure."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from .common import console, default_chain, state

exposure_app = typer.Typer(
    help="Direct/indirect exposure of every address and entity to risk categories.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(exposure_app, name="exposure")


@exposure_app.command("build")
def build_cmd(
    ctx: typer.Context,
    chain: Annotated[str | None, typer.Option(help="Chain (default: the only one).")] = None,
    hops: Annotated[int, typer.Option(help="Most hops followed (1 = direct only).")] = 4,
    min_confidence: Annotated[
        int,
        typer.Option(
            help="Least tag confidence level (0..100) for a tag to categorise an address."
        ),
    ] = 0,
) -> None:
    """Compute exposure for every address and entity of a chain in one pass (replaces the last build)."""
    from ..flows.exposure import build_exposure
    from ..store import Ledger

    st = state(ctx)
    with Ledger(st.db) as ledger:
        name = default_chain(ledger, chain)
        run = build_exposure(ledger, name, hops=hops, min_confidence=min_confidence)
    console.print(
        f"{name}: {run.legs:,} legs in {run.events:,} events, {run.nodes:,} address/asset nodes "
        f"({run.labelled_nodes:,} categorised), hops {run.hops}: {run.exposure_rows:,} exposure "
        f"rows, {run.entity_rows:,} entity rows ({run.seconds:.2f} s, kernel {run.kernel_seconds:.2f} s)"
    )
    if run.untraced_legs:
        console.print(f"[yellow]{run.untraced_legs} legs with amounts beyond HUGEINT left untraced[/] "
                      "(see flows.exposure_runs.untraced_overflow)")  # fmt: skip


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


@exposure_app.command("show")
def show_cmd(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="Address (or, with --entity, a cluster id).")],
    chain: Annotated[str | None, typer.Option(help="Chain (default: the only one).")] = None,
    entity: Annotated[bool, typer.Option("--entity", help="ADDRESS is a cluster id.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    usd: Annotated[bool, typer.Option("--usd", help="Add USD today and, for direct exposure, at the time "
                                      "of the transfers (needs `prices import`).")] = False,
) -> None:
    """Print the stored exposure of an address or entity: per asset, direction and category."""
    from ..errors import ConfigError, StoreError
    from ..flows.exposure import entity_exposure_of, exposure_of
    from ..store import Ledger

    if fmt not in ("table", "json"):
        raise ConfigError(f"--format must be table or json, got {fmt!r}")
    st = state(ctx)
    if not st.db.exists():
        raise StoreError(f"no ledger at {st.db} (ingest something first, or pass --db)")
    with Ledger(st.db, read_only=True) as ledger:
        name = default_chain(ledger, chain)
        if entity:
            if not address.isdigit():
                raise ConfigError(f"--entity takes a cluster id (an integer), got {address!r}")
            result = entity_exposure_of(ledger, name, int(address))
        else:
            result = exposure_of(ledger, name, address)
        if usd:
            from ..prices.exposure_usd import exposure_with_usd

            exposure_with_usd(ledger, name, result)
    if fmt == "json":

        def conv(o: Any) -> Any:  # exact integers as strings
            if isinstance(o, dict):
                return {k: conv(v) for k, v in o.items()}
            if isinstance(o, list):
                return [conv(v) for v in o]
            return str(o) if isinstance(o, int) and not isinstance(o, bool) else o

        typer.echo(json.dumps(conv(result), indent=2))
        return
    title = (f"entity {result['cluster_id']}" if entity else
             f"{result['address']} ({result.get('category') or 'unlabelled'})")  # fmt: skip
    for t in result.get("totals", []):
        tu = t.get("usd")
        in_usd = f" (USD {_usd(tu['total_in_usd_latest'])} today)" if tu else ""
        out_usd = f" (USD {_usd(tu['total_out_usd_latest'])} today)" if tu else ""
        console.print(f"{t['asset']}: received {t['total_in']:,}{in_usd}, sent {t['total_out']:,}{out_usd}",
                      markup=False)  # fmt: skip
    if not result["exposure"]:
        console.print(f"{title}: no exposure to any category within {result['hops']} hops")
        return
    table = Table(title=f"{title} on {name}, up to {result['hops']} hops")
    cols = ["asset", "direction", "category", "direct", "direct %", "indirect", "indirect %"]
    if usd:
        cols += ["direct USD then", "direct USD today", "indirect USD today"]
    for col in cols:
        table.add_column(col, justify="right" if col not in ("asset", "category") else "left")
    for r in result["exposure"]:
        cat = f"[red]{r['category']}[/]" if r["risk"] else r["category"]
        cells = [r["asset"], r["direction"], cat, f"{r['direct_value']:,}", _pct(r["direct_share"]),
                 f"{r['indirect_value']:,}", _pct(r["indirect_share"])]  # fmt: skip
        if usd:
            u = r["usd"]
            then = u["direct_usd_at_time"]
            cells += [_usd(then) if then is not None else _why_no_usd(u), _usd(u["direct_usd_latest"]),
                      _usd(u["indirect_usd_latest"])]  # fmt: skip
        table.add_row(*cells)
    console.print(table)
    if usd:
        _print_usd_sources(result)


def _usd(value: str | None) -> str:
    if value is None:
        return "no price"
    whole, _, frac = value.partition(".")
    return f"{int(whole):,}" + (f".{frac}" if frac else "")


def _why_no_usd(u: dict[str, Any]) -> str:
    flag = u.get("flag_at_time")
    if flag == "no_price":
        return f"no price ({u['unpriced_day_count']} day(s))"
    return {"no_direct_value": "-", "ledger_changed": "rebuild exposure", "not_computed": "not computed"}.get(flag or "", "-")


def _print_usd_sources(result: dict[str, Any]) -> None:
    """One line per asset for today's price, one per row for the days and sources at the time."""
    seen: set[str] = set()
    for r in result["exposure"]:
        u = r["usd"]
        if r["asset"] not in seen:
            seen.add(r["asset"])
            if u["flag_latest"] == "no_price":
                console.print(f"today: {r['asset']} has no price", markup=False)
            else:
                console.print(f"today: {r['asset']} at {u['price_latest'] or '-'} USD on {u['price_day_latest']} "
                              f"({u['flag_latest']}; {u['source_latest']})", markup=False)  # fmt: skip
        if u.get("days"):
            how = (f"({u['flag_at_time']}; {'; '.join(u['sources_at_time'])})" if u["sources_at_time"]
                   else "(no price on any of these days)")  # fmt: skip
            missing = (f", {u['unpriced_day_count']} day(s) without a price "
                       f"({int(u['unpriced_value']):,} base units unvalued)") if u["unpriced_day_count"] else ""  # fmt: skip
            console.print(f"at the time: {r['asset']} {r['direction']} {r['category']}: {u['days']} day(s) "
                          f"{u['first_day']}..{u['last_day']}, each direct transfer at its day's price "
                          f"{how}{missing}", markup=False)  # fmt: skip
    console.print("indirect exposure is valued today only: its value crossed intermediaries at many "
                  "times, so no single day prices it", markup=False)
