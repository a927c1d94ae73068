"""One self-contained HTML page from a list of sections (headings, text, tables, charts).

Interactive pages inline plotly.js once (no network: no ``<script src>``, no CDN);
static pages (for WeasyPrint, which runs no JavaScript) draw each chart from the SVG
the caller supplies (:mod:`.svg`). Text is escaped; amounts in tables are passed as
strings so that they stay exact.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2
    anchor: str = ""


@dataclass(frozen=True)
class Paragraph:
    text: str
    muted: bool = False


@dataclass(frozen=True)
class Bullets:
    items: Sequence[str]


@dataclass(frozen=True)
class Table:
    """``rows`` of cells (str/int/None); ``numeric`` names the right-aligned columns.
    ``links``: column names whose cells are URLs (space-separated), drawn as links."""

    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str = ""
    numeric: Sequence[str] = ()
    links: Sequence[str] = ()
    nowrap: Sequence[str] = ("id", "date")


@dataclass(frozen=True)
class Chart:
    """A Plotly figure (interactive page) and its static SVG (PDF); either may be None."""

    figure: go.Figure | None
    svg: str | None = None
    caption: str = ""


@dataclass(frozen=True)
class RawHtml:
    """Trusted markup built by this package (never user input)."""

    markup: str


Section = Heading | Paragraph | Bullets | Table | Chart | RawHtml

_CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; font-size: 10.5pt; color: #222;
       max-width: 1100px; margin: 1.5em auto; padding: 0 1em; line-height: 1.4; }
h1 { font-size: 18pt; margin-bottom: 0.2em; } h2 { font-size: 14pt; margin-top: 1.4em;
       border-bottom: 1px solid #ccc; } h3 { font-size: 12pt; }
.meta { color: #666; font-size: 9pt; } .muted { color: #666; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 9pt; width: 100%; }
th, td { border: 1px solid #ddd; padding: 3px 5px; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
td.url { overflow-wrap: anywhere; } td.nowrap { white-space: nowrap; }
th { background: #f2f2f2; } td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; font-weight: bold; margin-bottom: 0.3em; }
figure { margin: 0.8em 0; page-break-inside: avoid; } figcaption { font-size: 9pt; color: #555; }
a { color: #1f5fa8; text-decoration: none; } code { font-size: 9pt; }
@page { size: A4; margin: 15mm 12mm; @bottom-right { content: counter(page) " / " counter(pages);
        font-size: 8pt; color: #888; } }
@media print { body { max-width: none; margin: 0; padding: 0; } tr { page-break-inside: avoid; } }
"""


def _cell(value: Any, link: bool) -> str:
    if value is None:
        return ""
    text = str(value)
    if link and text:
        return " ".join(f'<a href="{html.escape(u, quote=True)}">{html.escape(u)}</a>' for u in text.split())
    return html.escape(text)


def _table(t: Table) -> str:
    num = set(t.numeric)
    links = set(t.links)
    nowrap = set(t.nowrap)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
    body = []
    for row in t.rows:
        cells = []
        for c, v in zip(t.columns, row, strict=True):
            cls = ' class="num"' if c in num else ' class="url"' if c in links else ' class="nowrap"' if c in nowrap else ""
            cells.append(f"<td{cls}>{_cell(v, c in links)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(t.caption)}</caption>" if t.caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_page(
    title: str,
    sections: Sequence[Section | str | go.Figure],
    *,
    static: bool = False,
    subtitle: str = "",
    generated: datetime | None = None,
) -> str:
    """The page as one HTML string. ``static``: charts as inline SVG (for PDF), no script at all.
    A bare ``str`` is a paragraph and a bare Plotly figure a chart."""
    when = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    parts: list[str] = []
    n_fig = 0
    for s in sections:
        if isinstance(s, str):
            s = Paragraph(s)
        elif isinstance(s, go.Figure):
            s = Chart(s)
        if isinstance(s, Heading):
            level = min(max(s.level, 1), 4)
            anchor = f' id="{html.escape(s.anchor, quote=True)}"' if s.anchor else ""
            parts.append(f"<h{level}{anchor}>{html.escape(s.text)}</h{level}>")
        elif isinstance(s, Paragraph):
            cls = ' class="muted"' if s.muted else ""
            parts.append(f"<p{cls}>{html.escape(s.text)}</p>")
        elif isinstance(s, Bullets):
            parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in s.items) + "</ul>")
        elif isinstance(s, Table):
            parts.append(_table(s))
        elif isinstance(s, Chart):
            cap = f"<figcaption>{html.escape(s.caption)}</figcaption>" if s.caption else ""
            if static:
                if s.svg is None:
                    continue
                parts.append(f'<figure class="chart">{s.svg}{cap}</figure>')
            elif s.figure is not None:
                n_fig += 1
                div = s.figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{n_fig}",
                                       config={"displaylogo": False, "responsive": True})  # fmt: skip
                parts.append(f'<figure class="chart plotly">{div}{cap}</figure>')
            elif s.svg is not None:
                parts.append(f'<figure class="chart">{s.svg}{cap}</figure>')
        elif isinstance(s, RawHtml):
            parts.append(s.markup)
        else:  # pragma: no cover - the type says it cannot happen
            raise TypeError(f"not a report section: {type(s).__name__}")
    script = ""
    if n_fig:
        from plotly.offline import get_plotlyjs

        # the library inlined once; a "</script>" inside it would end the tag early
        script = "<script>" + get_plotlyjs().replace("</script>", "<\\/script>") + "</script>"
    sub = f'<p class="meta">{html.escape(subtitle)}</p>' if subtitle else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"generator\" content=\"chainsleuth\"><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style>{script}</head><body>"
        f"<h1>{html.escape(title)}</h1>{sub}<p class=\"meta\">Generated {when} by chainsleuth.</p>"
        + "\n".join(parts)
        + "</body></html>\n"
    )


@dataclass
class Page:
    """Sections collected in order, rendered by :func:`render_page`."""

    title: str
    sections: list[Section] = field(default_factory=list)
    subtitle: str = ""

    def add(self, *sections: Section) -> None:
        self.sections.extend(sections)

    def html(self, *, static: bool = False) -> str:
        return render_page(self.title, self.sections, static=static, subtitle=self.subtitle)
