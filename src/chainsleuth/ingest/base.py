"""What every ingest source shares: progress reporting and the run summary."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol


class Progress(Protocol):
    """Receives progress from a running ingest. The CLI draws it with Rich."""

    def start(self, description: str, total_blocks: int | None) -> None: ...

    def advance(self, blocks: int, transactions: int) -> None: ...

    def message(self, text: str) -> None: ...


class NullProgress:
    """Progress sink for library use: records notices, draws nothing."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def start(self, description: str, total_blocks: int | None) -> None:
        pass

    def advance(self, blocks: int, transactions: int) -> None:
        pass

    def message(self, text: str) -> None:
        self.messages.append(text)


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
