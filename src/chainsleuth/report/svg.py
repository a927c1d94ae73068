"""Static SVG charts for PDF pages (WeasyPrint runs no JavaScript, and no headless
browser is needed): horizontal bar charts and a layered Sankey. Values are floats only
for geometry; the caller's text labels carry the exact amounts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from html import escape

_FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
            "#17becf")  # fmt: skip


def bar_chart(rows: Sequence[tuple[str, float, str]], *, title: str = "", width: int = 680,
              colour: str = "#1f77b4", max_rows: int = 25) -> str:  # fmt: skip
    """Horizontal bars: (label, value, value text) rows, drawn in the order given."""
    rows = list(rows)[:max_rows]
    label_w, text_w, bar_h, gap = 190, 110, 14, 5
    top = 26 if title else 6
    height = top + len(rows) * (bar_h + gap) + 6
    vmax = max((v for _, v, _ in rows), default=0.0) or 1.0
    span = width - label_w - text_w - 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" {_FONT} font-size="10">']  # fmt: skip
    if title:
        out.append(f'<text x="0" y="14" font-size="12" font-weight="bold">{escape(title)}</text>')
    for k, (label, value, text) in enumerate(rows):
        y = top + k * (bar_h + gap)
        w = max(0.0, value) / vmax * span
        short = label if len(label) <= 32 else label[:30] + "…"
        out.append(f'<text x="{label_w - 6}" y="{y + bar_h - 3}" text-anchor="end">{escape(short)}</text>')
        out.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}"/>')
        out.append(f'<text x="{label_w + w + 4:.1f}" y="{y + bar_h - 3}">{escape(text)}</text>')
    out.append("</svg>")
    return "".join(out)


def sankey(links: Sequence[tuple[str, str, float, str]], *, title: str = "", width: int = 700,
           height: int = 360, node_labels: dict[str, str] | None = None) -> str:  # fmt: skip
    """A layered Sankey: (source, target, width value, link text) links. Columns are the
    longest path from a source (a link closing a cycle is drawn back to the left)."""
    nodes: list[str] = []
    for s, t, _, _ in links:
        for n in (s, t):
            if n not in nodes:
                nodes.append(n)
    col = dict.fromkeys(nodes, 0)
    for _ in range(len(nodes)):  # longest path, bounded so that cycles end
        changed = False
        for s, t, _, _ in links:
            if col[t] < col[s] + 1 and col[s] + 1 < len(nodes):
                col[t] = col[s] + 1
                changed = True
        if not changed:
            break
    inflow: dict[str, float] = defaultdict(float)
    outflow: dict[str, float] = defaultdict(float)
    for s, t, v, _ in links:
        outflow[s] += v
        inflow[t] += v
    size = {n: max(inflow[n], outflow[n]) for n in nodes}
    n_cols = max(col.values(), default=0) + 1
    top = 24 if title else 4
    usable = height - top - 10
    by_col: dict[int, list[str]] = defaultdict(list)
    for n in nodes:
        by_col[col[n]].append(n)
    pad = 14
    scale = min(((usable - pad * (len(ns) - 1)) / (sum(size[n] for n in ns) or 1.0)) for ns in by_col.values())
    node_w = 12
    label_room = 150
    x_step = (width - node_w - label_room) / max(1, n_cols - 1)
    pos: dict[str, tuple[float, float, float]] = {}  # x, y, h
    for c, ns in by_col.items():
        y = float(top)
        for n in ns:
            h = max(2.0, size[n] * scale)
            pos[n] = (c * x_step, y, h)
            y += h + pad
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" {_FONT} font-size="9">']  # fmt: skip
    if title:
        out.append(f'<text x="0" y="14" font-size="12" font-weight="bold">{escape(title)}</text>')
    # Each node stacks its links in the order of the node at their other end (fewer crossings).
    out_off: dict[int, float] = {}
    in_off: dict[int, float] = {}
    for n in nodes:
        acc = 0.0
        for k in sorted((k for k, lk in enumerate(links) if lk[0] == n), key=lambda k: pos[links[k][1]][1]):
            out_off[k] = acc
            acc += links[k][2] * scale
        acc = 0.0
        for k in sorted((k for k, lk in enumerate(links) if lk[1] == n), key=lambda k: pos[links[k][0]][1]):
            in_off[k] = acc
            acc += links[k][2] * scale
    for k, (s, t, v, text) in enumerate(links):
        xs, ys, _ = pos[s]
        xt, yt, _ = pos[t]
        w = max(1.0, v * scale)
        y0, y1 = ys + out_off[k], yt + in_off[k]  # top edges of the band at both ends
        x0, x1 = xs + node_w, xt
        mid = (x0 + x1) / 2 if x1 > x0 else x0 + 40
        colour = _PALETTE[k % len(_PALETTE)]
        # a filled band between two curves keeps its width where it bends (a stroke would not)
        out.append(f'<path d="M{x0:.1f},{y0:.1f} C{mid:.1f},{y0:.1f} {mid:.1f},{y1:.1f} {x1:.1f},{y1:.1f} '
                   f'L{x1:.1f},{y1 + w:.1f} C{mid:.1f},{y1 + w:.1f} {mid:.1f},{y0 + w:.1f} {x0:.1f},{y0 + w:.1f} Z" '
                   f'fill="{colour}" fill-opacity="0.4" stroke="none">'
                   f'<title>{escape(text)}</title></path>')  # fmt: skip
    for x, y, h in pos.values():
        out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{node_w}" height="{h:.1f}" fill="#444"/>')
    for n, (x, y, h) in pos.items():  # labels last, over the bands, with a white halo
        label = (node_labels or {}).get(n, n)
        lx = x + node_w + 3
        lines = label.split("\n")
        for j, line in enumerate(lines):
            ly = y + h / 2 + 3 + (j - (len(lines) - 1) / 2) * 11
            for paint in ('stroke="white" stroke-width="3" stroke-opacity="0.85"', 'fill="#111"'):
                out.append(f'<text x="{lx:.1f}" y="{ly:.1f}" {paint}>{escape(line)}</text>')
    out.append("</svg>")
    return "".join(out)
