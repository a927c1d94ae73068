"""Clustering accuracy against true ownership, vectorised over a contingency table.

With ``n_ij`` = addresses in predicted cluster i owned by owner j, ``a_i`` the
cluster sizes and ``b_j`` the owners' address counts (N addresses in all):

Pair level (every unordered pair of addresses is one decision "same entity?"):
  correct pairs  TP = sum_ij C(n_ij, 2)
  predicted      P  = sum_i  C(a_i, 2)
  true           T  = sum_j  C(b_j, 2)
  precision = TP / P (1 when P = 0), recall = TP / T, F1 = harmonic mean.

Cluster level:
  purity   = sum_i max_j n_ij / N  (each cluster counted for its majority owner;
             the share of addresses sitting in a cluster with their majority owner)
  coverage = sum_j max_i n_ij / N  (each owner's best cluster: the share of
             addresses that are in their owner's largest fragment)
  F1 = harmonic mean of purity and coverage;
  mixed_clusters = clusters holding addresses of more than one owner;
  owner_coverage_mean = unweighted mean over owners of max_i n_ij / b_j.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


def _pairs(counts: npt.NDArray[np.int64]) -> int:
    c = counts.astype(np.int64)
    return int((c * (c - 1) // 2).sum())


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


@dataclass(frozen=True)
class Scores:
    addresses: int
    owners: int
    clusters: int
    mixed_clusters: int
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    pair_precision: float
    pair_recall: float
    pair_f1: float
    cluster_purity: float
    cluster_coverage: float
    cluster_f1: float
    owner_coverage_mean: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def score(predicted: npt.ArrayLike, truth: npt.ArrayLike) -> Scores:
    """Scores of a predicted partition against the true one (labels of any ints)."""
    pred = np.unique(np.asarray(predicted), return_inverse=True)[1].astype(np.int64).ravel()
    true = np.unique(np.asarray(truth), return_inverse=True)[1].astype(np.int64).ravel()
    if pred.shape != true.shape:
        raise ValueError("predicted and true labels differ in length")
    n = int(pred.shape[0])
    n_pred = int(pred.max()) + 1 if n else 0
    n_true = int(true.max()) + 1 if n else 0
    # sparse contingency table: one cell per (cluster, owner) that occurs
    cell, n_ij = np.unique(pred * max(n_true, 1) + true, return_counts=True)
    cell_pred = cell // max(n_true, 1)
    cell_true = cell % max(n_true, 1)
    a = np.bincount(pred, minlength=n_pred)
    b = np.bincount(true, minlength=n_true)
    tp, p_pairs, t_pairs = _pairs(n_ij), _pairs(a), _pairs(b)
    precision = tp / p_pairs if p_pairs else 1.0
    recall = tp / t_pairs if t_pairs else 1.0
    best_in_cluster = np.zeros(n_pred, np.int64)
    np.maximum.at(best_in_cluster, cell_pred, n_ij)
    best_for_owner = np.zeros(n_true, np.int64)
    np.maximum.at(best_for_owner, cell_true, n_ij)
    owners_per_cluster = np.bincount(cell_pred, minlength=n_pred)
    purity = float(best_in_cluster.sum() / n) if n else 1.0
    coverage = float(best_for_owner.sum() / n) if n else 1.0
    return Scores(
        addresses=n, owners=n_true, clusters=n_pred,
        mixed_clusters=int((owners_per_cluster > 1).sum()),
        true_pairs=t_pairs, predicted_pairs=p_pairs, correct_pairs=tp,
        pair_precision=precision, pair_recall=recall, pair_f1=_f1(precision, recall),
        cluster_purity=purity, cluster_coverage=coverage, cluster_f1=_f1(purity, coverage),
        owner_coverage_mean=float((best_for_owner / np.maximum(b, 1)).mean()) if n else 1.0,
    )
