"""``chainsleuth demo``: the README's main job (the heist lab investigation), and ``--real``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.panel import Panel
from rich.table import Table

from ..config import data_dir
from ..errors import ConfigError
from ..store import Ledger
from .common import console, state
from .progress import RichIngestProgress


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{float(x):.2%}"


def demo(
    ctx: typer.Context,
    real: Annotated[bool, typer.Option("--real", help="The real-data leg: XBlock phishing transactions "
                                        "(mainnet, 2017-2019) traced to Etherscan-labelled exchanges.")] = False,
    model: Annotated[str, typer.Option("--model", help="Taint model: haircut, poison, fifo, lifo.")] = "haircut",
    report: Annotated[Path, typer.Option("--report", help="Where to write the HTML report.")] = Path(
        "chainsleuth-demo-report.html"),
    dataset: Annotated[Path | None, typer.Option("--dataset", help="A heist dataset folder (default: the "
                                                 "one shipped in the package).", show_default=False)] = None,
) -> None:
    """Investigate the heist lab's laundering end to end (no node needed) and write the HTML report."""
    st = state(ctx)
    if real:
        _real(st.db, st.quiet, model)
        return
    from ..demo import amount_text, run_heist_demo, write_heist_report

    data = data_dir()
    console.print(Panel.fit(f"chainsleuth demo: the heist lab investigation\nledger: {st.db}\n"
                            f"real tag sources: {data or 'not found (set CHAINSLEUTH_DATA)'}", style="bold"))  # fmt: skip
    with Ledger(st.db) as ledger, RichIngestProgress(console, quiet=st.quiet) as progress:
        s = run_heist_demo(ledger, dataset=dataset, data=data, model=model, progress=progress)

    def amt(v: int, a: str) -> str:
        return amount_text(v, a, s.symbols, s.decimals)

    console.print(f"loaded: {', '.join(s.chains)}; tags from the real sources: "
                  f"{', '.join(f'{k} {v:,}' for k, v in s.real_tags.items()) or 'none'}; clusters: "
                  f"{', '.join(f'{c} {n:,}' for c, n in s.clusters.items())}; exposure rows: "
                  f"{', '.join(f'{c} {n:,}' for c, n in s.exposure_rows.items())}", markup=False)  # fmt: skip

    t = Table(title=f"stolen and traced ({s.model})")
    for c in ("asset", "stolen (ground truth)", "USD on the theft day", "traced from the seeds"):
        t.add_column(c, justify="left" if c == "asset" else "right")
    for a in sorted({*s.stolen, *s.seed_value}):
        u = s.usd.get(a)
        usd = f"{u.usd:,.2f} ({u.source}, {u.price_day})" if u is not None else "no price"
        t.add_row(s.symbols.get(a.lower(), a), amt(s.stolen[a], a) if a in s.stolen else "", usd,
                  amt(s.seed_value[a], a) if a in s.seed_value else "")  # fmt: skip
    console.print(t)
    for title, rows in (("reached exchanges / OTC / other services", s.services),
                        ("went into the mixer (the trace stops there: its withdrawals are unlinkable)", s.mixer)):
        t = Table(title=title)
        for c in ("chain", "address", "tags", "category", "value"):
            t.add_column(c, justify="right" if c == "value" else "left")
        for e in rows:
            t.add_row(e["chain"], e["address"], ", ".join(e.get("labels") or []), e.get("category") or "",
                      amt(int(e["value"]), str(e["asset"])))  # fmt: skip
        console.print(t)
    held: dict[str, int] = {}
    for h in s.holdings:
        held[str(h["asset"])] = held.get(str(h["asset"]), 0) + int(h["value"])
    console.print("unspent (still held): " + ("; ".join(
        f"{amt(v, a)} at {sum(1 for h in s.holdings if h['asset'] == a)} addresses" for a, v in held.items()) or "none"),
        markup=False)  # fmt: skip
    ev = s.evaluation
    if ev is not None:
        t = Table(title="recall against the lab's ground truth")
        for c in ("kind", "chain", "asset", "true value", "found", "recall"):
            t.add_column(c, justify="right" if c in ("true value", "found", "recall") else "left")
        for r in ev.recall:
            t.add_row(r.kind, r.chain, s.symbols.get(r.asset, r.asset), amt(r.truth, r.asset), amt(r.found, r.asset),
                      _pct(r.ratio))  # fmt: skip
        console.print(t)
        svc = ev.endpoints_true_service
        console.print(f"flagged endpoints: {ev.endpoints_flagged}; at a service that received stolen value: {svc} "
                      f"({_pct(svc / ev.endpoints_flagged if ev.endpoints_flagged else None)}); at the true deposit "
                      f"address itself: {ev.endpoints_true}", markup=False)  # fmt: skip
        console.print(f"endpoint precision {_pct(ev.endpoint_precision)} ({ev.endpoints_true}/{ev.endpoints_flagged}); "
                      f"address precision {_pct(ev.address_precision)} ({ev.addresses_true}/{ev.addresses_flagged}), "
                      f"address recall {_pct(ev.address_recall)}", markup=False)  # fmt: skip
    path = write_heist_report(s, report)
    console.print(f"[green]report written:[/] {path}", highlight=False)


def _real(db: Path, quiet: bool, model: str) -> None:
    from ..demo import format_units, run_real_demo

    data = data_dir()
    if data is None:
        raise ConfigError("the real data folder was not found: set CHAINSLEUTH_DATA (e.g. ../shared/data)")
    console.print(Panel.fit(f"chainsleuth demo --real: XBlock phishing accounts (Ethereum mainnet 2017-2019)\n"
                            f"ledger: {db}\ndata:   {data}", style="bold"))  # fmt: skip
    with Ledger(db) as ledger, RichIngestProgress(console, quiet=quiet) as progress:
        s = run_real_demo(ledger, data, model=model, progress=progress)
    console.print(
        f"{s.transactions:,} transactions and {s.internal_calls:,} internal calls; {s.labelled_accounts:,} labelled "
        f"phishing accounts, {s.seed_accounts:,} with transactions (the seeds); {s.etherscan_tags:,} Etherscan labels.\n"
        f"seed value (received by the phishing accounts): {format_units(s.seed_value, 18)} ETH ({s.model})",
        markup=False,
    )  # fmt: skip
    t = Table(title="labelled exchanges that received phishing proceeds")
    for c in ("exchange", "wei", "ETH"):
        t.add_column(c, justify="left" if c == "exchange" else "right")
    for name, v in s.exchange_totals():
        t.add_row(name, f"{v:,}", format_units(v, 18))
    console.print(t)
    t = Table(title="per exchange address")
    for c in ("address", "label", "wei", "ETH", "first", "last"):
        t.add_column(c, justify="right" if c in ("wei", "ETH") else "left")
    for e in s.exchanges:
        t.add_row(e["address"], e["label"], f"{e['value']:,}", format_units(e["value"], 18),
                  f"{e['first_time']:%Y-%m-%d}", f"{e['last_time']:%Y-%m-%d}")  # fmt: skip
    console.print(t)
    t = Table(title="other labelled services (stops)")
    for c in ("address", "label", "category", "ETH"):
        t.add_column(c, justify="right" if c == "ETH" else "left")
    for e in s.other_services:
        t.add_row(e["address"], e["label"], e["category"] or "", format_units(e["value"], 18))
    console.print(t)
    console.print(f"still held by {s.holdings_addresses:,} unlabelled addresses: {format_units(s.holdings_value, 18)} ETH; "
                  f"fees {format_units(s.fees, 18)} ETH; left untraced {format_units(s.left_untraced, 18)} ETH", markup=False)  # fmt: skip
