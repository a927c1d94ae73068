"""What every ingest source shares: progress reporting, the run summary, fork search."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..progress import NullProgress, Progress

__all__ = ["IngestResult", "NullProgress", "Progress", "fork_point"]


@dataclass
class IngestResult:
    """What one ingest run did."""

    chain: str
    blocks: int = 0
    transactions: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    skipped_blocks: int = 0
    reorgs: list[tuple[int, int]] = field(default_factory=list)  # (fork height, blocks removed)
    first_block: int | None = None
    last_block: int | None = None
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0

    def add_rows(self, written: dict[str, int]) -> None:
        for table, n in written.items():
            self.rows[table] = self.rows.get(table, 0) + n

    def finish(self) -> IngestResult:
        self.seconds = time.monotonic() - self.started
        return self


def fork_point(
    stored_hashes: Callable[[int, int], dict[int, str]],
    node_hashes: Callable[[int, int], list[str | None]],
    below: int,
) -> int:
    """Highest height <= ``below`` where the ledger and the node hold the same block; -1: none.

    Walks down in windows that double in size (16, 32, ...), so a shallow reorg
    costs one batched call and a deep one a logarithmic number of them.
    ``stored_hashes(lo, hi)`` and ``node_hashes(lo, hi)`` give the hashes of
    heights ``lo..hi`` (the node's as a list in height order, None if absent).
    """
    height, step = below, 16
    while height >= 0:
        lo = max(0, height - step + 1)
        stored = stored_hashes(lo, height)
        node = node_hashes(lo, height)
        for n in range(height, lo - 1, -1):
            if stored.get(n) is not None and stored[n] == node[n - lo]:
                return n
        height = lo - 1
        step *= 2
    return -1
