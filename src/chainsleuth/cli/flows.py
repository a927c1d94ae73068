"""``chainsleuth trace``: follow value forward or backward from seeds under a taint model."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import ConfigError
from ..store import Ledger
from .common import console, default_chain, err_console, state

FORMATS = ("table", "json", "csv", "graphml")


def _graphml(doc: dict[str, Any]) -> str:
    from xml.sax.saxutils import quoteattr

    nodes = sorted({n for e in doc["edges"] for n in (e["from"], e["to"]) if n is not None})
    ends = {e["address"]: e for e in doc["endpoints"]}
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">',
           '<key id="category" for="node" attr.name="category" attr.type="string"/>',
           '<key id="asset" for="edge" attr.name="asset" attr.type="string"/>',
           '<key id="value" for="edge" attr.name="value" attr.type="string"/>',
           '<key id="tx" for="edge" attr.name="transaction_hash" attr.type="string"/>',
           '<key id="time" for="edge" attr.name="block_timestamp" attr.type="string"/>',
           '<graph edgedefault="directed">']  # fmt: skip
    for n in nodes:
        cat = (ends.get(n) or {}).get("category") or ""
        out.append(f'<node id={quoteattr(n)}><data key="category">{cat}</data></node>')
    for e in doc["edges"]:
        if e["from"] is None or e["to"] is None:
            continue
        out.append(f'<edge source={quoteattr(e["from"])} target={quoteattr(e["to"])}>'
                   f'<data key="asset">{e["asset"]}</data><data key="value">{e["value"]}</data>'
                   f'<data key="tx">{e["transaction_hash"]}</data><data key="time">{e["block_timestamp"]}</data></edge>')  # fmt: skip
    out += ["</graph>", "</graphml>"]
    return "\n".join(out) + "\n"


# with --usd: the columns of prices.with_usd's ``usd`` object, filled on endpoint and holding rows
USD_COLUMNS = ("usd_at_time", "usd_latest", "price_day_at_time", "price_day_latest", "source_at_time",
               "source_latest", "flag")  # fmt: skip


def _csv(doc: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    usd = any("usd" in r for section in ("endpoints", "holdings") for r in doc[section])
    extra = [""] * len(USD_COLUMNS) if usd else []

    def priced(row: dict[str, Any]) -> list[str]:
        # an empty usd_* cell with flag no_price / no_time means no price, never 0
        u = row.get("usd") or {}
        return [u.get(c) or "" for c in USD_COLUMNS] if usd else []

    w.writerow(["section", "from", "to", "address", "asset", "value", "transaction_hash", "time", "category", "labels",
                *(f"usd_{c}" if c == "flag" else c for c in (USD_COLUMNS if usd else ()))])  # fmt: skip
    for e in doc["edges"]:
        section = "edge" if e.get("kind", "transfer") == "transfer" else e["kind"]  # swap / bridge edges
        w.writerow([section, e["from"], e["to"], "", e["asset"], e["value"], e["transaction_hash"], e["block_timestamp"], "", "", *extra])  # fmt: skip
    for e in doc["endpoints"]:
        w.writerow(["endpoint", "", "", e["address"], e["asset"], e["value"], "", e["first_time"], e["category"] or "", ";".join(e["labels"]), *priced(e)])  # fmt: skip
    for h in doc["holdings"]:  # backward: the origin (mint / before) in the category column
        w.writerow(["holding", "", "", h["address"], h["asset"], h["value"], "", "", h.get("origin", ""), "", *priced(h)])
    for f in doc.get("frontier", []):  # backward: where a limit stopped the walk (limit in category)
        w.writerow(["frontier", ";".join(f["sources"]), "", f["address"], f["asset"], f["value"], "", "", f["limit"], "", *extra])  # fmt: skip
    return buf.getvalue()


def trace_cmd(
    ctx: typer.Context,
    seeds: Annotated[list[str] | None, typer.Option("--from", help="Seed: address, transaction hash or txid:n (repeatable).")] = None,
    chain: Annotated[str | None, typer.Option(help="Chain name (default: the ledger's only chain).")] = None,
    backward: Annotated[bool, typer.Option("--backward", help="Where the value came from instead of where it went.")] = False,
    model: Annotated[str, typer.Option(help="haircut, poison, fifo or lifo.")] = "haircut",
    hops: Annotated[int | None, typer.Option(help="Most address hops from a seed.")] = None,
    since: Annotated[str | None, typer.Option(help="Start of the time window (ISO 8601, UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="End of the time window (ISO 8601, UTC).")] = None,
    min_value: Annotated[int, typer.Option("--min-value", help="Smallest share followed (base units).")] = 0,
    max_fanout: Annotated[int | None, typer.Option("--max-fanout", help="Do not follow through more recipients.")] = None,
    follow_conversions: Annotated[bool, typer.Option(
        "--follow-conversions/--no-follow-conversions",
        help="Follow decoded swaps and bridge hops (when `conversions decode`/`bridges` ran).")] = True,
    follow_bridges: Annotated[bool, typer.Option(
        "--follow-bridges/--no-follow-bridges", help="Continue on the other chain of a matched bridge hop.")] = True,
    fmt: Annotated[str, typer.Option("--format", help="table, json, csv or graphml.")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    incident: Annotated[str | None, typer.Option(
        "--incident", help="Trace from this incident's attacker/cash-out seeds and attach the result to it.")] = None,
    usd: Annotated[bool, typer.Option("--usd", help="Add USD at the time and today (needs `prices import`).")] = False,
) -> None:
    """Trace value from seeds through the ledger to service endpoints and holdings."""
    from ..flows.trace import trace

    if fmt not in FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if bool(seeds) == bool(incident):
        raise ConfigError("give seeds with --from, or an incident with --incident (one of the two)")
    with Ledger(state(ctx).db, read_only=False) as ledger:
        if chain is None:
            names = [c["name"] for c in ledger.chains()]
            if len(names) != 1:
                raise ConfigError(f"name the chain with --chain (the ledger has: {', '.join(names) or 'none'})")
            chain = names[0]
        options: dict[str, Any] = dict(backward=backward, model=model, hops=hops, since=since, until=until, min_value=min_value,
                       max_fanout=max_fanout, follow_conversions=follow_conversions, follow_bridges=follow_bridges)  # fmt: skip
        if incident:
            from ..incidents.tracing import trace_incident

            run = trace_incident(ledger, incident, chain, **options)
            res = run.result
            err_console.print(f"trace #{run.trace_id} attached to {incident}: {len(run.used_seeds)} seed(s) on {chain}"
                              f", {len(run.missing_seeds)} not in the ledger", markup=False)  # fmt: skip
        else:
            res = trace(ledger, chain, seeds or [], **options)
        doc = res.to_json()
        if usd:
            from ..prices import with_usd

            with_usd(ledger, res, doc)
    if fmt == "table":
        _print_table(doc)
        if usd:
            _print_usd(doc)
        return
    text = {"json": lambda: json.dumps(doc, indent=2) + "\n", "csv": lambda: _csv(doc),
            "graphml": lambda: _graphml(doc)}[fmt]()  # fmt: skip
    if output is not None:
        output.write_text(text)
        err_console.print(f"wrote {output}")
    else:
        typer.echo(text, nl=False)


def _print_table(doc: dict[str, Any]) -> None:
    backward = doc["direction"] == "backward"
    t = Table("address", "asset", "value", "category", "labels", "first", "last",
              title="came from services (endpoints)" if backward else "endpoints")  # fmt: skip
    for e in doc["endpoints"]:
        t.add_row(e["address"], e["asset"], e["value"], e["category"] or "", "; ".join(e["labels"]),
                  e["first_time"], e["last_time"])  # fmt: skip
    console.print(t)
    # backward: where the walk ended (coinbase/mint, or held before the ledger or window)
    h = Table("address", "asset", "value", *(["origin"] if backward else []),
              title="origins (holdings)" if backward else "still held")  # fmt: skip
    for r in doc["holdings"]:
        h.add_row(r["address"], r["asset"], r["value"], *([r.get("origin") or ""] if backward else []))
    console.print(h)
    for asset in doc["accounted"]:
        v = doc["seed_value"].get(asset, "0")
        conv = "".join(f", converted {way} {doc[f'converted_{way}'][asset]}" for way in ("in", "out")
                       if asset in doc[f"converted_{way}"])  # fmt: skip
        console.print(f"{asset}: seed {v}, accounted {doc['accounted'][asset]} "
                      f"({doc['accounted_share'][asset]:.2%}), fees {doc['fees'].get(asset, '0')}{conv}")  # fmt: skip
    if doc["conversions"]:
        c = Table("kind", "from", "to", "in", "out", "transaction", title="conversions")
        for r in doc["conversions"]:
            c.add_row(r["kind"], r["from"] or "", r["to"] or "", f"{r['value_in']} {r['asset_in']}",
                      f"{r['value_out']} {r['asset_out']}", r["transaction_hash"])  # fmt: skip
        console.print(c)
    if doc.get("frontier"):
        f = Table("address", "asset", "value", "limit", "senders not followed", title="walk stopped at (limits)")
        for r in doc["frontier"]:
            f.add_row(r["address"] or "", r["asset"], r["value"], r["limit"], ", ".join(r["sources"]))
        console.print(f)
    for lim, d in doc["left_untraced"].items():
        for asset, v in d.items():
            console.print(f"[yellow]limit {lim}[/] left {v} {asset} untraced")
    console.print(f"{len(doc['edges'])} edge(s)")


def _print_usd(doc: dict[str, Any]) -> None:
    t = Table("address", "asset", "value", "USD at the time", "USD latest", "price day", "flag", title="USD (endpoints and holdings)")
    for section in ("endpoints", "holdings"):
        for e in doc[section]:
            u = e.get("usd") or {}
            t.add_row(e["address"], e["asset"], e["value"], u.get("usd_at_time") or "no price",
                      u.get("usd_latest") or "no price",
                      f"{u.get('price_day_at_time') or '-'} / {u.get('price_day_latest') or '-'}", u.get("flag") or "")  # fmt: skip
    console.print(t, markup=False)


def trace_index_cmd(
    ctx: typer.Context,
    chain: Annotated[str | None, typer.Option(help="Chain name (default: the ledger's only chain).")] = None,
    drop: Annotated[bool, typer.Option("--drop", help="Remove the index instead (the next trace rebuilds it).")] = False,
) -> None:
    """Build (or refresh) an account chain's trace index now, e.g. right after an ingest.

    A trace builds it on first use anyway; this moves that one-time cost out of the
    first trace. The index is rebuilt whenever the ledger changed (new blocks, reorgs)."""
    from ..flows import trace_index

    with Ledger(state(ctx).db, read_only=False) as ledger:
        name = default_chain(ledger, chain)
        if ledger.family(name) != "ethereum":
            raise ConfigError(f"{name} is a UTXO chain: its traces read the ledger directly, there is no trace index")
        if drop:
            trace_index.drop_index(ledger, name)
            console.print(f"dropped the trace index of {name}")
            return
        info = trace_index.fresh_index(ledger, name)
        fresh = info is not None
        if info is None:
            info = trace_index.build_index(ledger, name)
    verb = "up to date" if fresh else f"built in {info['build_s']:.1f} s"
    console.print(f"trace index of {name}: {info['legs']:,} legs, {verb}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("trace")(trace_cmd)
    app.command("trace-index")(trace_index_cmd)
