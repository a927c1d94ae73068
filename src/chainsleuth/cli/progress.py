"""Rich progress for long jobs: blocks/s and tx/s."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _RateColumn(ProgressColumn):
    """blocks/s from the task's speed and tx/s from its ``transactions`` field (or the
    task's ``units`` in their place)."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        unit, sub_unit = task.fields.get("units", ("blocks", "tx"))
        if elapsed <= 0:
            return Text(f"- {unit}/s  - {sub_unit}/s", style="progress.data.speed")
        bps = task.completed / elapsed
        tps = float(task.fields.get("transactions", 0)) / elapsed
        return Text(f"{bps:,.1f} {unit}/s  {tps:,.0f} {sub_unit}/s", style="progress.data.speed")


class RichIngestProgress:
    """Implements :class:`chainsleuth.ingest.base.Progress` on a Rich progress bar."""

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._tx = 0
        self._t0 = time.monotonic()

    def __enter__(self) -> RichIngestProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def start(self, description: str, total_blocks: int | None) -> None:
        self.start_counting(description, total_blocks, ("blocks", "tx"))

    def start_counting(self, description: str, total: int | None, units: tuple[str, str]) -> None:
        """A bar whose two counts are ``units`` (see :func:`chainsleuth.progress.start_counting`)."""
        if self.quiet:
            return
        if self._progress is None:
            self._progress = Progress(
                TextColumn("[bold blue]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                _RateColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.start()
        self._tx = 0
        self._task = self._progress.add_task(description, total=total, transactions=0, units=units)

    def advance(self, blocks: int, transactions: int) -> None:
        if self._progress is None or self._task is None:
            return
        self._tx += transactions
        self._progress.update(self._task, advance=blocks, transactions=self._tx)

    def message(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text)
        elif not self.quiet:
            self.console.print(text)
