"""``chainsleuth cluster`` and ``chainsleuth entity``: address clustering with evidence."""

from __future__ import annotations

import typer

entity_app = typer.Typer(help="Inspect entities (address clusters).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(entity_app, name="entity")
