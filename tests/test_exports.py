"""STIX 2.1 and FollowTheMoney exports of the real registry, validated by their own libraries."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import stix2
from followthemoney import model
from stix2patterns.validator import run_validator
from typer.testing import CliRunner

from chainsleuth.cli.main import app
from chainsleuth.errors import ChainsleuthError
from chainsleuth.incidents import (
    IncidentFilter,
    import_incident_seeds,
    import_incidents,
    list_incidents,
)
from chainsleuth.incidents.exports import actors_for, export_ftm, export_stix, sanctioned_addresses
from chainsleuth.store import Ledger
from chainsleuth.tags import import_tags

RONIN_EXPLOITER = "0x098b716b8aaf21512996dc57eb0615e2383e2f96"  # OFAC SDN (Lazarus Group, 2022-04-14)


@pytest.fixture
def db(tmp_path: Path, shared_data: Path) -> Path:
    path = tmp_path / "e.duckdb"
    with Ledger(path) as led:
        import_incidents(led, shared_data / "dprk_incidents" / "dprk_incidents.csv")
        import_incident_seeds(led, shared_data / "dprk_hacks" / "dprk_hack_seed_addresses.csv")
        import_tags(led, "ofac-ultrasound", shared_data / "ofac_eth_ultrasound")
    return path


def test_stix_bundle_validates(db: Path) -> None:
    with Ledger(db) as led:
        incidents = list_incidents(led)
        bundle = export_stix(incidents, actors_for(led, incidents))
    parsed = stix2.parse(bundle.serialize(), allow_custom=False)  # raises on any invalid object
    kinds = Counter(o.type for o in parsed.objects)
    # 223 seeds - 15 victim addresses = 208 indicators; 6 actors; 5 intrusion sets (all but the RGB)
    assert kinds["indicator"] == 208 and kinds["report"] == 54 and kinds["threat-actor"] == 6
    assert kinds["intrusion-set"] == 5 and kinds["identity"] == 54
    for o in parsed.objects:
        if o.type == "indicator":
            assert run_validator(o.pattern) == [], o.pattern
    by_id = {o.id: o for o in parsed.objects}
    bybit = next(o for o in parsed.objects if o.type == "report" and o.name.startswith("DPRK-2025-02"))
    assert str(bybit.published).startswith("2025-02-21") and "1,500,000,000" in bybit.description
    assert all(ref in by_id for ref in bybit.object_refs)
    # Bybit: 63 seed addresses, 4 of them the victim's (cold wallet, Safe signers)
    indicates = [by_id[r] for r in bybit.object_refs
                 if r.startswith("relationship") and by_id[r].relationship_type == "indicates"]
    assert len(indicates) == 63 - 4 and {by_id[r.target_ref].name for r in indicates} == {"TraderTraitor"}
    apt38 = next(o for o in parsed.objects if o.type == "intrusion-set" and o.name == "APT38 / BlueNoroff")
    parents = {by_id[o.target_ref].name for o in parsed.objects
               if o.type == "relationship" and o.source_ref == apt38.id and o.relationship_type == "attributed-to"}
    assert parents == {"APT38 / BlueNoroff", "Lazarus Group"}
    # reproducible: the same export twice is the same text
    with Ledger(db) as led:
        assert export_stix(incidents, actors_for(led, incidents)).serialize() == bundle.serialize()


def test_ftm_entities_validate(db: Path) -> None:
    with Ledger(db) as led:
        incidents = list_incidents(led, IncidentFilter(ids=("DPRK-2022-01",)))
        actors = actors_for(led, incidents)
        entities = export_ftm(incidents, actors, sanctioned=sanctioned_addresses(led))
    assert sorted(actors) == ["apt38", "lazarusgroup", "rgb"]
    kinds = Counter(e.schema.name for e in entities)
    assert kinds["CryptoWallet"] == 41 and kinds["Organization"] == 3 and kinds["Membership"] == 2
    for e in entities:
        data = e.to_dict()
        assert e.schema.validate(data) is None  # raises InvalidData on a bad value
        again = model.get_proxy(json.loads(json.dumps(data)), cleaned=False)
        assert again.to_dict() == data  # FtM's own cleaning changed nothing
    by_id = {e.id: e for e in entities}
    wallet = next(e for e in entities if e.schema.name == "CryptoWallet" and e.first("publicKey") == RONIN_EXPLOITER)
    assert by_id[wallet.first("holder")].first("name") == "APT38 / BlueNoroff"
    sanctions = [e for e in entities if e.schema.name == "Sanction" and e.first("entity") == wallet.id]
    assert len(sanctions) == 1 and sanctions[0].first("authority") == "US Treasury OFAC"


def test_cli_export(db: Path, tmp_path: Path) -> None:
    run = CliRunner()
    out_file = tmp_path / "b.json"
    out = run.invoke(app, ["--db", str(db), "incidents", "export", "--format", "stix", "--actor", "TraderTraitor",
                           str(out_file)])  # fmt: skip
    assert out.exit_code == 0, out.output
    bundle = stix2.parse(out_file.read_text(), allow_custom=False)
    assert sum(1 for o in bundle.objects if o.type == "report") == 6
    ftm_file = tmp_path / "e.ftm.json"
    out = run.invoke(app, ["--db", str(db), "incidents", "export", "--format", "ftm", str(ftm_file)])
    lines = [json.loads(x) for x in ftm_file.read_text().splitlines()]
    assert out.exit_code == 0 and len(lines) > 200 and all(model.get_proxy(x).schema.name for x in lines)
    out = run.invoke(app, ["--db", str(db), "incidents", "export", "--format", "misp", str(ftm_file)])
    assert out.exit_code != 0 and "unknown --format" in str(out.exception)


def test_cli_export_unwritable_output(db: Path, tmp_path: Path) -> None:
    out = CliRunner().invoke(app, ["--db", str(db), "incidents", "export", str(tmp_path / "no" / "dir" / "b.json")])
    assert out.exit_code != 0 and isinstance(out.exception, ChainsleuthError), out.output
    assert "cannot write" in str(out.exception)
