"""The progress protocol every long job reports through; the CLI draws it with Rich."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Receives progress from a running job (ingest, clustering)."""

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


def start_counting(progress: Progress, description: str, total: int | None, units: tuple[str, str]) -> None:
    """Start a bar that counts other things than blocks and transactions: ``units`` names
    what ``advance``'s two numbers count (e.g. ``("sources", "tags")``). A sink without a
    ``start_counting`` method gets a plain :meth:`Progress.start`."""
    method = getattr(progress, "start_counting", None)
    if callable(method):
        method(description, total, units)
    else:
        progress.start(description, total)
