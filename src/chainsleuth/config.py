"""Settings read from the environment, in one place."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DB = "chainsleuth.duckdb"


def db_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The ledger file: ``--db``, else ``CHAINSLEUTH_DB``, else ``./chainsleuth.duckdb``."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("CHAINSLEUTH_DB", DEFAULT_DB))


def data_dir() -> Path | None:
    """The real-data folder (``CHAINSLEUTH_DATA``, else ``../shared/data`` beside the checkout).

    Returns None when neither exists; callers that need data must then say so.
    """
    env = os.environ.get("CHAINSLEUTH_DATA")
    if env:
        p = Path(env)
        return p if p.is_dir() else None
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent.parent / "shared" / "data"
        if (parent / "pyproject.toml").exists() and cand.is_dir():
            return cand
    cand = Path.cwd().parent / "shared" / "data"
    return cand if cand.is_dir() else None
