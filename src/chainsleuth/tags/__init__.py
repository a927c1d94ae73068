"""Tags: attribution tag store, importers, actors and address normalisation."""

from .importers import KINDS, ImportResult, ensure_builtin_actors, import_tags
from .normalize import canonical, normalize_address
from .query import (
    actor_descendants,
    entity_tags,
    export_tagpack,
    resolve_actor,
    search,
    tag_conflicts,
    tags_for_addresses,
)

__all__ = [
    "KINDS",
    "ImportResult",
    "actor_descendants",
    "canonical",
    "ensure_builtin_actors",
    "entity_tags",
    "export_tagpack",
    "import_tags",
    "normalize_address",
    "resolve_actor",
    "search",
    "tag_conflicts",
    "tags_for_addresses",
]
