"""Flow charts and the HTML page on real trace results (synthetic ledgers, values by hand)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chainsleuth.entities.synthetic import Tx, write_utxo_blocks
from chainsleuth.flows.trace import TraceResult, trace
from chainsleuth.report.charts import (
    format_amount,
    hop_types,
    sankey_links,
    trace_sankey,
    trace_timeline,
)
from chainsleuth.report.html import Chart, Heading, Paragraph, Table, render_page
from chainsleuth.store import Ledger
from chainsleuth.tags import import_tags
from test_flows_trace_conversions import bridge_ledger, swap_ledger


def peel_trace(tmp_path: Path) -> TraceResult:
    """thief splits 10000 sat three ways (fee 100); ``a`` peels 500 to an exchange and
    passes 2450 on; three hops consolidate 9200 at ``cons``, which pays 4000 to the
    exchange and leaves 5100 unspent at ``hold``. Every fee is 50 or 100."""
    with Ledger(tmp_path / "p.duckdb") as led:
        write_utxo_blocks(led, "btc", [
            [Tx("c0", [], [("thief", 10000)])],
            [Tx("t1", [("c0", 0)], [("a", 3000), ("b", 3000), ("c", 3900)])],
            [Tx("t2", [("t1", 0)], [("ex", 500), ("a2", 2450)])],
            [Tx("t3", [("t2", 1)], [("cons", 2400)]), Tx("t4", [("t1", 1)], [("cons", 2950)]),
             Tx("t5", [("t1", 2)], [("cons", 3850)])],
            [Tx("t6", [("t3", 0), ("t4", 0), ("t5", 0)], [("ex", 4000), ("hold", 5100)])],
        ])  # fmt: skip
        f = tmp_path / "t.csv"
        f.write_text("address,currency,label,category,confidence\nex,BTC,Ex & Co,exchange,service_data\n")
        import_tags(led, "csv", f)
        return trace(led, "btc", ["thief"], model="haircut")


def test_hop_types_and_sankey_values(tmp_path: Path) -> None:
    r = peel_trace(tmp_path)
    assert hop_types(r) == {"thief": "seed", "a": "peel", "a2": "intermediary", "b": "intermediary",
                            "c": "intermediary", "cons": "consolidation", "ex": "exchange", "hold": "holding"}  # fmt: skip
    assert sankey_links(r) == {
        ("seed", "peel", "BTC"): 3000, ("seed", "intermediary", "BTC"): 6900,
        ("peel", "exchange", "BTC"): 500, ("peel", "intermediary", "BTC"): 2450,
        ("intermediary", "consolidation", "BTC"): 2400 + 2950 + 3850,
        ("consolidation", "exchange", "BTC"): 4000, ("consolidation", "holding", "BTC"): 5100,
    }  # fmt: skip
    fig = trace_sankey(r)
    sk = fig.data[0]
    labels = list(sk.node.label)
    # exact amounts in the labels; the seed shows what it held (fees included)
    assert "seed: 0.0001 BTC" in labels and "exchange: 0.000045 BTC" in labels and "holding: 0.000051 BTC" in labels
    drawn = {(labels[s].split(":")[0], labels[t].split(":")[0]): v
             for s, t, v in zip(sk.link.source, sk.link.target, sk.link.value, strict=True)}  # fmt: skip
    assert drawn[("consolidation", "exchange")] == pytest.approx(0.00004)
    assert "0.000092 BTC" in sk.link.customdata


def test_sankey_by_address_and_timeline(tmp_path: Path) -> None:
    r = peel_trace(tmp_path)
    fig = trace_sankey(r, by="address")
    labels = list(fig.data[0].node.label)
    assert "Ex & Co (ex): 0.000045 BTC" in labels and len(labels) == 8
    small = trace_sankey(r, by="address", max_nodes=3)
    assert any(lbl.startswith("other addresses") for lbl in small.data[0].node.label)
    tl = trace_timeline(r)
    assert sum(len(t.x) for t in tl.data) == len(r.edges) == 10
    assert {y for t in tl.data for y in t.y} == {"peel", "intermediary", "consolidation", "exchange", "holding"}
    # several results (e.g. one per seed chain) are drawn as one flow
    assert sankey_links([r, r])[("consolidation", "exchange", "BTC")] == 2 * 4000
    with pytest.raises(ValueError, match="unknown grouping"):
        trace_sankey(r, by="colour")


def test_swap_and_bridge_are_nodes(tmp_path: Path) -> None:
    with swap_ledger(tmp_path) as led:
        r = trace(led, "eth", ["0xthief"])
    a, b = "0x" + "0" * 38 + "aa", "0x" + "0" * 38 + "bb"
    sym = {a: "TKA", b: "TKB"}
    links = sankey_links(r)
    # 100 A enter the pool, 150 B come out (100 * 300 // 200), 45 B reach the exchange
    assert links[("intermediary · 0x000000…00aa", "swap", a)] == 100
    assert links[("swap", "intermediary · 0x000000…00bb", b)] == 150
    assert links[("intermediary · 0x000000…00bb", "exchange · 0x000000…00bb", b)] == 45
    labels = list(trace_sankey(r, symbols=sym, decimals={a: 0, b: 0}).data[0].node.label)
    assert "swap: 100 TKA" in labels and "exchange · TKB: 45 TKB" in labels
    with bridge_ledger(tmp_path / "b") as led:
        rb = trace(led, "eth", ["0xthief"])
    assert sankey_links([rb]) == {("seed", "bridge", "ETH"): 500, ("bridge", "intermediary · BTC", "BTC"): 99,
                                  ("intermediary · BTC", "exchange · BTC", "BTC"): 60,
                                  ("intermediary · BTC", "holding · BTC", "BTC"): 39}  # fmt: skip


def test_format_amount_is_exact() -> None:
    assert format_amount(123456789012345678901, "ETH") == "123.456789012345678901 ETH"
    assert format_amount(100_000_000, "BTC") == "1 BTC"
    assert format_amount(-5, "BTC") == "-0.00000005 BTC"
    assert format_amount(7, "0xabcdefabcdefabcdef") == "7 0xabcdef…cdef (base units)"
    assert format_amount(1_500_000, "0xusdc", {"0xusdc": 6}, {"0xusdc": "USDC"}) == "1.5 USDC"


def test_render_page_self_contained(tmp_path: Path) -> None:
    r = peel_trace(tmp_path)
    page = render_page("Case <1>", [
        Heading("Flow"), Paragraph("a & b"), Chart(trace_sankey(r), caption="by hop type"), trace_timeline(r),
        Table(["address", "value"], [["ex", "4500"]], numeric=["value"]),
        Table(["url"], [["https://example.org/a https://example.org/b"]], links=["url"]),
    ])  # fmt: skip
    assert "<title>Case &lt;1&gt;</title>" in page and "<p>a &amp; b</p>" in page
    assert page.count('class="plotly-graph-div"') == 2
    assert not re.search(r"<script[^>]+src=", page)  # no network: plotly.js is inline, once
    assert page.count("* plotly.js v") == 1 and len(page) > 1_000_000
    assert '<td class="num">4500</td>' in page and '<a href="https://example.org/b">' in page
    static = render_page("Case", [Chart(trace_sankey(r), svg="<svg id='s'></svg>"), Chart(trace_sankey(r))], static=True)
    assert "<script" not in static and "<svg id='s'></svg>" in static
