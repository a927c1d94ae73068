"""Shared CLI state: the ledger path and the consoles."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from ..config import db_path
from ..errors import ConfigError

# Piped output (CI logs, files) gets a readable width instead of Rich's 80 columns.
_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 140
console = Console(width=_WIDTH)
err_console = Console(stderr=True)


@dataclass
class State:
    db: Path
    quiet: bool = False


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if isinstance(obj, State):
        return obj
    return State(db=db_path(None))


def default_chain(ledger: Any, chain: str | None) -> str:
    """``--chain`` if given, else the ledger's only chain; a clear error otherwise."""
    if chain:
        return chain
    names = [c["name"] for c in ledger.chains()]
    if len(names) == 1:
        return str(names[0])
    if not names:
        raise ConfigError("the ledger holds no chains yet: ingest something first")
    raise ConfigError(f"several chains in the ledger ({', '.join(names)}): pass --chain")
