"""``chainsleuth tags``: import, search and export attribution tags."""

from __future__ import annotations

import typer

tags_app = typer.Typer(help="Attribution tags and actors.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(tags_app, name="tags")
