"""Ingest a ground-truth scenario, cluster it with each heuristic set, score it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from chainsleuth.entities.change import CHANGE_HEURISTICS
from chainsleuth.entities.cluster import cluster_chain, cluster_members
from chainsleuth.store import Ledger

from .groundtruth import Scenario
from .metrics import Scores, score


@dataclass(frozen=True)
class HeuristicSet:
    name: str
    change: tuple[str, ...] = ()
    coinjoin_exclusion: bool = True
    min_confidence: float = 0.6


def heuristic_sets() -> list[HeuristicSet]:
    """The table's rows. A change heuristic alone is measured with
    ``min_confidence=0`` (otherwise those with a prior below the default 0.6 would
    never decide); the combined set is measured at 0 and at the default 0.6."""
    rows = [HeuristicSet("multi-input, no CoinJoin exclusion", coinjoin_exclusion=False),
            HeuristicSet("multi-input + CoinJoin exclusion")]
    rows += [HeuristicSet(f"+ change: {name}", (name,), min_confidence=0.0)
             for name in CHANGE_HEURISTICS]
    every = tuple(CHANGE_HEURISTICS)
    rows.append(HeuristicSet("+ all change (min confidence 0.6)", every))
    rows.append(HeuristicSet("+ all change (min confidence 0)", every, min_confidence=0.0))
    rows.append(HeuristicSet("all change, no CoinJoin exclusion (min confidence 0)", every,
                             coinjoin_exclusion=False, min_confidence=0.0))
    return rows


def truth_labels(members: dict[str, int], scenario: Scenario) -> tuple[list[str], int]:
    """Addresses of the ledger that a scenario wallet owns (sorted), and how many
    ledger addresses no wallet owns (expected 1: the genesis block's coinbase)."""
    owned = sorted(a for a in members if a in scenario.owner_of)
    return owned, len(members) - len(owned)


def evaluate(ledger: Ledger, chain: str, scenario: Scenario,
             sets: list[HeuristicSet] | None = None) -> list[dict[str, Any]]:
    """One row per heuristic set: settings, scores, unions and CoinJoin tags."""
    owners = sorted(set(scenario.owner_of.values()))
    owner_id = {o: i for i, o in enumerate(owners)}
    rows: list[dict[str, Any]] = []
    for hs in sets or heuristic_sets():
        t0 = time.monotonic()
        res = cluster_chain(ledger, chain, change=list(hs.change),
                            coinjoin_exclusion=hs.coinjoin_exclusion,
                            min_confidence=hs.min_confidence)
        members = cluster_members(ledger, chain)
        owned, unowned = truth_labels(members, scenario)
        pred = np.fromiter((members[a] for a in owned), np.int64, len(owned))
        true = np.fromiter((owner_id[scenario.owner_of[a]] for a in owned), np.int64, len(owned))
        s: Scores = score(pred, true)
        rows.append({
            "set": hs.name, "change": list(hs.change), "coinjoin_exclusion": hs.coinjoin_exclusion,
            "min_confidence": hs.min_confidence, "unions": res.unions,
            "transaction_tags": dict(res.transaction_tags), "unowned_addresses": unowned,
            "seconds": round(time.monotonic() - t0, 3), **s.as_dict(),
        })
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = ("| heuristic set | pair P | pair R | pair F1 | purity | coverage | cluster F1 "
            "| clusters | mixed | unions |\n|---|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r['set']} | {r['pair_precision']:.4f} | {r['pair_recall']:.4f} | {r['pair_f1']:.4f} "
        f"| {r['cluster_purity']:.4f} | {r['cluster_coverage']:.4f} | {r['cluster_f1']:.4f} "
        f"| {r['clusters']} | {r['mixed_clusters']} | {r['unions']} |\n"
        for r in rows)
    return head + body
