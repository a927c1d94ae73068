"""``report incident ID``: a case file from a registry record and a trace attached to it
(synthetic UTXO ledger, values and USD computed by hand)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chainsleuth.cli.main import app
from chainsleuth.incidents import Incident, add_incident, record_trace
from chainsleuth.prices.store import PriceFormat, import_prices
from chainsleuth.report.incident_case import incident_case, trace_from_json
from chainsleuth.store import Ledger
from test_report_charts import peel_trace


def case_db(tmp_path: Path, *, prices: bool = True) -> Path:
    """The peel ledger of test_report_charts, an incident, its trace, and two BTC prices."""
    result = peel_trace(tmp_path)  # writes tmp_path / "p.duckdb"
    db = tmp_path / "p.duckdb"
    with Ledger(db) as led:
        add_incident(led, Incident(
            incident_id="LAB-2017-01", date=date(2017, 7, 14), date_precision="day", victim="Lab exchange",
            victim_type="exchange", country="KR", amount_usd=None, assets=("BTC",), chains=("bitcoin",),
            attack_vector="hot wallet key theft", attributed_to="Lazarus Group", attribution_source="lab",
            confidence="industry", source_urls=("https://example.org/lab",)))  # fmt: skip
        record_trace(led, "LAB-2017-01", result, params={"model": "haircut"})
        if prices:
            f = tmp_path / "btc.csv"
            f.write_text("day,close\n2017-07-14,2000.5\n2017-07-20,2500\n")
            import_prices(led, f, PriceFormat("BTC", "day", "close", "test series"))
    return db


def test_case_file_values(tmp_path: Path) -> None:
    db = case_db(tmp_path)
    with Ledger(db) as led:
        doc = incident_case(led, "LAB-2017-01")
    assert doc["incident"]["victim"] == "Lab exchange" and len(doc["traces"]) == 1
    t = doc["traces"][0]
    assert (t["model"], t["seed_value"], t["accounted"], t["fees"]) == (
        "haircut", {"BTC": "10000"}, {"BTC": "10000"}, {"BTC": "400"})  # fmt: skip
    [ex] = t["endpoints"]
    assert (ex["address"], ex["value"], ex["amount"], ex["labels"], ex["category"]) == (
        "ex", "4500", "0.000045 BTC", ["Ex & Co"], "exchange")  # fmt: skip
    assert ex["transactions"] == ["t2", "t6"]  # the peel and the consolidation's spend
    # 4500 sat at the day's close 2000.5 = 0.0900225 USD; latest (2017-07-20) 2500 -> 0.1125
    assert ex["usd"]["at_time"] | {"price": None} == {"usd": "0.0900225", "price": None, "price_day": "2017-07-14",
                                                       "source": "test series", "flag": "daily"}  # fmt: skip
    assert (ex["usd"]["latest"]["usd"], ex["usd"]["latest"]["price_day"]) == ("0.1125", "2017-07-20")
    assert [(h["address"], h["value"], h["usd"]["latest"]["usd"]) for h in t["holdings"]] == [("hold", "5100", "0.1275")]
    assert {(f["from"], f["to"], f["value"]) for f in t["flow_by_hop_type"]} >= {
        ("consolidation", "exchange", "4000"), ("peel", "exchange", "500")}  # fmt: skip
    # the stored result round-trips to the same exact values
    back = trace_from_json(t["result"])
    assert back.accounted("BTC") == 10000 and sum(e["value"] for e in back.edges) == 3000 * 2 + 3900 + 500 + 2450 + 2400 + 2950 + 3850 + 4000 + 5100


def test_case_without_prices_says_no_price(tmp_path: Path) -> None:
    with Ledger(case_db(tmp_path, prices=False)) as led:
        ex = incident_case(led, "LAB-2017-01")["traces"][0]["endpoints"][0]
    assert ex["usd"]["at_time"]["usd"] is None and ex["usd"]["at_time"]["flag"] == "no_price"


def test_case_cli_html_pdf(tmp_path: Path) -> None:
    db = case_db(tmp_path)
    run = CliRunner()
    page = tmp_path / "case.html"
    out = run.invoke(app, ["--db", str(db), "report", "incident", "LAB-2017-01", "-o", str(page)])
    assert out.exit_code == 0, out.output
    html = page.read_text()
    assert html.count('class="plotly-graph-div"') == 2 and not re.search(r"<script[^>]+src=", html)
    assert "Haircut: every output" in html and "$0.0900225 (test series, 2017-07-14)" in html
    out = run.invoke(app, ["--db", str(db), "report", "incident", "LAB-2017-01", "--format", "json"])
    assert json.loads(out.output)["traces"][0]["endpoints"][0]["value"] == "4500"
    pdf = tmp_path / "case.pdf"
    out = run.invoke(app, ["--db", str(db), "report", "incident", "LAB-2017-01", "--format", "pdf", "-o", str(pdf)])
    assert out.exit_code == 0, out.output
    assert pdf.read_bytes().startswith(b"%PDF")
    out = run.invoke(app, ["--db", str(db), "report", "incident", "NOPE-1"])
    assert out.exit_code != 0 and "no incident 'NOPE-1'" in str(out.exception)
    if shutil.which("pdftoppm") is None:  # last: everything above has run
        pytest.skip("pdftoppm (poppler-utils) not installed: the PDF was not rendered to PNG pages")
    subprocess.run(["pdftoppm", "-png", "-r", "30", str(pdf), str(tmp_path / "page")], check=True)
    assert list(tmp_path.glob("page-*.png"))
