"""Shared CLI state: the ledger path and the consoles."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console

from ..config import db_path

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
