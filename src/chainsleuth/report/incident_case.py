"""``report incident ID``: one incident as a case file.

The record (victim, loss, attribution and its source, confidence, sources), the actor
links, the seed addresses, and every trace attached to the incident
(``chainsleuth trace --incident ID``): a Sankey of the flow by hop type, a timeline,
the endpoint table with its evidence (tag labels and category, the transactions that
reached it, exact amounts, USD at the time and latest with price source and day when a
price is loaded) and a method section naming the taint model.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from ..flows.trace import TraceResult
from ..store import Ledger
from . import svg
from .charts import format_amount, hop_types, sankey_links, trace_sankey, trace_timeline
from .html import Bullets, Chart, Heading, Paragraph, Section, Table, render_page
from .incidents_report import incident_json

# One paragraph per taint model (the sources are in chainsleuth.flows.models).
MODEL_TEXT = {
    "haircut": "Haircut: every output of a transaction (or every transfer out of an account) carries the "
               "tainted share of what was pooled, in exact integer proportion (Möser, Böhme and Breuker 2014; "
               "BlockSci getHaircutTainted). Value is conserved: seed value = endpoints + holdings + fees + "
               "what a limit left untraced.",
    "poison": "Poison: any output touched by tainted value is fully tainted (Möser, Böhme and Breuker 2014). It "
              "creates taint, so its totals are an upper bound, not an amount stolen.",
    "fifo": "FIFO: coins leave an address or account in the order they arrived (Clayton's rule, Devaynes v Noble "
            "1816, as applied to Bitcoin by Anderson et al. 2019, 'Bitcoin Redux').",
    "lifo": "LIFO: the last value in leaves first; the mirror image of FIFO, used as a bracket.",
}  # fmt: skip



def _when(iso: str) -> str:
    """A stored ISO time as ``YYYY-MM-DD HH:MM UTC`` (the JSON keeps the full ISO string)."""
    from datetime import UTC, datetime

    try:
        t = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return (t.astimezone(UTC) if t.tzinfo else t).strftime("%Y-%m-%d %H:%M UTC")


def _int_or(v: Any) -> Any:
    return int(v) if isinstance(v, str) and v.lstrip("-").isdigit() else v


def trace_from_json(doc: dict[str, Any]) -> TraceResult:
    """A :class:`TraceResult` back from :meth:`TraceResult.to_json` (amounts to ints, times to datetimes)."""

    def row(r: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for k, v in r.items():
            if k in ("value", "value_in", "value_out"):
                out[k] = _int_or(v)
            elif k in ("block_timestamp", "first_time", "last_time") and isinstance(v, str):
                out[k] = datetime.fromisoformat(v)
            else:
                out[k] = v
        return out

    return TraceResult(
        chain=doc["chain"], model=doc["model"], backward=doc.get("direction") == "backward",
        seeds=list(doc.get("seeds") or []), seed_value={a: int(v) for a, v in doc["seed_value"].items()},
        edges=[row(e) for e in doc.get("edges") or []], endpoints=[row(e) for e in doc.get("endpoints") or []],
        holdings=[row(h) for h in doc.get("holdings") or []], fees={a: int(v) for a, v in (doc.get("fees") or {}).items()},
        left={lim: {a: int(v) for a, v in d.items()} for lim, d in (doc.get("left_untraced") or {}).items()},
        conversions=[row(c) for c in doc.get("conversions") or []],
        converted_in={a: int(v) for a, v in (doc.get("converted_in") or {}).items()},
        converted_out={a: int(v) for a, v in (doc.get("converted_out") or {}).items()},
    )  # fmt: skip


def _usd(ledger: Ledger, asset: str, value: int, when: datetime | None) -> dict[str, Any]:
    """USD at the time and latest, with source, day and flag; None values mean no price (never 0)."""
    from ..prices.valuation import usd_value, value_now

    then = usd_value(ledger, asset, value, None, when) if when is not None else None
    now = value_now(ledger, asset, value)
    return {"at_time": then.to_json() if then else None, "latest": now.to_json()}


def _evidence(result: TraceResult) -> dict[tuple[str, str], list[str]]:
    """(endpoint address, asset) -> the transactions that moved traced value into it."""
    txs: dict[tuple[str, str], list[str]] = {}
    for e in result.edges:
        t, h = e.get("to"), e.get("transaction_hash")
        if t is None or h is None:
            continue
        lst = txs.setdefault((str(t), str(e["asset"])), [])
        if h not in lst:
            lst.append(str(h))
    return txs


def incident_case(ledger: Ledger, incident_id: str, *, generated: datetime | None = None) -> dict[str, Any]:
    """The case file of one incident as a JSON-ready dict (ConfigError for an unknown id)."""
    from ..incidents import get_incident, incident_traces
    from ..incidents.registry import incident_actor_links, incident_seeds

    inc = get_incident(ledger, incident_id)
    assert inc is not None
    traces = []
    for t in incident_traces(ledger, incident_id):
        res = trace_from_json(t.result)
        ev = _evidence(res)
        endpoints = []
        for e in res.endpoints:
            first = e.get("first_time")
            endpoints.append({
                "address": e["address"], "chain": e.get("chain", res.chain), "asset": e["asset"],
                "value": str(e["value"]), "amount": format_amount(int(e["value"]), e["asset"]),
                "category": e.get("category"), "labels": list(e.get("labels") or []),
                "cluster_id": e.get("cluster_id"), "first_time": first.isoformat() if first else None,
                "last_time": e["last_time"].isoformat() if e.get("last_time") else None,
                "transactions": ev.get((str(e["address"]), str(e["asset"])), []),
                "usd": _usd(ledger, e["asset"], int(e["value"]), first if isinstance(first, datetime) else None),
            })  # fmt: skip
        holdings = [{"address": h["address"], "chain": h.get("chain", res.chain), "asset": h["asset"],
                     "value": str(h["value"]), "amount": format_amount(int(h["value"]), h["asset"]),
                     "usd": _usd(ledger, h["asset"], int(h["value"]), None)} for h in res.holdings]  # fmt: skip
        traces.append({
            "trace_id": t.trace_id, "run_at": t.run_at.isoformat(), "chain": t.chain, "model": t.model,
            "direction": t.direction, "params": t.params, "seeds": list(t.seeds),
            "seed_value": {a: str(v) for a, v in t.seed_value.items()},
            "accounted": {a: str(v) for a, v in t.accounted.items()},
            "accounted_share": {a: str(s) for a, s in t.accounted_share.items()},
            "fees": {a: str(v) for a, v in res.fees.items()},
            "left_untraced": {k: {a: str(v) for a, v in d.items()} for k, d in res.left.items()},
            "hop_types": {a: h for a, h in sorted(hop_types(res).items())},
            "flow_by_hop_type": [{"from": s, "to": d, "asset": a, "value": str(v)}
                                 for (s, d, a), v in sankey_links(res).items()],
            "endpoints": endpoints, "holdings": holdings, "result": t.result,
        })  # fmt: skip
    return {
        "title": f"Case file {inc.incident_id}: {inc.victim}",
        "generated": (generated or datetime.now(UTC)).isoformat(timespec="seconds"),
        "incident": incident_json(inc),
        "actor_links": [{k: v for k, v in link.items()} for link in incident_actor_links(ledger, incident_id)],
        "seeds": [{"chain": s.chain, "currency": s.currency, "address": s.address, "role": s.role,
                   "role_kind": s.role_kind, "date": s.seed_date.isoformat() if isinstance(s.seed_date, date) else None,
                   "source": s.source} for s in incident_seeds(ledger, incident_id)],
        "traces": traces,
    }


def _usd_text(u: dict[str, Any] | None) -> str:
    if not u:
        return "no time"
    if u["usd"] is None:
        return "no price"
    day = f", {u['price_day']}" if u.get("price_day") else ""
    return f"${u['usd']} ({u['source'] or u['flag']}{day})"


def _static_sankey(result: TraceResult) -> str:
    """The hop-type Sankey as SVG. Amounts of different assets are not comparable, so each
    link's width is relative to its asset's largest link; the labels carry the exact amounts."""
    links = sankey_links(result)
    if not links:
        return ""
    biggest: dict[str, int] = {}
    inflow: dict[str, dict[str, int]] = {}
    for (_, d, a), v in links.items():
        biggest[a] = max(biggest.get(a, 0), v)
        inflow.setdefault(d, {})[a] = inflow.get(d, {}).get(a, 0) + v
    scaled = [(s, d, v / biggest[a], format_amount(v, a)) for (s, d, a), v in links.items()]
    nodes = {n for s, d, _ in links for n in (s, d)}
    sums = {n: "; ".join(format_amount(v, a) for a, v in sorted(inflow.get(n, {}).items())) for n in nodes}
    sums["seed"] = "; ".join(format_amount(v, a) for a, v in sorted(result.seed_value.items()))
    labels = {n: n + ("\n" + sums[n] if sums.get(n) else "") for n in nodes}
    return svg.sankey(scaled, title="Flow by hop type", node_labels=labels)


def case_sections(doc: dict[str, Any]) -> list[Section]:
    inc = doc["incident"]
    s: list[Section] = [Heading("Incident")]
    amount = "not reported" if inc["amount_usd"] is None else f"${inc['amount_usd']:,}"
    s.append(Table(["field", "value"], [
        ["id", inc["incident_id"]], ["date", inc["date"] if inc["date_precision"] == "day" else inc["date"][:7]],
        ["victim", inc["victim"]], ["victim type", inc["victim_type"]], ["country", inc["country"] or "not stated"],
        ["reported loss (USD at the time)", amount], ["assets", ", ".join(inc["assets"])],
        ["chains", ", ".join(inc["chains"])], ["attack vector", inc["attack_vector"]],
        ["attributed to", inc["attributed_to"]], ["attribution source", inc["attribution_source"]],
        ["confidence", inc["confidence"]],
        ["actors (tag store)", "; ".join(f"{a['actor_id']} ({a['link']}: {a['matched']})" for a in doc["actor_links"])],
        ["notes", inc["notes"]], ["record from", inc["origin"]],
    ], nowrap=()))  # fmt: skip
    s.append(Heading("Seed addresses"))
    if doc["seeds"]:
        s.append(Table(["chain", "address", "role", "date", "source"],
                       [[x["chain"], x["address"], x["role"], x["date"], x["source"]] for x in doc["seeds"]],
                       nowrap=("chain", "date")))  # fmt: skip
    else:
        s.append(Paragraph("No seed addresses are recorded for this incident."))
    s.append(Heading("Traces"))
    if not doc["traces"]:
        s.append(Paragraph(f"No trace is attached. Run `chainsleuth trace --incident {inc['incident_id']}` "
                           "after ingesting the chain of the theft."))  # fmt: skip
    models = []
    for t in doc["traces"]:
        res = trace_from_json(t["result"])
        models.append(t["model"])
        s.append(Heading(f"Trace #{t['trace_id']}: {t['chain']}, {t['model']}, {t['direction']}", level=3))
        share = "; ".join(
            f"{format_amount(int(t['seed_value'].get(a, '0')), a)} seed value, {format_amount(int(v), a)} accounted "
            f"({float(eval_fraction(t['accounted_share'][a])):.2%})" for a, v in t["accounted"].items())  # fmt: skip
        s.append(Paragraph(f"Run {_when(t['run_at'])} from {len(t['seeds'])} seed(s). {share}. Fees: "
                           + (", ".join(format_amount(int(v), a) for a, v in t["fees"].items()) or "none")
                           + ". Left untraced by a limit: "
                           + ("; ".join(f"{lim}: " + ", ".join(format_amount(int(v), a) for a, v in d.items())
                                        for lim, d in t["left_untraced"].items()) or "nothing") + "."))  # fmt: skip
        if res.edges:
            s.append(Chart(trace_sankey(res), svg=_static_sankey(res),
                           caption="Value by hop type; labels carry the exact amounts (asset base units scaled by "
                                   "the asset's decimals). Static version: link widths relative per asset."))  # fmt: skip
            s.append(Chart(trace_timeline(res), svg=None, caption="Traced edges over time (interactive page only)."))
        s.append(Table(["endpoint", "chain", "category", "labels", "amount", "base units", "USD at the time",
                        "USD latest", "transactions"],
                       [[e["address"], e["chain"], e["category"] or "",
                         ", ".join(e["labels"]) + (f" (cluster {e['cluster_id']})" if e["cluster_id"] is not None else ""),
                         e["amount"], e["value"],
                         _usd_text(e["usd"]["at_time"]), _usd_text(e["usd"]["latest"]),
                         " ".join(e["transactions"][:5]) + (f" (+{len(e['transactions']) - 5})"
                                                          if len(e["transactions"]) > 5 else "")]
                        for e in t["endpoints"]],
                       caption="Endpoints (services where the trace stops) with their evidence",
                       numeric=["amount", "base units"], links=(), nowrap=("chain",)))  # fmt: skip
        if t["holdings"]:
            s.append(Table(["holding address", "chain", "amount", "base units", "USD latest"],
                           [[h["address"], h["chain"], h["amount"], h["value"], _usd_text(h["usd"]["latest"])]
                            for h in t["holdings"]], caption="Still held (unspent or unmoved tainted value)",
                           numeric=["amount", "base units"]))  # fmt: skip
    s.append(Heading("Method"))
    s.append(Bullets([MODEL_TEXT.get(m, m) for m in dict.fromkeys(models)] or ["No trace: no taint model applied."]))
    s.append(Paragraph("A trace stops at addresses tagged with a service category (exchange, mixer, bridge, DEX, "
                       "payment processor) and at their whole cluster when clustering ran: value that reaches them "
                       "is an endpoint to be followed up with the service. Hop types in the chart (split, peel, "
                       "consolidation, ...) describe what an address did with the traced value; they are drawing "
                       "aids with known false positives (see chainsleuth.report.charts), not findings. USD values "
                       "carry their price source and day; 'no price' is never zero."))  # fmt: skip
    s.append(Heading("Sources"))
    s.append(Table(["source"], [[u] for u in inc["source_urls"]], links=["source"]))
    return s


def eval_fraction(text: str) -> float:
    """``"n/d"`` or ``"n"`` as a float (for a percentage in text only)."""
    n, _, d = text.partition("/")
    return int(n) / int(d) if d else float(n)


def incident_html(doc: dict[str, Any], *, static: bool = False) -> str:
    return render_page(doc["title"], case_sections(doc), static=static,
                       subtitle=f"Case file generated from the incident registry and {len(doc['traces'])} attached trace(s)",
                       generated=datetime.fromisoformat(doc["generated"]))  # fmt: skip

