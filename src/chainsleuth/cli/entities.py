"""``chainsleuth cluster`` and ``chainsleuth entity``: address clustering with evidence."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from .common import console, default_chain, state

entity_app = typer.Typer(help="Inspect entities (address clusters).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("cluster")(cluster)
    app.add_typer(entity_app, name="entity")


def cluster(
    ctx: typer.Context,
    chain: Annotated[str | None, typer.Option(help="Chain to cluster (default: the only one).")] = None,
    change: Annotated[str | None, typer.Option(
        help="Change heuristics to add: 'all' or a comma list of address_type, optimal, "
             "power_of_ten, reuse, fresh, peeling (default: none).")] = None,
    min_confidence: Annotated[float, typer.Option(
        help="Least combined confidence for a change link.")] = 0.6,
    supercluster_threshold: Annotated[int, typer.Option(
        help="Report merges of two clusters both at least this large (0: off).")] = 10_000,
    refuse_supercluster: Annotated[bool, typer.Option(
        "--refuse-supercluster", help="Refuse such merges instead of only reporting them.")] = False,
    no_coinjoin_exclusion: Annotated[bool, typer.Option(
        "--no-coinjoin-exclusion", help="Co-spend CoinJoins too (they are still tagged).")] = False,
    full: Annotated[bool, typer.Option("--full", help="Recompute from the first block.")] = False,
) -> None:
    """Cluster addresses into entities; every union is stored with its evidence."""
    from ..entities import cluster_chain
    from ..entities.change import parse_change_list
    from ..store import Ledger
    from .progress import RichIngestProgress

    st = state(ctx)
    names = parse_change_list(change)
    with Ledger(st.db) as ledger, RichIngestProgress(console, quiet=st.quiet) as progress:
        name = default_chain(ledger, chain)
        res = cluster_chain(
            ledger, name, change=names, min_confidence=min_confidence,
            coinjoin_exclusion=not no_coinjoin_exclusion,
            supercluster_threshold=supercluster_threshold,
            refuse_supercluster=refuse_supercluster, full=full, progress=progress)
    if res.mode == "up-to-date":
        console.print(f"{name}: entities are up to date (block {res.last_block})")
        return
    console.print(
        f"{name}: {res.mode} run {res.run_id}, blocks {res.first_block}..{res.last_block}, "
        f"{res.transactions:,} transactions, {res.new_addresses:,} new addresses, "
        f"{res.unions:,} unions -> {res.clusters:,} entities over {res.addresses:,} addresses "
        f"({res.seconds:.1f} s)")
    for tag, n in sorted(res.transaction_tags.items()):
        console.print(f"  {tag}: {n:,} transactions")
    if res.supercluster_merges or res.refused_merges:
        console.print(
            f"  [yellow]super-cluster merges: {res.supercluster_merges:,} made, "
            f"{res.refused_merges:,} refused[/] (see entities.refused_merges)")


@entity_app.command("why")
def why_cmd(
    ctx: typer.Context,
    address_a: Annotated[str, typer.Argument(help="First address.")],
    address_b: Annotated[str, typer.Argument(help="Second address.")],
    chain: Annotated[str | None, typer.Option(help="Chain (default: the only one).")] = None,
) -> None:
    """Print the shortest chain of transactions and heuristics joining two addresses."""
    from ..entities import why
    from ..store import Ledger

    st = state(ctx)
    with Ledger(st.db, read_only=True) as ledger:
        path = why(ledger, default_chain(ledger, chain), address_a, address_b)
    if not path:
        console.print("same address")
        return
    table = Table(title=f"{address_a} ~ {address_b}: {len(path)} step(s)")
    for col in ("step", "from", "to", "transaction", "block", "heuristic", "confidence"):
        table.add_column(col)
    for i, p in enumerate(path, 1):
        table.add_row(str(i), p["from_address"], p["to_address"], str(p["transaction_hash"]),
                      str(p["block_number"]), p["heuristic"], f"{p['confidence']:.2f}")
    console.print(table)


@entity_app.command("show")
def show_cmd(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="Any address of the entity.")],
    chain: Annotated[str | None, typer.Option(help="Chain (default: the only one).")] = None,
    sample: Annotated[int, typer.Option(help="Addresses to list.")] = 10,
) -> None:
    """Print an address's entity: id, size, first/last seen, volume, tags, addresses."""
    from ..entities import entity_of
    from ..errors import StoreError
    from ..store import Ledger

    st = state(ctx)
    if not st.db.exists():
        raise StoreError(f"no ledger at {st.db} (ingest something first, or pass --db)")
    # not read-only: the tag store creates its (empty) tables on first use
    with Ledger(st.db) as ledger:
        name = default_chain(ledger, chain)
        info = entity_of(ledger, name, address, sample=sample)
        tags: list[dict[str, Any]] | None = None
        conflicts: list[dict[str, Any]] = []
        try:  # the tag store is another layer and optional here
            from ..tags import entity_tags, tag_conflicts
        except ImportError:
            entity_tags = None  # type: ignore[assignment]
        if entity_tags is not None:
            tags = list(entity_tags(ledger, name, int(info["cluster_id"])))
            if len(tags) > 1:
                conflicts = tag_conflicts(ledger, name, entity=info["cluster_id"])
    console.print(f"[bold]entity {info['cluster_id']}[/] on {name} (contains {info['address']})")
    for label, key in (("addresses", "size"), ("first seen", "first_seen"),
                       ("last seen", "last_seen"), ("received", "received"), ("sent", "sent"),
                       ("transactions", "transaction_count")):
        value = info.get(key)
        console.print(f"  {label:<13} {value:,}" if isinstance(value, int) else f"  {label:<13} {value}")
    if info["heuristics"]:
        console.print("  links         " + ", ".join(f"{k}: {v:,}" for k, v in info["heuristics"].items()))
    if tags:
        console.print("  tags")
        for t in tags[:20]:
            console.print(f"    {t.get('address')}: {t.get('label')} [{t.get('category')}, "
                          f"{t.get('confidence')}] actor={t.get('actor')} source={t.get('source')}",
                          highlight=False, markup=False)
        if len(tags) > 20:
            console.print(f"    ... {len(tags) - 20:,} more")
    elif tags is not None:
        console.print("  tags          none")
    for c in conflicts:
        console.print(
                    f"  [bold yellow]conflicting tags[/]: categories {c['categories']}, "
                    f"actors {c['actors']} (reported, not resolved)", highlight=False)
    console.print("  sample        " + ", ".join(info["sample_addresses"]))
