"""Flow charts of trace results: a Sankey of where the value went and a timeline of its hops.

Amounts stay exact integers (base units) everywhere; they become floats only as the
drawn width of a link (``Decimal`` scaled by the asset's decimals, then ``float``).
Every label and hover text carries the exact amount.

Hop types (``by="hop_type"``) classify each address the trace passed through by what
it did with the tainted value (:func:`hop_types`). They are drawing aids, not findings:

* ``split``: sent tainted value to 3 or more distinct addresses. The fan-out step of
  the laundering typology in Chainalysis' *Crypto Crime Report* (2023, Lazarus/Ronin) and
  Elliptic's Bybit analysis (2025). False positives: a payroll or exchange withdrawal batch.
* ``peel``: sent tainted value to exactly 2 addresses in one transaction, the larger at
  least 3 times the smaller: one step of a peeling chain (Meiklejohn et al., *A Fistful of
  Bitcoins*, IMC 2013, section 5). False positives: any ordinary payment with change.
* ``consolidation``: received tainted value from 3 or more distinct addresses.
  False positives: a merchant or a wallet sweeping its own deposits.
* ``swap`` / ``bridge``: the trace's own conversion edges (decoded DEX swaps, matched
  bridge hops); drawn as nodes between the sender and the recipient.
* endpoints by their tag category: ``exchange``, ``mixer`` (mixing_service, coinjoin),
  ``bridge service``, ``DEX``, ``payment processor``, else ``endpoint``;
* ``holding``: still holds taint and sent none of it on; ``intermediary``: anything else.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go

from ..flows.trace import TraceResult

# Decimals of the native assets; tokens (contract addresses) are drawn in base units
# unless the caller passes their decimals.
NATIVE_DECIMALS = {"BTC": 8, "ETH": 18, "LTC": 8, "BCH": 8, "DOGE": 8, "WETH": 18, "USDT": 6, "USDC": 6, "DAI": 18}

ENDPOINT_CLASSES = {
    "exchange": "exchange", "mixing_service": "mixer", "coinjoin": "mixer", "bridge": "bridge service",
    "defi_bridge": "bridge service", "defi_dex": "DEX", "payment_processor": "payment processor",
}  # fmt: skip

# Left-to-right order of the hop types (the Sankey's columns and the timeline's rows).
HOP_ORDER = ("seed", "split", "intermediary", "peel", "consolidation", "swap", "bridge", "mixer", "DEX",
             "bridge service", "payment processor", "exchange", "endpoint", "holding")  # fmt: skip
_COLOURS = {
    "seed": "#d62728", "split": "#ff7f0e", "intermediary": "#8c8c8c", "peel": "#bcbd22",
    "consolidation": "#9467bd", "swap": "#17becf", "bridge": "#1f77b4", "mixer": "#000000",
    "DEX": "#2ca02c", "bridge service": "#1f77b4", "payment processor": "#e377c2",
    "exchange": "#2ca02c", "endpoint": "#7f7f7f", "holding": "#8c564b",
}  # fmt: skip
_ASSET_COLOURS = ("rgba(31,119,180,0.45)", "rgba(255,127,14,0.45)", "rgba(44,160,44,0.45)",
                  "rgba(214,39,40,0.45)", "rgba(148,103,189,0.45)", "rgba(140,86,75,0.45)")  # fmt: skip

SPLIT_MIN_RECIPIENTS = 3
PEEL_RATIO = 3
CONSOLIDATION_MIN_SENDERS = 3


def format_amount(value: int, asset: str, decimals: Mapping[str, int] | None = None,
                  symbols: Mapping[str, str] | None = None) -> str:  # fmt: skip
    """``value`` base units as an exact decimal string with the asset's symbol (``1.5 BTC``).
    Assets of unknown decimals are shown in base units (``1500 units of 0xabc…``)."""
    dec = _decimals(asset, decimals)
    name = (symbols or {}).get(asset, asset)
    if dec is None:
        return f"{value} {_short(name)} (base units)"
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**dec)
    frac_s = str(frac).rjust(dec, "0").rstrip("0") if dec else ""
    return f"{sign}{whole}{'.' + frac_s if frac_s else ''} {_short(name)}"


def _decimals(asset: str, decimals: Mapping[str, int] | None) -> int | None:
    if decimals and asset in decimals:
        return decimals[asset]
    return NATIVE_DECIMALS.get(asset.upper())


def _short(name: str) -> str:
    return name if len(name) <= 14 else f"{name[:8]}…{name[-4:]}"


def _draw_value(value: int, asset: str, decimals: Mapping[str, int] | None) -> float:
    """Width of a link: the exact amount in whole units, as float only for drawing."""
    dec = _decimals(asset, decimals) or 0
    return float(Decimal(value).scaleb(-dec))


def merge_results(result: TraceResult | Sequence[TraceResult]) -> TraceResult:
    """One result holding the seeds, edges, endpoints and holdings of several (for charts)."""
    if isinstance(result, TraceResult):
        return result
    results = list(result)
    if not results:
        raise ValueError("no trace results to draw")
    if len(results) == 1:
        return results[0]
    merged = TraceResult(chain=results[0].chain, model=results[0].model, backward=results[0].backward,
                         seeds=[], seed_value={}, edges=[], endpoints=[], holdings=[], fees={}, left={})  # fmt: skip
    for r in results:
        merged.seeds += [s for s in r.seeds if s not in merged.seeds]
        for a, v in r.seed_value.items():
            merged.seed_value[a] = merged.seed_value.get(a, 0) + v
        merged.edges += r.edges
        merged.endpoints += r.endpoints
        merged.holdings += r.holdings
        merged.conversions += r.conversions
    return merged


def hop_types(result: TraceResult | Sequence[TraceResult]) -> dict[str, str]:
    """Each address of the trace -> its hop type (see the module doc for the rules)."""
    res = merge_results(result)
    seeds = {s.lower() for s in res.seeds}
    ends = {str(e["address"]): ENDPOINT_CLASSES.get(str(e.get("category") or ""), "endpoint") for e in res.endpoints}
    holders = {str(h["address"]) for h in res.holdings if h.get("address")}
    recipients: dict[str, set[str]] = defaultdict(set)
    senders: dict[str, set[str]] = defaultdict(set)
    per_tx: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    addresses: set[str] = set()
    for e in res.edges:
        f, t = e.get("from"), e.get("to")
        addresses.update(x for x in (f, t) if x is not None)
        if e.get("kind", "transfer") != "transfer" or f is None or t is None or f == t:
            continue
        recipients[f].add(t)
        senders[t].add(f)
        per_tx[(f, str(e.get("transaction_hash")))][t] += int(e["value"])
    peelers = set()
    for (f, _tx), outs in per_tx.items():
        if len(outs) == 2:
            small, large = sorted(outs.values())
            if large >= PEEL_RATIO * small:
                peelers.add(f)
    types: dict[str, str] = {}
    for a in addresses | holders | set(ends):
        if a.lower() in seeds:
            types[a] = "seed"
        elif a in ends:
            types[a] = ends[a]
        elif len(recipients[a]) >= SPLIT_MIN_RECIPIENTS:
            types[a] = "split"
        elif a in peelers:
            types[a] = "peel"
        elif len(senders[a]) >= CONSOLIDATION_MIN_SENDERS:
            types[a] = "consolidation"
        elif a in holders and not recipients[a]:
            types[a] = "holding"
        else:
            types[a] = "intermediary"
    return types


def _links(res: TraceResult, node_of: Any) -> dict[tuple[str, str, str], int]:
    """(source node, target node, asset) -> exact value; swaps and bridges pass through their own
    node. ``node_of(address, asset)`` names the node of an address holding that asset."""
    links: dict[tuple[str, str, str], int] = defaultdict(int)
    for e in res.edges:
        kind = e.get("kind", "transfer")
        asset = str(e["asset"])
        if kind in ("swap", "bridge"):
            asset_in = str(e.get("asset_in") or asset)
            if e.get("value_in"):
                links[(node_of(e.get("from"), asset_in), kind, asset_in)] += int(e["value_in"])
            links[(kind, node_of(e.get("to"), asset), asset)] += int(e["value"])
        else:
            links[(node_of(e.get("from"), asset), node_of(e.get("to"), asset), asset)] += int(e["value"])
    return {k: v for k, v in links.items() if k[0] != k[1] and v}  # value moving within a node is not a flow


def _hop_node_of(res: TraceResult, types: Mapping[str, str], symbols: Mapping[str, str] | None) -> Any:
    """Node namer for the hop-type view: the hop type, and the asset when the trace has
    several (so value converted by a swap or bridge lands in a new node, not back in its own)."""
    assets = {str(e["asset"]) for e in res.edges} | {str(e["asset_in"]) for e in res.edges if e.get("asset_in")}

    def node_of(address: str | None, asset: str) -> str:
        t = types.get(address, "seed") if address is not None else "seed"
        if len(assets) > 1 and t != "seed":
            return f"{t} · {_short((symbols or {}).get(asset, asset))}"
        return t

    return node_of


def trace_sankey(
    result: TraceResult | Sequence[TraceResult],
    *,
    by: str = "hop_type",
    decimals: Mapping[str, int] | None = None,
    symbols: Mapping[str, str] | None = None,
    max_nodes: int = 40,
    title: str | None = None,
) -> go.Figure:
    """A Sankey of the traced flow.

    ``by="hop_type"``: nodes are the hop types of :func:`hop_types` (seed, split, peel,
    swap, bridge, mixer, exchange, holding, ...). ``by="address"``: one node per address
    (endpoints named by their tag labels), the ``max_nodes`` largest kept and the rest
    grouped as "other addresses". One link per (source, target, asset), coloured by asset;
    node and link labels carry the exact amounts."""
    res = merge_results(result)
    types = hop_types(res)
    names: dict[str, str] = {}
    if by == "hop_type":
        links = _links(res, _hop_node_of(res, types, symbols))
    elif by == "address":
        names = _address_names(res, types)
        raw = _links(res, lambda a, _asset: a if a is not None else "(source)")
        weight: dict[str, int] = defaultdict(int)
        for (s, t, _a), v in raw.items():
            weight[s] += v
            weight[t] += v
        keep = {n for n, _ in sorted(weight.items(), key=lambda kv: -kv[1])[:max_nodes]}
        links = defaultdict(int)
        for (s, t, a), v in raw.items():
            s2 = names.get(s, s) if s in keep or s in ("swap", "bridge") else "other addresses"
            t2 = names.get(t, t) if t in keep or t in ("swap", "bridge") else "other addresses"
            if s2 != t2:
                links[(s2, t2, a)] += v
    else:
        raise ValueError(f"unknown grouping {by!r}; use 'hop_type' or 'address'")
    node_type: dict[str, str] = {}
    if by == "address":
        node_type = {names.get(a, a): t for a, t in types.items()}
    nodes = _node_order({n for s, t, _ in links for n in (s, t)}, node_type if by == "address" else None)
    index = {n: i for i, n in enumerate(nodes)}
    inflow: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    outflow: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (s, t, a), v in links.items():
        inflow[t][a] += v
        outflow[s][a] += v

    def amounts(d: Mapping[str, int]) -> str:
        return "; ".join(format_amount(v, a, decimals, symbols) for a, v in sorted(d.items()))

    def base(n: str) -> str:
        return n.split(" · ")[0]

    def node_amounts(n: str) -> Mapping[str, int]:
        if by == "hop_type" and n == "seed" and res.seed_value:
            return res.seed_value  # what the seeds held, fees included
        return inflow[n] or outflow[n]

    node_labels = [f"{n}: {amounts(node_amounts(n))}" for n in nodes]
    assets = sorted({a for _, _, a in links})
    colour = {a: _ASSET_COLOURS[i % len(_ASSET_COLOURS)] for i, a in enumerate(assets)}
    ordered = sorted(links.items(), key=lambda kv: (index[kv[0][0]], index[kv[0][1]], kv[0][2]))
    fig = go.Figure(go.Sankey(
        arrangement="snap",
        node={"label": node_labels, "pad": 18, "thickness": 16,
              "color": [_COLOURS.get(node_type.get(n, base(n)), "#7f7f7f") for n in nodes],
              "hovertemplate": "%{label}<extra></extra>"},
        link={"source": [index[s] for (s, _, _), _ in ordered], "target": [index[t] for (_, t, _), _ in ordered],
              "value": [_draw_value(v, a, decimals) for (_, _, a), v in ordered],
              "color": [colour[a] for (_, _, a), _ in ordered],
              "customdata": [format_amount(v, a, decimals, symbols) for (_, _, a), v in ordered],
              "hovertemplate": "%{source.label} → %{target.label}<br>%{customdata}<extra></extra>"},
    ))  # fmt: skip
    fig.update_layout(title=title or f"Flow of traced value by {by.replace('_', ' ')} ({res.model})",
                      font={"size": 11}, margin={"l": 10, "r": 10, "t": 40, "b": 10}, height=480)  # fmt: skip
    return fig


def sankey_links(
    result: TraceResult | Sequence[TraceResult], *, by: str = "hop_type"
) -> dict[tuple[str, str, str], int]:
    """The exact values behind :func:`trace_sankey` (hop-type grouping): (source, target, asset) -> value."""
    res = merge_results(result)
    types = hop_types(res)
    if by != "hop_type":
        raise ValueError("sankey_links supports by='hop_type'")
    return _links(res, _hop_node_of(res, types, None))


def _address_names(res: TraceResult, types: Mapping[str, str]) -> dict[str, str]:
    names: dict[str, str] = {}
    for e in res.endpoints:
        label = ", ".join(e.get("labels") or []) or types.get(e["address"], "endpoint")
        names[str(e["address"])] = f"{label} ({_short(str(e['address']))})"
    for a, t in types.items():
        names.setdefault(a, f"{t} {_short(a)}")
    return names


def _node_order(nodes: Iterable[str], types: Mapping[str, str] | None) -> list[str]:
    def rank(n: str) -> tuple[int, str]:
        t = n.split(" · ")[0] if types is None else types.get(n, n)
        return (HOP_ORDER.index(t) if t in HOP_ORDER else len(HOP_ORDER), n)

    return sorted(nodes, key=rank)


def trace_timeline(
    result: TraceResult | Sequence[TraceResult],
    *,
    decimals: Mapping[str, int] | None = None,
    symbols: Mapping[str, str] | None = None,
    title: str | None = None,
) -> go.Figure:
    """Each traced edge as a point: block time on x, the hop type of its recipient on y,
    one trace per asset; the hover shows the exact amount, sender, recipient and tx."""
    res = merge_results(result)
    types = hop_types(res)
    by_asset: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in res.edges:
        if e.get("block_timestamp") is None:
            continue
        by_asset[str(e["asset"])].append(e)
    fig = go.Figure()
    rows_used: set[str] = set()
    for asset, edges in sorted(by_asset.items()):
        edges.sort(key=lambda e: e["block_timestamp"])
        ys = [str(e["kind"]) if e.get("kind") in ("swap", "bridge") else types.get(e.get("to") or "", "intermediary")
              for e in edges]  # fmt: skip
        rows_used.update(ys)
        fig.add_trace(go.Scatter(
            x=[_as_dt(e["block_timestamp"]) for e in edges], y=ys, mode="markers",
            name=(symbols or {}).get(asset, _short(asset)),
            marker={"size": 9, "opacity": 0.75},
            customdata=[[format_amount(int(e["value"]), asset, decimals, symbols), e.get("from") or "",
                         e.get("to") or "", e.get("transaction_hash") or ""] for e in edges],
            hovertemplate="%{x}<br>%{customdata[0]}<br>%{customdata[1]} → %{customdata[2]}"
                          "<br>tx %{customdata[3]}<extra></extra>",
        ))  # fmt: skip
    order = [t for t in HOP_ORDER if t in rows_used] + sorted(rows_used - set(HOP_ORDER))
    fig.update_yaxes(categoryorder="array", categoryarray=order, title="hop type of recipient")
    fig.update_xaxes(title="block time (UTC)")
    fig.update_layout(title=title or "Traced edges over time", height=380, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def _as_dt(value: Any) -> datetime | str:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
