"""Incident registry: the real sourced CSV and seeds, filters, bad input, traces attached to incidents."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime
from fractions import Fraction
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chainsleuth.cli.main import app
from chainsleuth.entities.synthetic import Tx, write_utxo_blocks
from chainsleuth.errors import ChainsleuthError, ConfigError, InputFileError
from chainsleuth.incidents import (
    Incident,
    IncidentFilter,
    add_incident,
    get_incident,
    import_incident_seeds,
    import_incidents,
    incident_traces,
    list_incidents,
)
from chainsleuth.incidents.importers import map_seed_incident
from chainsleuth.incidents.registry import incident_actor_links
from chainsleuth.incidents.tracing import trace_incident
from chainsleuth.store import Ledger

STAKE_BTC = "bc1qfesn3jj65fhmf00hh45ueql8je8jae6ep3qk84"  # Stake.com attacker (FBI 2023-09-06), BTC


@pytest.fixture
def registry_csv(shared_data: Path) -> Path:
    return shared_data / "dprk_incidents" / "dprk_incidents.csv"


@pytest.fixture
def seeds_csv(shared_data: Path) -> Path:
    return shared_data / "dprk_hacks" / "dprk_hack_seed_addresses.csv"


@pytest.fixture
def loaded(tmp_path: Path, registry_csv: Path, seeds_csv: Path) -> Path:
    db = tmp_path / "r.duckdb"
    with Ledger(db) as led:
        import_incidents(led, registry_csv)
        import_incident_seeds(led, seeds_csv)
    return db


def test_real_registry_figures(loaded: Path) -> None:
    """The README's own counts and sums of the CSV, recomputed from the stored records."""
    with Ledger(loaded) as led:
        rows = list_incidents(led)
        assert len(rows) == 54
        assert Counter(i.confidence for i in rows) == {"official": 34, "industry": 11, "contested": 9}
        assert Counter(i.victim_type for i in rows) == {"exchange": 33, "bank": 7, "other": 4, "bridge": 4,
                                                        "payment_processor": 2, "defi": 2, "wallet": 1, "gambling": 1}  # fmt: skip
        assert sum(i.amount_usd or 0 for i in rows) == 5_313_662_000  # README: $5,313.7M
        assert sum(i.amount_usd or 0 for i in rows if i.confidence != "contested") == 4_350_362_000  # $4,350.4M
        assert sorted(i.incident_id for i in rows if i.amount_usd is None) == [
            "DPRK-2017-02", "DPRK-2017-04", "DPRK-2017-06", "DPRK-2018-01", "DPRK-2018-07", "DPRK-2019-01"]  # fmt: skip
        bybit = get_incident(led, "DPRK-2025-02")
        assert bybit is not None and bybit.amount_usd == 1_500_000_000 and bybit.actor_ids == ("tradertraitor",)
        assert bybit.date == date(2025, 2, 21) and bybit.date_precision == "day" and bybit.country == "AE"
        bithumb = get_incident(led, "DPRK-2017-02")
        assert bithumb is not None and bithumb.date == date(2017, 6, 1) and bithumb.date_precision == "month"


def test_un_571m_filter_alias_aware(loaded: Path) -> None:
    """Exchanges, 2017-01-01..2018-09-30, actor Lazarus (sub-actors included): hand-summed
    Yapizon 5.3M + Coinis 2.19M + Coincheck 530M + Gate.io 250M + Bithumb 31M + Indodax 24.9M."""
    filt = IncidentFilter(since=date(2017, 1, 1), until=date(2018, 9, 30), actor="Lazarus", victim_types=("exchange",))
    with Ledger(loaded) as led:
        rows = list_incidents(led, filt)
        assert [i.incident_id for i in rows] == ["DPRK-2017-01", "DPRK-2017-02", "DPRK-2017-03", "DPRK-2017-06",
                                                 "DPRK-2018-02", "DPRK-2018-03", "DPRK-2018-06", "DPRK-2018-08"]  # fmt: skip
        assert sum(i.amount_usd or 0 for i in rows) == 843_390_000
        # Coinrail and Zaif say only "DPRK (disputed)": linked to the RGB at state level, not to Lazarus
        by_rgb = {i.incident_id for i in list_incidents(led, IncidentFilter(actor="Reconnaissance General Bureau"))}
        assert {"DPRK-2018-05", "DPRK-2018-09"} <= by_rgb and len(by_rgb) == 54
        assert incident_actor_links(led, "DPRK-2018-05") == [
            {"actor_id": "rgb", "label": "Reconnaissance General Bureau", "matched": "DPRK", "link": "state-level",
             "most_specific": True}]  # fmt: skip
        # any alias works: TraderTraitor's vendor names, APT38's
        jade = [i.incident_id for i in list_incidents(led, IncidentFilter(actor="jade sleet"))]
        assert jade == ["DPRK-2022-02", "DPRK-2023-01", "DPRK-2023-02", "DPRK-2023-03", "DPRK-2024-02", "DPRK-2025-02"]
        apt38 = {i.incident_id for i in list_incidents(led, IncidentFilter(actor="BlueNoroff"))}
        assert "DPRK-2022-01" in apt38 and "DPRK-2025-02" not in apt38
        other = list_incidents(led, IncidentFilter(countries=("kr",), confidences=("contested",), chains=("solana",)))
        assert [i.incident_id for i in other] == ["DPRK-2025-09"]
        with pytest.raises(ConfigError, match="unknown actor"):
            list_incidents(led, IncidentFilter(actor="Fancy Bear"))


def test_seeds_mapped_stored_and_tagged(loaded: Path, seeds_csv: Path) -> None:
    with Ledger(loaded) as led:
        per = Counter(i.incident_id for i in list_incidents(led) for _ in i.seed_addresses)
        assert per == {"DPRK-2025-02": 63, "DPRK-2022-02": 48, "DPRK-2022-01": 41, "DPRK-2023-04": 38, "DPRK-2023-05": 33}
        stake = get_incident(led, "DPRK-2023-04")
        assert stake is not None and ("bitcoin", STAKE_BTC, "attacker (FBI)") in stake.seed_addresses
        tags = led.con.execute(
            "SELECT category, actor, context->>'incident_id' FROM tags.tags WHERE address = ?", [STAKE_BTC]).fetchall()
        assert tags == [("service_hack", "apt38", "DPRK-2023-04")]
        # victims are tagged as victims, without an actor
        victims = led.con.execute(
            "SELECT DISTINCT category, actor FROM tags.tags WHERE context->>'role' LIKE 'victim%'").fetchall()
        assert victims == [("victim", None)]
        # re-import replaces: same counts, no duplicates
        import_incident_seeds(led, seeds_csv)
        assert led.con.execute("SELECT count(*) FROM incidents.incident_seeds").fetchone() == (223,)
        assert led.con.execute("SELECT count(*) FROM tags.tags WHERE context->>'incident_id' IS NOT NULL").fetchone() == (223,)


def test_seed_mapping_by_victim_and_date(loaded: Path) -> None:
    with Ledger(loaded) as led:
        rows = list_incidents(led)
    assert map_seed_incident(rows, "Harmony Horizon Bridge", date(2023, 1, 1)).incident_id == "DPRK-2022-02"  # type: ignore[union-attr]
    assert map_seed_incident(rows, "Ronin Bridge", date(2022, 4, 7)).incident_id == "DPRK-2022-01"  # type: ignore[union-attr]
    assert map_seed_incident(rows, "Bybit", date(2024, 2, 21)) is None  # before the theft
    assert map_seed_incident(rows, "Upbit", date(2019, 11, 27)) is None  # not in the explicit table


BAD_ROWS = [
    ("2025-13-40", "1000", "exchange", "official", "field 'date'"),
    ("2025-01-02", "-5", "exchange", "official", "field 'amount_usd': negative"),
    ("2025-01-02", "12.5", "exchange", "official", "field 'amount_usd': not a whole number"),
    ("2025-01-02", '"1,5"', "exchange", "official", "field 'amount_usd': not a whole number"),  # decimal comma
    ("2025-01-02", "100", "casino", "official", "field 'victim_type': unknown victim type 'casino'"),
    ("2025-01-02", "100", "exchange", "rumour", "field 'attribution_confidence'"),
]


@pytest.mark.parametrize(("day", "amount", "vtype", "conf", "message"), BAD_ROWS)
def test_bad_row_rejected_nothing_written(tmp_path: Path, registry_csv: Path, day: str, amount: str, vtype: str,
                                          conf: str, message: str) -> None:  # fmt: skip
    lines = registry_csv.read_text(encoding="utf-8").splitlines(keepends=True)
    bad = f"DPRK-2099-01,{day},Test Exchange,{vtype},KR,{amount},BTC,bitcoin,x,Lazarus Group,x,{conf},https://example.org,\n"
    f = tmp_path / "bad.csv"
    f.write_text("".join([*lines[:10], bad, *lines[10:]]), encoding="utf-8")
    with Ledger(tmp_path / "x.duckdb") as led:
        import_incidents(led, registry_csv)
        before = led.con.execute("SELECT count(*), max(imported_at) FROM incidents.incidents").fetchone()
        with pytest.raises(InputFileError) as err:
            import_incidents(led, f)
        assert str(err.value).startswith(f"{f}:11: ") and message in str(err.value)
        assert led.con.execute("SELECT count(*), max(imported_at) FROM incidents.incidents").fetchone() == before


def test_add_validated(tmp_path: Path) -> None:
    inc = Incident(incident_id="CASE-1", date=date(2024, 3, 1), date_precision="day", victim="Example DEX",
                   victim_type="defi", country="SG", amount_usd=1_234_567, assets=("ETH",), chains=("ethereum",),
                   attack_vector="key theft", attributed_to="TraderTraitor (per vendor)", attribution_source="vendor",
                   confidence="industry", source_urls=("https://example.org/a",))  # fmt: skip
    with Ledger(tmp_path / "a.duckdb") as led:
        got = add_incident(led, inc)
        assert got.origin == "manual" and got.actor_ids == ("tradertraitor",) and got.amount_usd == 1_234_567
        with pytest.raises(ConfigError, match="already exists"):
            add_incident(led, inc)
        with pytest.raises(ConfigError, match="field 'victim_type'"):
            add_incident(led, Incident(**{**inc.__dict__, "incident_id": "CASE-2", "victim_type": "casino"}))
        assert [i.incident_id for i in list_incidents(led)] == ["CASE-1"]


def _ledger_with_theft(db: Path) -> None:
    """A synthetic UTXO chain on which the real Stake.com attacker address moves coins:
    1000 sat to it, then 600 to an exchange and 390 to a holder (fee 10)."""
    with Ledger(db) as led:
        write_utxo_blocks(led, "btc", [
            [Tx("c0", [], [(STAKE_BTC, 1000)])],
            [Tx("t1", [("c0", 0)], [("ex", 600), ("hold", 390)])],
        ], block_time=1_693_785_600)  # 2023-09-04 00:00 UTC  # fmt: skip


def test_trace_attached_to_incident(loaded: Path) -> None:
    _ledger_with_theft(loaded)
    run_at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    with Ledger(loaded) as led:
        run = trace_incident(led, "DPRK-2023-04", "btc", model="haircut", run_at=run_at)
        assert run.used_seeds == [STAKE_BTC] and len(run.missing_seeds) == 21  # 22 BTC attacker seeds
        [t] = incident_traces(led, "DPRK-2023-04")
    assert (t.trace_id, t.chain, t.model, t.direction, t.run_at) == (run.trace_id, "btc", "haircut", "forward", run_at)
    assert t.seed_value == {"BTC": 1000} and t.accounted == {"BTC": 1000} and t.accounted_share == {"BTC": Fraction(1)}
    assert sorted((e["address"], e["value"]) for e in t.holdings) == [("ex", 600), ("hold", 390)]
    assert t.params["seeds_missing"] == 21 and t.result["fees"] == {"BTC": "10"}


def test_cli_import_list_show_trace(loaded: Path, registry_csv: Path, seeds_csv: Path, tmp_path: Path) -> None:
    run = CliRunner()
    db = tmp_path / "cli.duckdb"
    out = run.invoke(app, ["--db", str(db), "incidents", "import", str(registry_csv), "--seeds", str(seeds_csv)])
    assert out.exit_code == 0, out.output
    assert "imported 54 incidents" in out.output and "imported 223 seed addresses" in out.output
    out = run.invoke(app, ["--db", str(db), "incidents", "list", "--since", "2017-01-01", "--until", "2018-09-30",
                           "--actor", "Lazarus", "--victim-type", "exchange", "--format", "json"])  # fmt: skip
    doc = json.loads(out.output)
    assert doc["count"] == 8 and doc["total_usd"] == 843_390_000
    out = run.invoke(app, ["--db", str(db), "incidents", "list", "--confidence", "contested", "--format", "csv"])
    assert out.output.count("\n") == 10 and "DPRK-2018-09,2018-09-14,Zaif" in out.output
    _ledger_with_theft(db)
    out = run.invoke(app, ["--db", str(db), "trace", "--incident", "DPRK-2023-04", "--chain", "btc", "--format", "json"])
    assert out.exit_code == 0, out.output
    out = run.invoke(app, ["--db", str(db), "incidents", "show", "DPRK-2023-04", "--format", "json"])
    shown = json.loads(out.output)
    assert shown["traces"][0]["seed_value"] == {"BTC": "1000"} and shown["traces"][0]["accounted_share"] == {"BTC": "1"}
    assert len(shown["seed_addresses"]) == 38
    out = run.invoke(app, ["--db", str(db), "incidents", "show", "DPRK-2023-04"])
    assert out.exit_code == 0 and "trace #1 on btc, haircut forward" in out.output and STAKE_BTC in out.output
    for args, message in [
        (["incidents", "show", "DPRK-1900-01"], "no incident"),
        (["incidents", "list", "--victim-type", "casino"], "unknown --victim-type"),
        (["incidents", "list", "--since", "last year"], "not a date"),
        (["trace", "--incident", "DPRK-2016-01", "--chain", "btc"], "no attacker/cash-out seed"),
        (["trace", "--chain", "btc"], "one of the two"),
        (["incidents", "add", "--id", "X-1", "--date", "2024-02-30", "--victim", "v", "--victim-type", "exchange",
          "--attributed-to", "Lazarus", "--attribution-source", "s", "--confidence", "official",
          "--source-url", "https://example.org"], "--date"),
    ]:  # fmt: skip
        out = run.invoke(app, ["--db", str(db), *args])
        assert out.exit_code != 0 and isinstance(out.exception, ChainsleuthError), (args, out.output)
        assert message in str(out.exception), (args, str(out.exception))


def test_seed_import_all_or_nothing(tmp_path: Path, registry_csv: Path, seeds_csv: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    with Ledger(tmp_path / "s.duckdb") as led:
        with pytest.raises(ConfigError, match="registry is empty"):
            import_incident_seeds(led, seeds_csv)
        import_incidents(led, registry_csv)
        bad = tmp_path / "seeds.csv"
        lines = seeds_csv.read_text(encoding="utf-8").splitlines(keepends=True)
        bad.write_text("".join([*lines[:5], "Upbit,2019-11-27,ETH,0xa09871aeadf4994ca12f5c0b6056bbd1d343c029,attacker,x\n",
                                *lines[5:]]), encoding="utf-8")  # fmt: skip
        with pytest.raises(InputFileError, match=r"seeds.csv:6: field 'hack': 'Upbit'"):
            import_incident_seeds(led, bad)
        import_incident_seeds(led, seeds_csv)

        def broken(*_args: object, **_kw: object) -> None:  # the tag store failing after the seeds were written
            raise RuntimeError("disk full")

        monkeypatch.setattr("chainsleuth.tags.store.write_import", broken)
        shorter = tmp_path / "dprk_hack_seed_addresses.csv"
        shorter.write_text("".join(lines[:11]), encoding="utf-8")
        before = led.con.execute("SELECT * FROM incidents.incident_seeds ORDER BY address, incident_id").fetchall()
        with pytest.raises(RuntimeError, match="disk full"):
            import_incident_seeds(led, shorter)
        assert led.con.execute("SELECT * FROM incidents.incident_seeds ORDER BY address, incident_id").fetchall() == before
        assert led.con.execute("SELECT count(*) FROM tags.tags WHERE context->>'incident_id' IS NOT NULL").fetchone() == (223,)


RONIN_EXPLOITER = "0x098b716b8aaf21512996dc57eb0615e2383e2f96"  # Ronin primary exploiter (OFAC SDN, 2022-04-14)


def test_trace_incident_account_chain_with_usd(loaded: Path, shared_data: Path) -> None:
    """An Ethereum-family ledger where the real Ronin exploiter address receives 10 ETH from the
    bridge and sends 5 to an exchange and 4 to a wallet on 2022-03-23 (ETH close_price 2969.78)."""
    from chainsleuth.prices import DEFAULT_FILES, import_prices, with_usd
    from chainsleuth.tags import import_tags

    bridge, ex, wallet, eth = "0x" + "b" * 40, "0x" + "e" * 40, "0x" + "f" * 40, 10**18
    t0 = 1_648_000_000  # 2022-03-23 01:46:40 UTC
    with Ledger(loaded) as led:
        for f in DEFAULT_FILES:
            import_prices(led, shared_data / f)
        led.ensure_chain("eth", "ethereum", network="mainnet")
        txs = [(1, 0, bridge, RONIN_EXPLOITER, 10 * eth), (2, 0, RONIN_EXPLOITER, ex, 5 * eth),
               (2, 1, RONIN_EXPLOITER, wallet, 4 * eth)]  # fmt: skip
        for b in (1, 2):
            rows = [t for t in txs if t[0] == b]
            led.write_batch("eth", {
                "blocks": {"number": [b], "hash": [f"b{b}"], "timestamp": [t0 + 100 * b]},
                "transactions": {"hash": [f"t{b}{r[1]}" for r in rows], "block_number": [b] * len(rows),
                                 "block_hash": [f"b{b}"] * len(rows), "transaction_index": [r[1] for r in rows],
                                 "from_address": [r[2] for r in rows], "to_address": [r[3] for r in rows],
                                 "value": [r[4] for r in rows], "block_timestamp": [t0 + 100 * b] * len(rows)},
            }, (b, b))  # fmt: skip
        tags = loaded.parent / "ex.csv"
        tags.write_text(f"address,currency,label,category,confidence\n{ex},ETH,Ex,exchange,service_data\n")
        import_tags(led, "csv", tags)
        run = trace_incident(led, "DPRK-2022-01", "eth")
        doc = with_usd(led, run.result)
        [t] = incident_traces(led, "DPRK-2022-01")
    assert run.used_seeds == [RONIN_EXPLOITER] and len(run.missing_seeds) == 25  # 26 ETH attacker/cash-out seeds
    assert t.seed_value == {"ETH": 10 * eth} and [(e["address"], e["value"]) for e in t.endpoints] == [(ex, 5 * eth)]
    assert sorted((h["address"], h["value"]) for h in t.holdings) == [(RONIN_EXPLOITER, eth), (wallet, 4 * eth)]
    [end] = doc["endpoints"]
    assert (end["usd"]["usd_at_time"], end["usd"]["price_day_at_time"]) == ("14848.9", "2022-03-23")
    assert (end["usd"]["usd_latest"], end["usd"]["price_day_latest"]) == ("15695.28521", "2026-01-05")
    held = {h["address"]: h["usd"] for h in doc["holdings"]}
    assert held[wallet]["usd_at_time"] == "11879.12"
    # the seed's own remainder has no traced edge into it: no time, so no value at the time (never 0)
    assert held[RONIN_EXPLOITER]["usd_at_time"] is None and held[RONIN_EXPLOITER]["flag"] == "no_time"
    assert held[RONIN_EXPLOITER]["usd_latest"] == "3139.057042"


def test_cli_import_validates_seeds_before_writing_the_registry(tmp_path: Path, registry_csv: Path,
                                                                  seeds_csv: Path) -> None:  # fmt: skip
    """A missing or bad seed file leaves the ledger without the registry rows too."""
    run = CliRunner()
    db = tmp_path / "half.duckdb"
    bad = tmp_path / "seeds.csv"
    lines = seeds_csv.read_text(encoding="utf-8").splitlines(keepends=True)
    bad.write_text("".join([*lines[:3], "Bybit,2025-02-21,ZZZ,0xabc,attacker,x\n", *lines[3:]]), encoding="utf-8")
    for seeds, message in [(tmp_path / "missing.csv", "no such file"), (bad, "seeds.csv:4: field 'chain'")]:
        out = run.invoke(app, ["--db", str(db), "incidents", "import", str(registry_csv), "--seeds", str(seeds)])
        assert out.exit_code != 0 and isinstance(out.exception, ChainsleuthError), out.output
        assert message in str(out.exception)
        with Ledger(db) as led:
            assert list_incidents(led) == []
    # the same seeds map against the registry rows of this import (nothing stored before)
    out = run.invoke(app, ["--db", str(db), "incidents", "import", str(registry_csv), "--seeds", str(seeds_csv)])
    assert out.exit_code == 0, out.output
    with Ledger(db) as led:
        assert len(list_incidents(led)) == 54
        assert led.con.execute("SELECT count(*) FROM incidents.incident_seeds").fetchone() == (223,)
