"""Entities: address clustering with the evidence for every merge.

Python API: :func:`cluster_chain`, :func:`entity_of`, :func:`why`. Heuristics are
plain functions over columnar batches returning evidence rows; see
:mod:`.multi_input`, :mod:`.coinjoin`, :mod:`.change` and :mod:`.deposit`.
"""

from .cluster import (
    ClusterRunResult,
    EntityError,
    cluster_chain,
    cluster_members,
    entity_of,
    load_utxo_batch,
    register_addresses,
    why,
)

__all__ = [
    "ClusterRunResult",
    "EntityError",
    "cluster_chain",
    "cluster_members",
    "entity_of",
    "load_utxo_batch",
    "register_addresses",
    "why",
]
