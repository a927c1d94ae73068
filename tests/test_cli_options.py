"""The option parsers shared by `incidents list|export` and `report incidents` (cli/common.py)."""

from __future__ import annotations

from datetime import date

import pytest

from chainsleuth.cli.common import date_option, incident_filter, list_option
from chainsleuth.errors import ConfigError


def test_list_and_date_options() -> None:
    assert list_option(["exchange, bridge", "wallet", " ,"]) == ("exchange", "bridge", "wallet")
    assert list_option(None) == ()
    assert date_option("2018-09-30", "--until") == date(2018, 9, 30) and date_option(None, "--since") is None
    with pytest.raises(ConfigError, match=r"--since: not a date \(YYYY-MM-DD\): 'last year'"):
        date_option("last year", "--since")


def test_incident_filter_checks_and_normalises() -> None:
    f = incident_filter(since="2017-01-01", until="2018-09-30", actor="Lazarus", victim_type=["exchange,bridge"],
                        country=["kr", "JP"], chain=["Ethereum"], confidence=["official", "industry"])  # fmt: skip
    assert (f.since, f.until, f.actor) == (date(2017, 1, 1), date(2018, 9, 30), "Lazarus")
    assert (f.victim_types, f.countries, f.chains, f.confidences) == (
        ("exchange", "bridge"), ("KR", "JP"), ("ethereum",), ("official", "industry"))  # fmt: skip
    with pytest.raises(ConfigError, match="unknown --victim-type 'casino'"):
        incident_filter(victim_type=["casino"])
    with pytest.raises(ConfigError, match="unknown --confidence 'rumour'"):
        incident_filter(confidence=["rumour"])
    with pytest.raises(ConfigError, match="--since 2019-01-01 is after --until 2018-01-01"):
        incident_filter(since="2019-01-01", until="2018-01-01")
