"""``report incidents``: totals from the real registry (hand-computed from the CSV), the
published-aggregate comparison and its explanation, output formats and bad input."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chainsleuth.cli.main import app
from chainsleuth.errors import ConfigError
from chainsleuth.incidents.model import Incident, IncidentFilter
from chainsleuth.report.aggregates import (
    PublishedFigure,
    compare_figure,
    figure_filter,
    figure_matches,
    group_totals,
    load_published,
)
from chainsleuth.store import Ledger

KEY = IncidentFilter(since=date(2017, 1, 1), until=date(2018, 9, 30), victim_types=("exchange",), actor="Lazarus")


def inc(iid: str, day: str, usd: int | None, *, kind: str = "exchange", conf: str = "official",
        country: str | None = "KR", notes: str = "") -> Incident:  # fmt: skip
    return Incident(incident_id=iid, date=date.fromisoformat(day), date_precision="day", victim=f"victim {iid}",
                    victim_type=kind, country=country, amount_usd=usd, assets=("BTC",), chains=("bitcoin",),
                    attack_vector="", attributed_to="Lazarus", attribution_source="x", confidence=conf,
                    source_urls=(f"https://example.org/{iid}",), notes=notes)  # fmt: skip


def test_compare_named_figure_by_hand() -> None:
    """A figure naming A (100), B (no amount) and Z (not in the registry), published 130:
    the registry's filter also finds C (50, not named) and D (20, contested, named)."""
    a = inc("A", "2018-01-01", 100)
    b = inc("B", "2018-02-01", None, notes="not disclosed")
    c = inc("C", "2018-03-01", 50)
    d = inc("D", "2018-04-01", 20, conf="contested", notes="values $20M-$25M by source")
    fig = PublishedFigure(id="f", publisher="P", document="doc", figure="130", value_usd=130, scope="exchanges",
                          source_urls=("https://example.org/f",), since=date(2018, 1, 1), until=date(2018, 12, 31),
                          victim_types=("exchange",), incidents=("A", "B", "D", "Z"), count=4)  # fmt: skip
    out = compare_figure(fig, [a, b, c, d], {i.incident_id: i for i in (a, b, c, d)}, IncidentFilter())
    assert out["registry"] | {"incidents": None} == {
        "count": 4, "valued": 3, "total_usd": 170, "total_usd_excluding_contested": 150, "named_total_usd": 120,
        "incidents": None, "unvalued": ["B"]}  # fmt: skip
    assert out["difference_usd"] == 130 - 170
    why = {(r["kind"], r["usd"], tuple(r["incidents"])) for r in out["explanation"]}
    assert why == {
        ("reconciliation", 130 - 170, ("A", "B", "D")),  # 170 = 120 named + 50 extra; 130 = 120 + 10
        ("missing_incident", None, ("Z",)), ("missing_amount", None, ("B",)), ("extra_incident", 50, ("C",)),
        ("valuation", 10, ("D",)), ("contested", 20, ("D",)),
    }  # fmt: skip
    assert out["explanation"][0]["kind"] == "reconciliation"


def test_group_totals_keep_unvalued_apart() -> None:
    rows = group_totals([inc("A", "2017-01-01", 5), inc("B", "2017-06-01", None), inc("C", "2018-01-01", 7)],
                        lambda i: [str(i.date.year)], order="key")  # fmt: skip
    assert [(r["key"], r["count"], r["total_usd"], r["unvalued"]) for r in rows] == [("2017", 2, 5, 1), ("2018", 1, 7, 0)]


def test_published_table_loads_and_matches() -> None:
    figs = {f.id: f for f in load_published()}
    un = figs["un-s-2019-171-exchanges"]
    assert un.value_usd == 571_000_000 and un.count == 5 and un.since == date(2017, 1, 1)
    assert all(f.source_urls and all(u.startswith("http") for u in f.source_urls) for f in figs.values())
    assert figure_matches(un, KEY) and not figure_matches(figs["chainalysis-2020"], KEY)
    assert not figure_matches(figs["fireeye-apt38-2018"], KEY)  # banks only
    assert figure_filter(un, KEY) == KEY  # the same filter: the report's actor is kept


def test_published_table_bad_entry(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("figures:\n  - {id: x, publisher: p, document: d, figure: f, value_usd: -3, scope: s}\n")
    with pytest.raises(ConfigError, match=r"figure x: value_usd must be"):
        load_published(bad)
    bad.write_text("figures:\n  - {id: y, publisher: p, document: d, figure: f, value_usd: 3, scope: s, victim_types: [shop]}\n")
    with pytest.raises(ConfigError, match=r"figure y: unknown victim type"):
        load_published(bad)


@pytest.fixture(scope="module")
def registry_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from chainsleuth.config import data_dir
    from chainsleuth.incidents import import_incidents

    d = data_dir()
    csv_path = d / "dprk_incidents" / "dprk_incidents.csv" if d else None
    if csv_path is None or not csv_path.is_file():
        pytest.skip("real data not found: set CHAINSLEUTH_DATA to the shared/data folder (dprk_incidents)")
    db = tmp_path_factory.mktemp("reg") / "r.duckdb"
    with Ledger(db) as led:
        import_incidents(led, csv_path)
    yield db


@pytest.mark.data
def test_key_case_exchanges_lazarus_vs_un(registry_db: Path) -> None:
    """Exchanges, 2017-01-01..2018-09-30, Lazarus: from the CSV by hand, Yapizon 5,300,000 +
    Coinis 2,190,000 + Coincheck 530,000,000 + Gate.io 250,000,000 + Bithumb Jun 2018 31,000,000 +
    Indodax 24,900,000 = 843,390,000 over 8 rows, Bithumb 2017 and Youbit Dec 2017 without amount.
    The UN's five: 5.3M + 2.19M + 530M + 31M = 568,490,000 valued here (Youbit has none)."""
    from chainsleuth.report.incidents_report import incidents_report

    with Ledger(registry_db) as led:
        doc = incidents_report(led, KEY)
    assert doc["count"] == 8 and doc["total_usd"] == 843_390_000 and doc["valued_count"] == 6
    assert [u["incident_id"] for u in doc["unvalued"]] == ["DPRK-2017-02", "DPRK-2017-06"]
    assert doc["countries"] == ["ID", "JP", "KR"] and doc["without_country"] == ["DPRK-2018-03"]
    assert doc["total_usd_excluding_contested"] == 843_390_000 - 530_000_000
    assert {r["key"]: (r["count"], r["total_usd"], r["unvalued"]) for r in doc["by_year"]} == {
        "2017": (4, 7_490_000, 2), "2018": (4, 835_900_000, 0)}  # fmt: skip
    un = next(p for p in doc["published"] if p["id"] == "un-s-2019-171-exchanges")
    assert un["registry"]["total_usd"] == 843_390_000 and un["registry"]["named_total_usd"] == 568_490_000
    assert un["difference_usd"] == 571_000_000 - 843_390_000
    why = {r["kind"]: r for r in un["explanation"]}
    assert why["missing_amount"]["incidents"] == ["DPRK-2017-06"]  # Youbit Dec 2017
    assert why["extra_incident"]["usd"] == 250_000_000 + 24_900_000  # Gate.io, Indodax (DOJ attributions)
    assert why["extra_incident"]["incidents"] == ["DPRK-2017-02", "DPRK-2018-03", "DPRK-2018-08"]
    assert why["valuation"]["usd"] == 2_510_000 and "DPRK-2018-02" in why["valuation"]["incidents"]  # Coincheck range
    assert why["contested"]["usd"] == 530_000_000 and why["contested"]["incidents"] == ["DPRK-2018-02"]
    assert why["reconciliation"]["usd"] == 571_000_000 - 843_390_000


@pytest.mark.data
def test_whole_registry_matches_readme(registry_db: Path) -> None:
    """README: 54 rows, $5,313.7M; $4,350.4M without contested; 2018 = $935.9M crypto + $16.2M banks."""
    from chainsleuth.report.incidents_report import incidents_report

    with Ledger(registry_db) as led:
        doc = incidents_report(led)
        no_actor = incidents_report(led, IncidentFilter(since=KEY.since, until=KEY.until, victim_types=("exchange",)))
    assert doc["count"] == 54 and doc["total_usd"] == 5_313_662_000 and len(doc["unvalued"]) == 6
    assert round(doc["total_usd_excluding_contested"], -5) == 4_350_400_000
    assert {r["key"]: r["total_usd"] for r in doc["by_year"]}["2018"] == 935_900_000 + 16_200_000
    assert {r["key"]: r["count"] for r in doc["by_victim_type"]} == {
        "exchange": 33, "bank": 7, "other": 4, "bridge": 4, "payment_processor": 2, "defi": 2, "wallet": 1,
        "gambling": 1}  # fmt: skip
    assert {r["key"]: r["count"] for r in doc["by_confidence"]} == {"official": 34, "industry": 11, "contested": 9}
    # no actor filter: Coinrail (40M) and Zaif (60M), both contested, join the period's exchanges
    un = next(p for p in no_actor["published"] if p["id"] == "un-s-2019-171-exchanges")
    assert un["registry"]["total_usd"] == 843_390_000 + 40_000_000 + 60_000_000
    assert len(doc["sources"]) == len({u for i in doc["incidents"] for u in i["source_urls"]})


@pytest.mark.data
def test_cli_formats(registry_db: Path, tmp_path: Path) -> None:
    run = CliRunner()
    base = ["--db", str(registry_db), "report", "incidents", "--since", "2017-01-01", "--until", "2018-09-30",
            "--victim-type", "exchange", "--actor", "Lazarus"]  # fmt: skip
    out = run.invoke(app, [*base, "--format", "json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert (doc["count"], doc["total_usd"], doc["countries"]) == (8, 843_390_000, ["ID", "JP", "KR"])
    out = run.invoke(app, [*base, "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(out.output)))
    assert len(rows) == 8 and {r["incident_id"]: r["amount_usd"] for r in rows}["DPRK-2017-06"] == ""
    # dates as precise as the registry: Bithumb 2017 is dated to the month only ("2017-06")
    dates = {r["incident_id"]: r["date"] for r in rows}
    assert (dates["DPRK-2017-02"], dates["DPRK-2017-01"]) == ("2017-06", "2017-04-22")
    page = tmp_path / "r.html"
    out = run.invoke(app, [*base, "--format", "html", "-o", str(page)])
    assert out.exit_code == 0, out.output
    assert "(8 incidents, $843,390,000, 2 without an amount)" in " ".join(out.output.split())
    html = page.read_text()
    assert html.count('class="plotly-graph-div"') == 4 and not re.search(r"<script[^>]+src=", html)
    assert "571,000,000" in html and "https://www.computing.co.uk/news/3072600" in html
    # checked by eye in a browser: dates of a period on one line, notes joined without ".;"
    assert '<td class="nowrap">2017-01-01 to 2018-09-30</td>' in html and ".;" not in json.dumps(doc["published"])
    pdf = tmp_path / "r.pdf"
    out = run.invoke(app, [*base, "--format", "pdf", "-o", str(pdf)])
    assert out.exit_code == 0, out.output
    assert pdf.read_bytes().startswith(b"%PDF")
    if shutil.which("pdftoppm") is None:  # last: everything above has run
        pytest.skip("pdftoppm (poppler-utils) not installed: the PDF was not rendered to PNG pages")
    subprocess.run(["pdftoppm", "-png", "-r", "30", str(pdf), str(tmp_path / "page")], check=True)
    assert len(list(tmp_path.glob("page-*.png"))) >= 3


def test_cli_bad_input(tmp_path: Path) -> None:
    run = CliRunner()
    db = tmp_path / "empty.duckdb"
    for args, message in [
        (["--victim-type", "shop"], "unknown --victim-type 'shop'"),
        (["--confidence", "maybe"], "unknown --confidence"),
        (["--since", "2017-13-01"], "--since: not a date"),
        (["--since", "2019-01-01", "--until", "2018-01-01"], "is after --until"),
        (["--format", "pdf"], "needs --output"),
        ([], "registry is empty"),
        (["--format", "xml"], "unknown --format 'xml'"),
        (["--country", "FRA"], "not an ISO-3166 alpha-2 code"),
    ]:
        out = run.invoke(app, ["--db", str(db), "report", "incidents", *args])
        assert out.exit_code != 0 and isinstance(out.exception, ConfigError), (args, out.output)
        assert message in str(out.exception), (args, str(out.exception))
    out = run.invoke(app, ["--db", str(db), "report", "incident", "DPRK-1999-01", "--format", "csv"])
    assert "choose html, pdf or json" in str(out.exception)


def test_bar_labels_match_the_caption() -> None:
    """Interactive bars carry "$total (n)" like the static chart (only "(n)" past 10 bars);
    a group whose incidents all lack an amount says so instead of $0."""
    from chainsleuth.report.incidents_report import _group_chart

    rows = [{"key": "2017", "count": 2, "unvalued": 1, "total_usd": 5_000_000},
            {"key": "2018", "count": 1, "unvalued": 1, "total_usd": 0}]  # fmt: skip
    chart = _group_chart(rows, "By year", keep_order=True)
    assert chart.figure is not None and list(chart.figure.data[0].text) == ["$5M (2)", "no amount (1)"]
    assert chart.svg is not None and "$5M (2)" in chart.svg
    many = [{"key": str(k), "count": k, "unvalued": 0, "total_usd": k * 1000} for k in range(1, 13)]
    fig = _group_chart(many, "By country").figure
    assert fig is not None and list(fig.data[0].text)[:2] == ["(1)", "(2)"]


def test_chain_filter_takes_the_currency_code(registry_db: Path) -> None:
    """22 registry rows name bitcoin among their chains, $1,590,410,000 in all (counted in the CSV);
    ``--chain BTC`` (the seed files' code, and the ledger's usual chain name) selects the same."""
    for chain in ("BTC", "bitcoin", "Bitcoin"):
        out = CliRunner().invoke(app, ["--db", str(registry_db), "report", "incidents", "--chain", chain,
                                       "--format", "json"])  # fmt: skip
        assert out.exit_code == 0, out.output
        doc = json.loads(out.output)
        assert (doc["count"], doc["total_usd"], doc["filter"]["chains"]) == (22, 1_590_410_000, ["bitcoin"]), chain
