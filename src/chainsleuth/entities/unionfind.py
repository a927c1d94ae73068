"""Union-find (disjoint sets) over dense int64 address ids, compiled with Numba.

Linking by index: the root of every set is its smallest id (the union of two
sets hangs the younger root under the older one), with path halving (Tarjan &
van Leeuwen 1984: O(m log_(1+m/n) n) for m operations; near-linear in
practice). Because ids are assigned in first-seen order, a set's root is its
earliest address, which is exactly the stable cluster id a merge must keep,
and ``parent[x] <= x`` always holds, so every element's cluster id comes out of
one sequential pass. Set sizes are kept only when the super-cluster guard
needs them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

I64 = npt.NDArray[np.int64]

# union_pairs status codes per pair
NOOP = 0  # already in one set (no evidence: the forest already joins them)
APPLIED = 1
REFUSED = 2  # would join two super-clusters and refusal is on
APPLIED_SUPER = 3  # joined two super-clusters (reported, not refused)


@njit(cache=True, nogil=True)
def _find(parent: I64, x: np.int64) -> np.int64:
    while parent[x] != x:
        parent[x] = parent[parent[x]]  # path halving
        x = parent[x]
    return x


@njit(cache=True, nogil=True)
def union_pairs(
    parent: I64,
    size: I64,
    a: I64,
    b: I64,
    super_threshold: int,
    refuse: bool,
    out_size_a: I64,
    out_size_b: I64,
) -> npt.NDArray[np.int8]:
    """Union ``a[i]`` with ``b[i]`` in order; returns a status per pair.

    A non-empty ``size`` (every root's set size) is kept up to date; with
    ``super_threshold`` > 0 the guard reads it and ``out_size_a``/``out_size_b``
    receive the two sizes just before each union (for the super-cluster
    report). Without sizes the guard cannot run (the caller checks).
    """
    n = a.shape[0]
    status = np.zeros(n, np.int8)
    track = size.shape[0] > 0
    guard = super_threshold > 0 and track
    for i in range(n):
        ra = _find(parent, a[i])
        rb = _find(parent, b[i])
        if ra == rb:
            continue
        if rb < ra:
            ra, rb = rb, ra
        status[i] = APPLIED
        if track:
            sa = size[ra]
            sb = size[rb]
            if guard:
                out_size_a[i] = sa
                out_size_b[i] = sb
                if sa >= super_threshold and sb >= super_threshold:
                    if refuse:
                        status[i] = REFUSED
                        continue
                    status[i] = APPLIED_SUPER
            size[ra] = sa + sb
        parent[rb] = ra  # the older id stays the root
    return status


@njit(cache=True, nogil=True)
def cluster_labels(parent: I64) -> I64:
    """The cluster id (smallest member id) of every element, in one pass."""
    n = parent.shape[0]
    out = np.empty(n, np.int64)
    for i in range(n):
        p = parent[i]
        out[i] = i if p == i else out[p]  # p < i: already labelled
    return out


class UnionFind:
    """Disjoint sets over ids ``0..n-1`` that can grow as new addresses appear.

    ``track_sizes`` keeps set sizes for the super-cluster guard; a union with
    a threshold needs it.
    """

    def __init__(self, n: int = 0, track_sizes: bool = True) -> None:
        self.parent: I64 = np.arange(n, dtype=np.int64)
        self.track_sizes = track_sizes
        self.size: I64 = np.ones(n if track_sizes else 0, dtype=np.int64)

    @classmethod
    def from_labels(cls, labels: I64, track_sizes: bool = True) -> UnionFind:
        """Rebuild from stored cluster ids (``labels[i]`` = smallest id of
        ``i``'s set, so ``labels[i] <= i`` and the result is a valid forest)."""
        uf = cls(0, track_sizes)
        uf.parent = labels.astype(np.int64, copy=True)
        if track_sizes:
            uf.size = np.bincount(labels, minlength=labels.shape[0]).astype(np.int64)
        return uf

    def __len__(self) -> int:
        return int(self.parent.shape[0])

    def grow(self, n: int) -> None:
        old = len(self)
        if n <= old:
            return
        self.parent = np.concatenate([self.parent, np.arange(old, n, dtype=np.int64)])
        if self.track_sizes:
            self.size = np.concatenate([self.size, np.ones(n - old, np.int64)])

    def union(
        self, a: I64, b: I64, super_threshold: int = 0, refuse: bool = False
    ) -> tuple[npt.NDArray[np.int8], I64, I64]:
        """Union pairs in order; returns (status, size_a, size_b) per pair (the
        sizes are empty arrays when the super-cluster guard is off)."""
        if super_threshold > 0 and not self.track_sizes:
            raise ValueError("this UnionFind does not track sizes; the guard needs them")
        a = np.ascontiguousarray(a, dtype=np.int64)
        b = np.ascontiguousarray(b, dtype=np.int64)
        m = a.shape[0] if super_threshold > 0 else 0
        sa = np.zeros(m, np.int64)
        sb = np.zeros(m, np.int64)
        status = union_pairs(self.parent, self.size, a, b, int(super_threshold), bool(refuse), sa, sb)
        return status, sa, sb

    def labels(self) -> I64:
        result: I64 = cluster_labels(self.parent)
        return result
