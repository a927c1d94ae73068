"""Shared CLI state: the ledger path and the consoles."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console

from ..config import db_path

console = Console()
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
