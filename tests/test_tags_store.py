"""Tag store on the real public sources: importers, aliases, normalisation, export, bad input."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from chainsleuth.errors import InputFileError
from chainsleuth.store import Ledger
from chainsleuth.tags import (
    entity_tags,
    export_tagpack,
    import_tags,
    normalize_address,
    search,
    tag_conflicts,
    tags_for_addresses,
)
from chainsleuth.tags.normalize import b58decode_check, eip55

LAZARUS_ETH = "0x098B716B8Aaf21512996dC57EB0615e2383E2f96"  # OFAC SDN LAZARUS GROUP (Ronin)


@pytest.fixture(scope="module")
def tag_ledger(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    with Ledger(tmp_path_factory.mktemp("tags") / "t.duckdb") as led:
        for kind, rel in [
            ("ofac-sdn", "ofac_sdn_csv"),
            ("ofac-lists", "ofac_0xb10c"),
            ("ofac-ultrasound", "ofac_eth_ultrasound"),
            ("forta", "forta_labelled_datasets"),
            ("dprk-seeds", "dprk_hacks"),
            ("tagpack", "graphsense_tagpacks/packs/lazarus2.yaml"),
            ("actorpack", "graphsense_tagpacks/actors"),
        ]:
            import_tags(led, kind, shared_data / rel)
        yield led


def _count(led: Ledger, where: str = "1=1") -> int:
    row = led.con.execute(f"SELECT count(*) FROM tags.tags WHERE {where}").fetchone()
    assert row is not None
    return int(row[0])


def test_import_counts(tag_ledger: Ledger) -> None:
    assert _count(tag_ledger, "source LIKE 'OFAC SDN list%'") == 288  # 295 in Remarks, 7 cut off
    assert _count(tag_ledger, "source LIKE '%0xB10C%'") == 654
    assert _count(tag_ledger, "source LIKE '%ultrasound%'") == 98
    assert _count(tag_ledger, "source LIKE 'DPRK hack seeds%'") == 223
    assert _count(tag_ledger, "source LIKE 'Forta%'") == 16014
    assert _count(tag_ledger, "source LIKE 'graphsense:FBI Identifies%'") == 6  # lazarus2.yaml
    row = tag_ledger.con.execute("SELECT count(*) FROM tags.actors WHERE import_id IN "
                                 "(SELECT import_id FROM tags.imports WHERE kind = 'actorpack')").fetchone()  # fmt: skip
    assert row == (3813,)


def test_sdn_currencies_and_truncation(tag_ledger: Ledger) -> None:
    rows = tag_ledger.con.execute(
        "SELECT currency, count(*) FROM tags.tags WHERE source LIKE 'OFAC SDN list%' GROUP BY 1"
    ).fetchall()
    by = dict(rows)
    assert by["BTC"] == 197 and by["ETH"] == 49 and by["USDT"] == 17 and by["TRX"] == 4
    warnings = tag_ledger.con.execute(
        "SELECT warnings FROM tags.imports WHERE kind = 'ofac-sdn'"
    ).fetchone()
    assert warnings is not None
    assert any("'1Gq'" in w and "SECONDEYE SOLUTION" in w for w in json.loads(warnings[0]))


def test_dprk_seed_roles(tag_ledger: Ledger) -> None:
    (row,) = tags_for_addresses(tag_ledger, "ETH", ["0x0fa09c3a328792253f8dee7116848723b72a6d2e"])
    assert row["label"] == "Bybit: attacker: exploiter EOA"
    assert (row["category"], row["actor"], row["valid_from"]) == (
        "service_hack", "tradertraitor", dt.date(2025, 2, 21))  # fmt: skip
    assert row["source_url"].endswith("hacks-and-thefts/bybit.md")
    victim = tags_for_addresses(tag_ledger, "ETH", ["0x1db92e2eebc8e0c075a02bea49a2935bcd2dfcf4"])
    assert [(v["category"], v["actor"], v["is_abuse"]) for v in victim] == [("victim", None, False)]


def test_sdn_lazarus_party_and_listing_date(tag_ledger: Ledger) -> None:
    rows = tags_for_addresses(tag_ledger, "ETH", [LAZARUS_ETH])
    sdn = [r for r in rows if r["source"].startswith("OFAC SDN list")]
    assert len(sdn) == 1
    assert sdn[0]["label"] == "LAZARUS GROUP" and sdn[0]["actor"] == "lazarusgroup"
    ctx = json.loads(sdn[0]["context"])
    assert ctx["program"] == "DPRK3" and ctx["sdn_entity_number"] == "27307"
    assert sdn[0]["confidence_level"] == 60 and sdn[0]["category"] == "sanction"
    dated = [r for r in rows if "ultrasound" in r["source"]]
    assert dated[0]["label"] == "LAZARUS GROUP"
    assert dated[0]["valid_from"] == dt.date(2022, 4, 14)  # Ronin designation


@pytest.mark.parametrize(
    ("alias", "hack"),
    [
        ("APT38", "Ronin Bridge"),
        ("BlueNoroff", "Harmony Horizon Bridge"),
        ("TraderTraitor", "Bybit"),
    ],
)
def test_alias_search_finds_sub_actor_addresses(tag_ledger: Ledger, alias: str, hack: str) -> None:
    rows = [r for r in search(tag_ledger, alias, limit=100000) if r["match"] == "actor"]
    hacks = {json.loads(r["context"]).get("hack") for r in rows}
    assert hack in hacks
    assert "Bybit" not in hacks or alias == "TraderTraitor"


def test_umbrella_alias_includes_descendants(tag_ledger: Ledger) -> None:
    rows = [r for r in search(tag_ledger, "hidden cobra", limit=100000) if r["match"] == "actor"]
    actors = {r["actor"] for r in rows}
    assert {"lazarusgroup", "apt38", "tradertraitor"} <= actors
    victims = [r for r in rows if r["category"] == "victim"]
    assert victims == []  # victims never carry the attacker's actor


def _variants(addr: str) -> list[str]:
    out = [addr, f"  {addr}\t", f"\u200b{addr} "]
    if addr.lower().startswith("0x") and len(addr) == 42:
        body = addr[2:]
        out += [
            addr.lower(),
            "0x" + body.upper(),
            "0X" + body.upper(),
            eip55(body),
            body.lower(),
            body.upper(),
        ]
        out.append("0x" + "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(body)))
    elif addr.lower().startswith(("bc1", "ltc1")):
        out += [addr.lower(), addr.upper()]
    return out


def test_every_sdn_and_ultrasound_address_in_every_variant(tag_ledger: Ledger) -> None:
    rows = tag_ledger.con.execute(
        "SELECT DISTINCT currency, address, json_extract_string(context, '$.ofac_asset') FROM tags.tags "
        "WHERE source LIKE 'OFAC SDN%'"
    ).fetchall()
    assert len(rows) > 300
    for _currency, addr, _asset in rows:
        for v in _variants(addr if not addr.startswith("0x") else eip55(addr[2:])):
            assert any(h["address"] == addr for h in search(tag_ledger, v, limit=50)), v


def test_every_ofac_address_in_every_variant(tag_ledger: Ledger, shared_data: Path) -> None:
    files = sorted((shared_data / "ofac_0xb10c").glob("sanctioned_addresses_*.txt"))
    checked = 0
    for f in files:
        asset = f.stem.split("_")[-1]
        for addr in filter(None, (ln.strip() for ln in f.read_text().splitlines())):
            canonical = normalize_address(addr, "BTC" if asset == "XBT" else asset).address
            for v in _variants(addr):
                hits = search(tag_ledger, v, limit=50)
                assert any(h["address"] == canonical and "0xB10C" in h["source"] for h in hits), (
                    asset,
                    v,
                )
                checked += 1
    assert checked > 2000


def test_tron_forms_map_to_one_address() -> None:
    t = "TBHTJqAy4DhHhmT3dNceJYNRz4SdLofLre"  # OFAC TRX list
    payload = b58decode_check(t)
    assert payload is not None and payload[:1] == b"\x41"
    hex_form = payload.hex()
    for v in (t, hex_form, hex_form.upper(), "0x" + hex_form, f" {t} "):
        assert normalize_address(v, "TRX").address == t
        assert normalize_address(v).address == t


def test_bad_eip55_is_a_warning_not_a_miss() -> None:
    bad = "0x098b716B8Aaf21512996dC57EB0615e2383E2f96"
    n = normalize_address(bad)
    assert n.address == LAZARUS_ETH.lower() and n.warnings


def test_tagpack_round_trip(tag_ledger: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "export.yaml"
    n = export_tagpack(tag_ledger, out, actor="Lazarus")
    assert n > 100
    with Ledger(tmp_path / "r.duckdb") as fresh:
        import_tags(fresh, "tagpack", out)
        cols = "currency, address, label, category, confidence, confidence_level, actor, source, source_url, valid_from, is_abuse, abuse, concepts, is_cluster_definer, lastmod, context::VARCHAR"
        q = f"SELECT {cols} FROM tags.tags WHERE actor IN ('lazarusgroup','apt38','tradertraitor','applejeus','andariel','rgb') ORDER BY ALL"
        assert fresh.con.execute(q).fetchall() == tag_ledger.con.execute(q).fetchall()


def test_reimport_is_idempotent(tag_ledger: Ledger, shared_data: Path) -> None:
    before = _count(tag_ledger)
    import_tags(tag_ledger, "ofac-lists", shared_data / "ofac_0xb10c")
    assert _count(tag_ledger) == before


def test_conflicts_reported_per_address(tag_ledger: Ledger) -> None:
    tag_ledger.ensure_chain("ethereum", "ethereum")
    conflicts = tag_conflicts(tag_ledger, "ethereum")
    # the ultrasound list names several parties; a Lazarus address also tagged by another
    # actor would be reported; every report names its conflicting pair
    for c in conflicts:
        assert c["category_conflicts"] or c["actor_conflicts"]


def test_bad_tagpack_names_file_line_field_and_imports_nothing(tmp_path: Path) -> None:
    pack = tmp_path / "bad.yaml"
    pack.write_text(
        "title: t\ncreator: c\nconfidence: forensic\nsource: https://x\ncurrency: BTC\nlabel: x\n"
        "tags:\n- address: 1BoatSLRHtKNngkdXEeobR76b53LETtpyT\n- address: 1Q2TWHE3GMdB6BZKafqwxXtWAWgFt5Jvm3\n  category: mixer_thing\n"
    )
    with Ledger(tmp_path / "b.duckdb") as led:
        with pytest.raises(InputFileError) as err:
            import_tags(led, "tagpack", pack)
        msg = str(err.value)
        assert "bad.yaml:9" in msg and "'category'" in msg and "mixing_service" in msg
        assert _count(led) == 0


def test_bad_csv_confidence_lists_allowed(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("address,currency,label,category,confidence\n"
                 "1BoatSLRHtKNngkdXEeobR76b53LETtpyT,BTC,a,exchange,forensic\n"
                 "1Q2TWHE3GMdB6BZKafqwxXtWAWgFt5Jvm3,BTC,b,exchange,very_sure\n")  # fmt: skip
    with Ledger(tmp_path / "c.duckdb") as led:
        with pytest.raises(InputFileError, match=r"t\.csv:3: field 'confidence'.*authority_data"):
            import_tags(led, "csv", f)
        assert _count(led) == 0


def test_fast_tagpack_reader_equals_yaml_loader(shared_data: Path) -> None:
    import yaml

    from chainsleuth.tags.tagpack import read_tagpack

    packs = shared_data / "graphsense_tagpacks" / "packs"
    # a leading double space in a label, quoted 0x addresses, concepts lists, header-only packs
    for name in ["defi-fraud-masterthesis.yaml", "lazarus2.yaml", "ofac.yaml", "usdt_blacklist.yaml",
                 "tornado_cash.yaml", "exchange-wallets-binance.yaml", "etherscamdb_tagpack.yaml"]:  # fmt: skip
        header, tags = read_tagpack(packs / name)
        doc = yaml.load((packs / name).read_text(), Loader=yaml.CSafeLoader)
        expected_tags = doc.pop("tags")
        assert header == doc and [t for _, t in tags] == expected_tags, name


def test_entity_propagation_and_conflict(shared_data: Path, tmp_path: Path) -> None:
    binance14 = "0x28c6c06298d514db089934071355e5743bf21d60"
    tornado100 = "0xa160cdab225685da1d56aa342ad8841c3b53f291"
    with Ledger(tmp_path / "e.duckdb") as led:
        led.ensure_chain("ethereum", "ethereum")
        import_tags(led, "etherscan", shared_data / "etherscan_labels_brianleect")
        import_tags(led, "ofac-ultrasound", shared_data / "ofac_eth_ultrasound")
        # without clustering every address is its own entity: no cross-address conflict
        assert [
            c for c in tag_conflicts(led, "ethereum") if c["entity"] in (binance14, tornado100)
        ] == []
        led.con.execute("CREATE SCHEMA entities")
        led.con.execute(
            "CREATE TABLE entities.address_clusters (chain VARCHAR, address VARCHAR, cluster_id BIGINT)"
        )
        led.con.execute(
            "INSERT INTO entities.address_clusters VALUES ('ethereum', ?, 7), ('ethereum', ?, 7), "
            "('ethereum', ?, 8)", [binance14, tornado100, LAZARUS_ETH.lower()],
        )  # fmt: skip
        tags7 = entity_tags(led, "ethereum", 7)
        assert {(t["address"], t["label"]) for t in tags7} == {
            (binance14, "Binance 14"), (tornado100, "Tornado.Cash: 100 ETH")}  # fmt: skip
        assert {t["label"] for t in entity_tags(led, "ethereum", LAZARUS_ETH)} == {
            "LAZARUS GROUP", "Ronin Bridge Exploiter"}  # fmt: skip
        conflicts = {c["entity"]: c for c in tag_conflicts(led, "ethereum")}
        assert conflicts["7"]["category_conflicts"] == [("exchange", "mixing_service")]
        assert "8" not in conflicts  # one party, one category


def test_cli_import_search_export(shared_data: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from chainsleuth.cli.main import app

    db = str(tmp_path / "cli.duckdb")
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["--db", db, "tags", "import", "ofac-ultrasound", str(shared_data / "ofac_eth_ultrasound")],
    )
    assert res.exit_code == 0, res.output
    assert "imported 98 tags" in res.output
    res = runner.invoke(
        app,
        ["--db", db, "tags", "search", LAZARUS_ETH.upper().replace("0X", "0x"), "--format", "json"],
    )
    assert res.exit_code == 0 and "LAZARUS GROUP" in res.output and "2022-04-14" in res.output
    out = tmp_path / "x.yaml"
    res = runner.invoke(app, ["--db", db, "tags", "export", str(out), "--actor", "Hidden Cobra"])
    assert res.exit_code == 0 and "wrote 8 tags" in res.output, res.output
