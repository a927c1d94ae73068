"""``chainsleuth tags``: import, search and export attribution tags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..store import Ledger
from .common import console, err_console, state

tags_app = typer.Typer(help="Attribution tags and actors.", no_args_is_help=True)


@tags_app.command("import")
def import_cmd(
    ctx: typer.Context,
    kind: Annotated[
        str,
        typer.Argument(
            help="tagpack, actorpack, ofac-sdn, ofac-lists, ofac-ultrasound, etherscan, forta, dprk-seeds, csv"
        ),
    ],
    path: Annotated[Path, typer.Argument(help="File or folder of the source.")],
) -> None:
    """Import a tag source; re-importing the same source replaces its previous rows."""
    from ..tags import import_tags

    st = state(ctx)
    with Ledger(st.db) as ledger, err_console.status(f"importing {kind} from {path}") as status:
        result = import_tags(ledger, kind, path, progress=lambda m: status.update(m))
    for w in result.warnings:
        err_console.print(f"[yellow]warning:[/] {w}", highlight=False)
    console.print(
        f"imported {result.tags:,} tags and {result.actors:,} actors from {result.files} file(s)"
    )


@tags_app.command("search")
def search_cmd(
    ctx: typer.Context,
    query: Annotated[
        str, typer.Argument(help="Address (any spelling), actor alias or label text.")
    ],
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    limit: Annotated[int, typer.Option(help="Most rows shown.")] = 200,
) -> None:
    """Find tags by address, actor alias (incl. sub-actors) or label."""
    from ..tags import search

    with Ledger(state(ctx).db) as ledger:
        rows = search(ledger, query, limit=limit)
    if fmt == "json":
        console.print_json(json.dumps(rows, default=str))
        return
    table = Table(
        "match",
        "currency",
        "address",
        "label",
        "category",
        "actor",
        "confidence",
        "valid_from",
        "source",
    )
    for r in rows:
        table.add_row(r["match"], r["currency"], r["address"], r["label"], r["category"] or "",
                      r["actor"] or "", r["confidence"], str(r["valid_from"] or ""), r["source"] or "")  # fmt: skip
    console.print(table)
    console.print(f"{len(rows)} tag(s)")


@tags_app.command("export")
def export_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="TagPack YAML file to write.")],
    source: Annotated[
        str | None, typer.Option(help="Only tags whose source contains this.")
    ] = None,
    category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
    actor: Annotated[
        str | None, typer.Option(help="Only this actor (any alias) and its sub-actors.")
    ] = None,
) -> None:
    """Write tags as a GraphSense TagPack."""
    from ..tags import export_tagpack

    with Ledger(state(ctx).db) as ledger:
        n = export_tagpack(ledger, path, source=source, category=category, actor=actor)
    console.print(f"wrote {n:,} tags to {path}")


@tags_app.command("conflicts")
def conflicts_cmd(
    ctx: typer.Context,
    chain: Annotated[str, typer.Option(help="Chain whose entities to check.")],
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """List entities whose tags disagree (e.g. exchange + mixer, two unrelated actors).

    Conflicts are reported for a human to judge; nothing is resolved or dropped.
    """
    from ..tags import tag_conflicts

    with Ledger(state(ctx).db) as ledger:
        rows = tag_conflicts(ledger, chain)
    if fmt == "json":
        console.print_json(json.dumps(rows, default=str))
        return
    table = Table("entity", "addresses", "tags", "categories", "actors", "why")
    for r in rows:
        why = "; ".join(
            [f"{a} vs {b}" for a, b in r["category_conflicts"]]
            + [f"actor {a} vs {b}" for a, b in r["actor_conflicts"]]
        )
        table.add_row(str(r["entity"]), f"{r['addresses']:,}", f"{r['tags']:,}",
                      ", ".join(r["categories"]), ", ".join(r["actors"]), why)
    console.print(table)
    console.print(f"{len(rows)} entit{'y' if len(rows) == 1 else 'ies'} with conflicting tags")


def register(app: typer.Typer) -> None:
    app.add_typer(tags_app, name="tags")
