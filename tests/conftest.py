"""Shared fixtures: the real-data folder, a fresh ledger, and the real test nodes.

Node fixtures live in ``nodes_bitcoin.py`` (Bitcoin Knots regtest) and
``nodes_ethereum.py`` (anvil); both install their node on first use.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chainsleuth.config import data_dir
from chainsleuth.store import Ledger

pytest_plugins = ["nodes_bitcoin", "nodes_ethereum"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder; tests that need it skip with the reason when it is absent."""
    d = data_dir()
    if d is None:
        pytest.skip("real data not found: set CHAINSLEUTH_DATA to the shared/data folder")
    return d


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / "ledger.duckdb") as led:
        yield led
