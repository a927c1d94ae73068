"""``report incidents``: UN-Panel-style summaries of the incident registry.

:func:`incidents_report` computes everything from the registry's records for a filter
(counts, whole-dollar totals, distinct countries, totals by year/actor/victim
type/country/confidence, the largest incidents, unvalued rows listed apart, every
published aggregate about the same period and scope beside the registry's own sum with
the difference explained) and returns a JSON-ready dict. The renderers turn that dict
into CSV, a self-contained HTML page (Plotly) or a PDF (static SVG charts, WeasyPrint).
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from ..errors import ConfigError
from ..incidents.model import Incident, IncidentFilter
from ..store import Ledger
from . import svg
from .aggregates import (
    PublishedFigure,
    compare_figure,
    figure_filter,
    figure_matches,
    filter_json,
    group_totals,
    load_published,
    musd,
    unvalued,
    usd_total,
)
from .html import Bullets, Chart, Heading, Paragraph, Section, Table, render_page

FORMATS = ("json", "csv", "html", "pdf")
LARGEST = 10


def actor_labels(ledger: Ledger) -> dict[str, str]:
    """Tag-store actor id -> display label (empty when the tag store was never created)."""
    from ..tags.store import table_exists

    if not table_exists(ledger, "tags", "actors"):
        return {}
    rows = ledger.con.execute("SELECT actor_id, any_value(label) FROM tags.actors GROUP BY actor_id").fetchall()
    return {str(a): str(lbl or a) for a, lbl in rows}


def incident_json(i: Incident) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in dataclasses.asdict(i).items():
        if isinstance(v, date):
            out[k] = v.isoformat()
        elif isinstance(v, tuple):
            out[k] = [list(x) if isinstance(x, tuple) else x for x in v]
        else:
            out[k] = v
    return out


def build_report(
    incidents: Sequence[Incident],
    filt: IncidentFilter,
    *,
    everything: Sequence[Incident],
    select: Callable[[IncidentFilter], list[Incident]],
    labels: dict[str, str],
    published: Sequence[PublishedFigure],
    generated: datetime | None = None,
) -> dict[str, Any]:
    """The report over ``incidents`` (the registry rows ``filt`` selects). ``select`` runs a
    registry filter (for the published figures' own filters); ``everything`` is the whole
    registry (to tell an excluded incident from an absent one)."""
    registry = {i.incident_id: i for i in everything}
    contested = [i for i in incidents if i.confidence == "contested"]

    def actor_keys(i: Incident) -> list[str]:
        return [labels.get(a, a) for a in i.actor_ids] or ["(no actor linked)"]

    figures = []
    for fig in published:
        if figure_matches(fig, filt):
            figures.append(compare_figure(fig, select(figure_filter(fig, filt)), registry, filt))
    largest = sorted((i for i in incidents if i.amount_usd is not None),
                     key=lambda i: (-(i.amount_usd or 0), i.date, i.incident_id))[:LARGEST]  # fmt: skip
    sources: dict[str, list[str]] = {}
    for i in incidents:
        for u in i.source_urls:
            sources.setdefault(u, []).append(i.incident_id)
    return {
        "title": "DPRK-attributed thefts: incident registry report",
        "generated": (generated or datetime.now(UTC)).isoformat(timespec="seconds"),
        "filter": filter_json(filt),
        "count": len(incidents),
        "valued_count": len(incidents) - len(unvalued(incidents)),
        "total_usd": usd_total(incidents),
        "total_usd_excluding_contested": usd_total(incidents) - usd_total(contested),
        "contested": {"count": len(contested), "total_usd": usd_total(contested),
                      "incidents": [i.incident_id for i in contested]},
        "countries": sorted({i.country for i in incidents if i.country}),
        "without_country": [i.incident_id for i in incidents if not i.country],
        "unvalued": [{"incident_id": i.incident_id, "date": i.date.isoformat(), "date_precision": i.date_precision,
                      "victim": i.victim, "victim_type": i.victim_type, "reason": i.notes}
                     for i in unvalued(incidents)],
        "by_year": group_totals(incidents, lambda i: [str(i.date.year)], order="key"),
        "by_actor": group_totals(incidents, actor_keys),
        "by_victim_type": group_totals(incidents, lambda i: [i.victim_type]),
        "by_country": group_totals(incidents, lambda i: [i.country or "(not stated)"]),
        "by_confidence": group_totals(incidents, lambda i: [i.confidence]),
        "largest": [incident_json(i) for i in largest],
        "published": figures,
        "incidents": [incident_json(i) | {"actors": actor_keys(i)} for i in incidents],
        "sources": [{"url": u, "incidents": ids} for u, ids in sorted(sources.items())],
    }


def incidents_report(
    ledger: Ledger,
    filt: IncidentFilter | None = None,
    *,
    published: Sequence[PublishedFigure] | None = None,
    generated: datetime | None = None,
) -> dict[str, Any]:
    """The registry report for ``filt`` as a JSON-ready dict (see :func:`build_report`).
    ConfigError when the registry is empty (nothing was imported)."""
    from ..incidents import list_incidents

    f = filt or IncidentFilter()
    everything = list_incidents(ledger)
    if not everything:
        raise ConfigError("the incident registry is empty: run `chainsleuth incidents import` first")
    return build_report(
        list_incidents(ledger, f), f, everything=everything, select=lambda g: list_incidents(ledger, g),
        labels=actor_labels(ledger), published=load_published() if published is None else published,
        generated=generated,
    )  # fmt: skip


# -- renderers ------------------------------------------------------------------------------

CSV_COLUMNS = ("incident_id", "date", "victim", "victim_type", "country", "amount_usd", "assets", "chains",
               "attributed_to", "actors", "confidence", "attribution_source", "source_urls", "notes")  # fmt: skip


def shown_date(row: dict[str, Any]) -> str:
    """A JSON row's date as precise as the registry gives it: ``YYYY-MM`` for a month."""
    return str(row["date"]) if row.get("date_precision", "day") == "day" else str(row["date"])[:7]


def incidents_csv(doc: dict[str, Any]) -> str:
    """One row per incident; ``amount_usd`` empty (not 0) when the registry has none; ``date``
    as precise as the registry (``YYYY-MM`` for a month)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for i in doc["incidents"]:
        w.writerow([shown_date(i) if c == "date" else ";".join(i[c]) if isinstance(i[c], list)
                    else ("" if i[c] is None else i[c]) for c in CSV_COLUMNS])  # fmt: skip
    return buf.getvalue()


def describe_filter(f: dict[str, Any]) -> str:
    if not f:
        return "all incidents in the registry"
    parts = []
    if "since" in f or "until" in f:
        parts.append(f"{f.get('since', '...')} to {f.get('until', '...')}")
    names = {"actor": "actor", "victim_types": "victim type", "countries": "country", "chains": "chain",
             "confidences": "attribution confidence", "ids": "incident"}  # fmt: skip
    for k, label in names.items():
        if k in f:
            v = f[k]
            parts.append(f"{label} {', '.join(v) if isinstance(v, list) else v}")
    return "; ".join(parts)


def _usd(v: int | None) -> str:
    if v is None:
        return "no amount"
    return f"-${-v:,}" if v < 0 else f"${v:,}"


def _bar_label(r: dict[str, Any]) -> str:
    return f"{musd(r['total_usd']) if r['unvalued'] < r['count'] else 'no amount'} ({r['count']})"


def _group_chart(rows: list[dict[str, Any]], title: str, *, keep_order: bool = False) -> Chart:
    shown = rows if keep_order else rows[:20]
    fig = go.Figure(go.Bar(
        x=[r["key"] for r in shown], y=[r["total_usd"] for r in shown],
        customdata=[[f"${r['total_usd']:,}", r["count"], r["unvalued"]] for r in shown],
        hovertemplate="%{x}<br>%{customdata[0]}<br>%{customdata[1]} incident(s), %{customdata[2]} without amount"
                      "<extra></extra>", marker_color="#1f5fa8",
        # "$total (n)" as on the static chart; past 10 bars only "(n)" (long labels shrink unreadably)
        text=[_bar_label(r) if len(shown) <= 10 else f"({r['count']})" for r in shown], textposition="outside",
        cliponaxis=False, textfont={"size": 10},
    ))  # fmt: skip
    fig.update_layout(title=title, yaxis_title="USD at the time", height=340, margin={"l": 10, "r": 10, "t": 56, "b": 10})
    static = svg.bar_chart([(str(r["key"]), float(r["total_usd"]), _bar_label(r)) for r in shown], title=title)
    return Chart(fig, svg=static, caption="Bar: sum of reported USD; (n): incidents, including those without an amount.")


def incidents_sections(doc: dict[str, Any]) -> list[Section]:
    """The report's sections (shared by HTML and PDF)."""
    s: list[Section] = []
    contested = doc["contested"]
    summary = (f"{doc['count']} incident(s) match ({describe_filter(doc['filter'])}). Reported losses sum to "
               f"{_usd(doc['total_usd'])} over the {doc['valued_count']} incident(s) with an amount; "
               f"{len(doc['unvalued'])} incident(s) have no reported amount and are listed apart (never counted as $0). "
               f"{contested['count']} incident(s) have contested attribution ({_usd(contested['total_usd'])}); "
               f"without them the sum is {_usd(doc['total_usd_excluding_contested'])}. Victims are in "
               f"{len(doc['countries'])} countries ({', '.join(doc['countries']) or 'none stated'}); "
               f"{len(doc['without_country'])} incident(s) have no country stated in the sources.")  # fmt: skip
    s += [Heading("Summary"), Paragraph(summary)]
    s += [Heading("Totals"),
          _group_chart(doc["by_year"], "By year", keep_order=True), _group_chart(doc["by_actor"], "By actor"),
          _group_chart(doc["by_victim_type"], "By victim type"), _group_chart(doc["by_country"], "By country")]  # fmt: skip
    for key, title in (("by_year", "year"), ("by_actor", "actor"), ("by_victim_type", "victim type"),
                       ("by_country", "country"), ("by_confidence", "attribution confidence")):  # fmt: skip
        s.append(Table([title, "incidents", "without amount", "USD"],
                       [[r["key"], r["count"], r["unvalued"], f"{r['total_usd']:,}"] for r in doc[key]],
                       caption=f"By {title}" + (" (an incident linked to several actors counts for each)"
                                                if key == "by_actor" else ""),
                       numeric=["incidents", "without amount", "USD"]))  # fmt: skip
    s += [Heading("Largest incidents"),
          Table(["id", "date", "victim", "type", "country", "USD", "attributed to", "confidence"],
                [[i["incident_id"], shown_date(i), i["victim"], i["victim_type"], i["country"], f"{i['amount_usd']:,}",
                  i["attributed_to"], i["confidence"]] for i in doc["largest"]], numeric=["USD"])]  # fmt: skip
    s.append(Heading("Published aggregates beside the registry"))
    if doc["published"]:
        s.append(Paragraph("Each published figure about the same period and scope, beside the registry's own sum "
                           "for the same filter (the figure's period and scope, plus this report's actor, "
                           "confidence, country and chain filters). The explanation is computed from the records."))  # fmt: skip
        s.append(Table(["figure", "publisher", "period", "published", "registry", "difference"],
                       [[p["figure"], f"{p['publisher']}, {p['document']}",
                         f"{p['since'] or '...'} to {p['until'] or '...'}" if p["since"] or p["until"] else "any date",
                         f"{p['qualifier'] + ' ' if p['qualifier'] else ''}${p['value_usd']:,}",
                         f"${p['registry']['total_usd']:,} ({p['registry']['count']} incidents)",
                         _usd(p["difference_usd"])] for p in doc["published"]],
                       numeric=["published", "registry", "difference"], nowrap=("period",)))  # fmt: skip
        for p in doc["published"]:
            s.append(Heading(f"{p['publisher']}: {p['figure']}", level=3))
            reg = p["registry"]
            s.append(Paragraph(
                f"Published {p['qualifier'] + ' ' if p['qualifier'] else ''}${p['value_usd']:,} "
                f"({p['scope']}). Registry for the same filter ({describe_filter(p['filter'])}): "
                f"${reg['total_usd']:,} over {reg['count']} incident(s), {len(reg['unvalued'])} without an amount"
                + (f"; the incidents the source names sum to ${reg['named_total_usd']:,}" if reg["named_total_usd"] is not None else "")
                + f". Difference (published minus registry): {_usd(p['difference_usd'])}."))  # fmt: skip
            if p["explanation"]:
                s.append(Bullets([f"{r['kind'].replace('_', ' ')}: {r['text']}" for r in p["explanation"]]))
            if p["readme_note"]:
                s.append(Paragraph(f"Registry README's note: {p['readme_note']}", muted=True))
    else:
        s.append(Paragraph("No published figure covers this filter's period and scope."))
    if doc["unvalued"]:
        s += [Heading("Incidents without a reported amount"),
              Table(["id", "date", "victim", "type", "why no amount"],
                    [[u["incident_id"], shown_date(u), u["victim"], u["victim_type"], u["reason"]] for u in doc["unvalued"]])]  # fmt: skip
    s += [Heading("All incidents"),
          Table(["id", "date", "victim", "type", "country", "USD", "actors", "confidence"],
                [[i["incident_id"], shown_date(i), i["victim"],
                  i["victim_type"], i["country"], "" if i["amount_usd"] is None else f"{i['amount_usd']:,}",
                  ", ".join(i["actors"]), i["confidence"]] for i in doc["incidents"]], numeric=["USD"])]  # fmt: skip
    s += [Heading("Method"), Paragraph(
        "Amounts are the registry's reported losses in USD at the time (gross, before recoveries), whole dollars. "
        "Attribution confidence: official (a government or the UN Panel), industry (a named security or analytics "
        "firm), contested (disputed or only suspected). The actor filter matches any alias of the tag store's "
        "actor hierarchy, sub-actors included; a row naming only the state links to the RGB and does not match a "
        "named group. The registry is not a census: see its README for excluded candidates.")]  # fmt: skip
    s.append(Heading("Sources"))
    s.append(Table(["source", "incidents"], [[x["url"], ", ".join(x["incidents"])] for x in doc["sources"]],
                   caption="Incident sources", links=["source"]))  # fmt: skip
    if doc["published"]:
        s.append(Table(["figure", "source"], [[p["id"], " ".join(p["source_urls"])] for p in doc["published"]],
                       caption="Published figures", links=["source"]))  # fmt: skip
    return s


def incidents_html(doc: dict[str, Any], *, static: bool = False) -> str:
    return render_page(doc["title"], incidents_sections(doc), static=static,
                       subtitle=f"Filter: {describe_filter(doc['filter'])}",
                       generated=datetime.fromisoformat(doc["generated"]))  # fmt: skip


def write_report(doc: dict[str, Any], fmt: str, output: Path | None, *, html: Callable[..., str],
                 csv_text: Callable[[dict[str, Any]], str] | None = None) -> str | None:  # fmt: skip
    """Write ``doc`` as ``fmt`` to ``output``; returns the text when there is no output file
    (json, csv, html). PDF needs an output path."""
    import json

    if fmt not in FORMATS or (fmt == "csv" and csv_text is None):
        allowed = [f for f in FORMATS if f != "csv" or csv_text is not None]
        raise ConfigError(f"unknown --format {fmt!r}; choose one of {', '.join(allowed)}")
    if fmt == "pdf":
        if output is None:
            raise ConfigError("--format pdf needs --output FILE")
        from .pdf import html_to_pdf

        html_to_pdf(html(doc, static=True), output)
        return None
    if fmt == "json":
        text = json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n"
    elif fmt == "csv":
        assert csv_text is not None
        text = csv_text(doc)
    else:
        text = html(doc)
    if output is None:
        return text
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {output}: {exc}") from None
    return None
