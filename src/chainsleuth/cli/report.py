"""``chainsleuth report``: registry summaries (``report incidents``) and case files (``report incident ID``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError
from ..store import Ledger
from .common import console, incident_filter, state

report_app = typer.Typer(help="Reports: incident registry summaries and incident case files (HTML, PDF, JSON, CSV).",
                         no_args_is_help=True)  # fmt: skip


def _emit(text: str | None, output: Path | None, what: str) -> None:
    if text is not None:
        typer.echo(text, nl=False)
    elif output is not None:
        console.print(f"wrote {what} to {output}", markup=False)


@report_app.command("incidents")
def incidents_cmd(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option(help="First incident date (YYYY-MM-DD), inclusive.")] = None,
    until: Annotated[str | None, typer.Option(help="Last incident date (YYYY-MM-DD), inclusive.")] = None,
    actor: Annotated[str | None, typer.Option(help="Actor id or any alias (sub-actors included), e.g. Lazarus.")] = None,
    victim_type: Annotated[list[str] | None, typer.Option(
        "--victim-type", help="exchange, bridge, wallet, bank, defi, gambling, payment_processor, other (repeatable or comma list).")] = None,
    country: Annotated[list[str] | None, typer.Option(help="ISO-3166 alpha-2 country (repeatable).")] = None,
    chain: Annotated[list[str] | None, typer.Option(help="Chain named by the registry (e.g. ethereum) or its currency code (ETH); repeatable.")] = None,
    confidence: Annotated[list[str] | None, typer.Option(help="official, industry, contested (repeatable).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="html, pdf, json or csv.")] = "html",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here (needed for pdf).")] = None,
) -> None:
    """Totals by year, actor, victim type and country, the largest incidents, published
    figures beside the registry's own sums (differences explained), and the sources."""
    from ..report.incidents_report import (
        FORMATS,
        incidents_csv,
        incidents_html,
        incidents_report,
        write_report,
    )

    if fmt not in FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    filt = incident_filter(since=since, until=until, actor=actor, victim_type=victim_type, country=country,
                           chain=chain, confidence=confidence)  # fmt: skip
    if fmt == "pdf" and output is None:
        raise ConfigError("--format pdf needs --output FILE")
    with Ledger(state(ctx).db) as ledger:
        doc = incidents_report(ledger, filt)
    text = write_report(doc, fmt, output, html=incidents_html, csv_text=incidents_csv)
    unvalued = f", {len(doc['unvalued'])} without an amount" if doc["unvalued"] else ""
    _emit(text, output, f"{fmt} report ({doc['count']} incidents, ${doc['total_usd']:,}{unvalued})")


@report_app.command("incident")
def incident_cmd(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id, e.g. DPRK-2025-02.")],
    fmt: Annotated[str, typer.Option("--format", help="html, pdf or json.")] = "html",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here (needed for pdf).")] = None,
) -> None:
    """One incident as a case file: record, seeds, attached traces (Sankey, endpoints with
    evidence, USD with price source) and the method."""
    from ..report.incident_case import incident_case, incident_html
    from ..report.incidents_report import write_report

    if fmt not in ("html", "pdf", "json"):
        raise ConfigError(f"unknown --format {fmt!r} for a case file; choose html, pdf or json")
    if fmt == "pdf" and output is None:
        raise ConfigError("--format pdf needs --output FILE")
    with Ledger(state(ctx).db) as ledger:
        doc = incident_case(ledger, incident_id)
    text = write_report(doc, fmt, output, html=incident_html)
    _emit(text, output, f"{fmt} case file of {incident_id} ({len(doc['traces'])} trace(s))")


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")
