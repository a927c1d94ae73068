"""``chainsleuth incidents``: the attributed-heist registry (import, list, show, add, export)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..config import data_dir
from ..errors import ConfigError
from ..store import Ledger
from .common import console, err_console, incident_filter, state

incidents_app = typer.Typer(help="Attributed heists: registry, seeds, traces, STIX/FtM export.", no_args_is_help=True)

LIST_FORMATS = ("table", "json", "csv")


def _default(sub: str) -> Path:
    d = data_dir()
    if d is None:
        raise ConfigError("no data folder: pass the path, or set CHAINSLEUTH_DATA to the shared data folder")
    return d / sub


@incidents_app.command("import")
def import_cmd(
    ctx: typer.Context,
    path: Annotated[Path | None, typer.Argument(
        help="Registry CSV (default: $CHAINSLEUTH_DATA/dprk_incidents/dprk_incidents.csv).")] = None,
    seeds: Annotated[Path | None, typer.Option(
        help="Seed-address CSV (default: $CHAINSLEUTH_DATA/dprk_hacks/dprk_hack_seed_addresses.csv).")] = None,
    no_seeds: Annotated[bool, typer.Option("--no-seeds", help="Import the incidents only.")] = False,
) -> None:
    """Load the sourced incident registry, then its seed addresses (stored and tagged).
    Both files are validated before either is written."""
    from ..incidents.importers import import_registry

    reg = path or _default("dprk_incidents/dprk_incidents.csv")
    sp = None if no_seeds else seeds or _default("dprk_hacks/dprk_hack_seed_addresses.csv")
    with Ledger(state(ctx).db) as ledger:
        res, sres = import_registry(ledger, reg, sp)
    console.print(f"imported {res.incidents} incidents from {reg} ({res.replaced} replaced)", markup=False)
    if sres is not None:
        per = ", ".join(f"{k}: {v}" for k, v in sorted(sres.per_incident.items()))
        console.print(f"imported {sres.seeds} seed addresses ({sres.tags} tags) from {sp}: {per}", markup=False)


def incident_json(inc: Any) -> dict[str, Any]:
    d = asdict(inc)
    d["date"] = inc.date.isoformat()
    d["seed_addresses"] = [{"chain": c, "address": a, "role": r} for c, a, r in inc.seed_addresses]
    return d


@incidents_app.command("list")
def list_cmd(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option(help="First date (YYYY-MM-DD), inclusive.")] = None,
    until: Annotated[str | None, typer.Option(help="Last date (YYYY-MM-DD), inclusive.")] = None,
    actor: Annotated[str | None, typer.Option(help="Actor id or any alias; sub-actors included.")] = None,
    victim_type: Annotated[list[str] | None, typer.Option("--victim-type", help="exchange, bridge, bank, ... (repeatable or comma list).")] = None,
    country: Annotated[list[str] | None, typer.Option(help="ISO country code (repeatable).")] = None,
    chain: Annotated[list[str] | None, typer.Option(help="Chain named by the registry (e.g. ethereum) or its currency code (ETH); repeatable.")] = None,
    confidence: Annotated[list[str] | None, typer.Option(help="official, industry, contested (repeatable).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, json or csv.")] = "table",
) -> None:
    """List incidents matching the filters, with the count and the sum of reported losses."""
    from ..incidents import list_incidents

    if fmt not in LIST_FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}; choose one of {', '.join(LIST_FORMATS)}")
    filt = incident_filter(since=since, until=until, actor=actor, victim_type=victim_type, country=country,
                           chain=chain, confidence=confidence)  # fmt: skip
    with Ledger(state(ctx).db) as ledger:
        rows = list_incidents(ledger, filt)
    total = sum(i.amount_usd or 0 for i in rows)
    if fmt == "json":
        typer.echo(json.dumps({"count": len(rows), "total_usd": total,
                               "incidents": [incident_json(i) for i in rows]}, indent=2))  # fmt: skip
        return
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["incident_id", "date", "victim", "victim_type", "country", "amount_usd", "actors",
                    "attributed_to", "confidence", "chains", "seeds"])  # fmt: skip
        for i in rows:
            w.writerow([i.incident_id, i.date.isoformat()[: 7 if i.date_precision == "month" else 10], i.victim,
                        i.victim_type, i.country or "", "" if i.amount_usd is None else i.amount_usd,
                        ";".join(i.actor_ids), i.attributed_to, i.confidence, ";".join(i.chains),
                        len(i.seed_addresses)])  # fmt: skip
        typer.echo(buf.getvalue(), nl=False)
        return
    t = Table("id", "date", "victim", "type", "country", "USD", "actors", "confidence", "seeds")
    for i in rows:
        t.add_row(i.incident_id, i.date.isoformat()[: 7 if i.date_precision == "month" else 10], i.victim[:48],
                  i.victim_type, i.country or "", "" if i.amount_usd is None else f"{i.amount_usd:,}",
                  ", ".join(i.actor_ids), i.confidence, str(len(i.seed_addresses)) if i.seed_addresses else "")  # fmt: skip
    console.print(t)
    console.print(f"{len(rows)} incident(s), reported losses ${total:,} "
                  f"({sum(1 for i in rows if i.amount_usd is None)} without an amount)")  # fmt: skip


@incidents_app.command("show")
def show_cmd(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id, e.g. DPRK-2025-02.")],
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """One incident: the record, its actor links, seed addresses and attached traces."""
    from ..incidents import get_incident, incident_traces
    from ..incidents.registry import incident_actor_links, incident_seeds

    with Ledger(state(ctx).db) as ledger:
        inc = get_incident(ledger, incident_id)
        assert inc is not None
        links = incident_actor_links(ledger, incident_id)
        seeds = incident_seeds(ledger, incident_id)
        traces = incident_traces(ledger, incident_id)
    if fmt == "json":
        doc = incident_json(inc)
        doc["actor_links"] = links
        doc["traces"] = [{"trace_id": t.trace_id, "run_at": t.run_at.isoformat(), "chain": t.chain, "model": t.model,
                          "direction": t.direction, "params": t.params, "seeds": list(t.seeds),
                          "seed_value": {a: str(v) for a, v in t.seed_value.items()},
                          "accounted": {a: str(v) for a, v in t.accounted.items()},
                          "accounted_share": {a: str(v) for a, v in t.accounted_share.items()},
                          "endpoints": t.result["endpoints"], "holdings": t.result["holdings"]}
                         for t in traces]  # fmt: skip
        typer.echo(json.dumps(doc, indent=2, default=str))
        return
    if fmt != "table":
        raise ConfigError(f"unknown --format {fmt!r}; choose table or json")
    rec = Table("field", "value", title=f"incident {inc.incident_id}", show_header=False)
    amount = "not reported" if inc.amount_usd is None else f"${inc.amount_usd:,}"
    for k, v in [("date", inc.date.isoformat()[: 7 if inc.date_precision == "month" else 10]),
                 ("victim", inc.victim), ("victim type", inc.victim_type), ("country", inc.country or ""),
                 ("reported loss (USD at the time)", amount), ("assets", ", ".join(inc.assets)),
                 ("chains", ", ".join(inc.chains)), ("attack vector", inc.attack_vector),
                 ("attributed to", inc.attributed_to), ("attribution source", inc.attribution_source),
                 ("confidence", inc.confidence),
                 ("actors", "; ".join(f"{x['actor_id']} ({x['link']}: {x['matched']})" for x in links)),
                 ("sources", "\n".join(inc.source_urls)), ("notes", inc.notes), ("origin", inc.origin)]:  # fmt: skip
        rec.add_row(k, v)
    console.print(rec, markup=False)
    if seeds:
        st = Table("chain", "address", "role", "date", title=f"{len(seeds)} seed address(es)")
        for s in seeds:
            st.add_row(s.chain, s.address, s.role, s.seed_date.isoformat() if s.seed_date else "")
        console.print(st, markup=False)
    for t in traces:
        shares = ", ".join(f"{a}: seed {t.seed_value.get(a, 0)}, accounted {t.accounted[a]} ({float(s):.2%})"
                           for a, s in t.accounted_share.items())  # fmt: skip
        console.print(f"trace #{t.trace_id} on {t.chain}, {t.model} {t.direction}, run {t.run_at:%Y-%m-%d %H:%M} UTC, "
                      f"{len(t.seeds)} seed(s): {shares}", markup=False)  # fmt: skip
        et = Table("endpoint", "asset", "value", "category", "labels")
        for e in t.endpoints[:20]:
            et.add_row(e["address"], e["asset"], str(e["value"]), e.get("category") or "", "; ".join(e.get("labels") or []))
        console.print(et, markup=False)
    if not traces:
        console.print(f"no traces attached (run `chainsleuth trace --incident {inc.incident_id}`)", markup=False)


@incidents_app.command("add")
def add_cmd(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Option("--id", help="New incident id.")],
    on: Annotated[str, typer.Option("--date", help="YYYY-MM-DD or YYYY-MM.")],
    victim: Annotated[str, typer.Option(help="Victim as named in the sources.")],
    victim_type: Annotated[str, typer.Option("--victim-type", help="exchange, bridge, wallet, bank, defi, gambling, payment_processor, other.")],
    attributed_to: Annotated[str, typer.Option("--attributed-to", help="Actor name(s) as the source gives them.")],
    attribution_source: Annotated[str, typer.Option("--attribution-source", help="Who attributed it, and when.")],
    confidence: Annotated[str, typer.Option(help="official, industry or contested.")],
    source_url: Annotated[list[str], typer.Option("--source-url", help="Source page (repeatable).")],
    country: Annotated[str | None, typer.Option(help="ISO-3166 alpha-2.")] = None,
    amount_usd: Annotated[str | None, typer.Option("--amount-usd", help="Reported loss, whole US dollars.")] = None,
    assets: Annotated[str, typer.Option(help="Tickers, ';' or ',' separated.")] = "",
    chains: Annotated[str, typer.Option(help="Chain names, ';' or ',' separated.")] = "",
    attack_vector: Annotated[str, typer.Option("--attack-vector")] = "",
    notes: Annotated[str, typer.Option()] = "",
) -> None:
    """Add one incident by hand (validated like an imported row)."""
    from ..incidents import Incident, add_incident
    from ..incidents.registry import FieldProblem, parse_amount, parse_date

    def split(text: str) -> tuple[str, ...]:
        return tuple(x.strip() for x in text.replace(",", ";").split(";") if x.strip())

    try:
        day, precision = parse_date(on)
        amount = parse_amount(amount_usd or "")
    except FieldProblem as p:
        raise ConfigError(f"--{p.name.replace('_', '-')}: {p.message}") from None
    inc = Incident(incident_id=incident_id, date=day, date_precision=precision, victim=victim,
                   victim_type=victim_type, country=country.upper() if country else None, amount_usd=amount,
                   assets=split(assets), chains=tuple(c.lower() for c in split(chains)),
                   attack_vector=attack_vector, attributed_to=attributed_to,
                   attribution_source=attribution_source, confidence=confidence,
                   source_urls=tuple(source_url), notes=notes, origin="manual")  # fmt: skip
    with Ledger(state(ctx).db) as ledger:
        got = add_incident(ledger, inc)
    console.print(f"added {got.incident_id} (actors: {', '.join(got.actor_ids) or 'none linked'})", markup=False)


@incidents_app.command("export")
def export_cmd(
    ctx: typer.Context,
    output: Annotated[Path, typer.Argument(help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", help="stix (STIX 2.1 bundle, JSON) or ftm (FollowTheMoney entities, JSON lines).")] = "stix",
    since: Annotated[str | None, typer.Option(help="First date (YYYY-MM-DD).")] = None,
    until: Annotated[str | None, typer.Option(help="Last date (YYYY-MM-DD).")] = None,
    actor: Annotated[str | None, typer.Option(help="Actor id or alias; sub-actors included.")] = None,
) -> None:
    """Export incidents, actors and seed addresses as STIX 2.1 or FollowTheMoney."""
    from ..incidents import list_incidents
    from ..incidents.exports import actors_for, export_ftm, export_stix, sanctioned_addresses

    if fmt not in ("stix", "ftm"):
        raise ConfigError(f"unknown --format {fmt!r}; choose stix or ftm")
    filt = incident_filter(since=since, until=until, actor=actor)
    with Ledger(state(ctx).db) as ledger:
        incidents = list_incidents(ledger, filt)
        actors = actors_for(ledger, incidents)
        sanctioned = sanctioned_addresses(ledger) if fmt == "ftm" else {}
    if fmt == "stix":
        bundle = export_stix(incidents, actors)
        text, n = bundle.serialize(pretty=True) + "\n", len(bundle.objects)
    else:
        entities = export_ftm(incidents, actors, sanctioned=sanctioned)
        text, n = "".join(json.dumps(e.to_dict(), sort_keys=True) + "\n" for e in entities), len(entities)
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {output}: {exc}") from None
    err_console.print(f"wrote {n} {fmt} objects for {len(incidents)} incident(s) to {output}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(incidents_app, name="incidents")
