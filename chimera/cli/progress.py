"""Live progress of a run: a rich panel on a terminal, a plain line now and then otherwise."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.live import Live
from rich.table import Table

from chimera.runner import RunMonitor

PLAIN_EVERY_S = 10.0


def in_flight(endpoints: list[tuple[str, int, int]]) -> str:
    """"12/32" for one endpoint; "host:port 12/32, host 0/8" for several, each against its own budget."""
    if len(endpoints) == 1:
        return f"{endpoints[0][1]}/{endpoints[0][2]}"
    return ", ".join(f"{urlsplit(url).netloc or url} {busy}/{limit}" for url, busy, limit in endpoints) or "0/0"


class ProgressDisplay:
    def __init__(self, console: Console, *, quiet: bool = False):
        self.console = console
        self.quiet = quiet
        self.live: Live | None = None
        self._last_plain = 0.0

    def __enter__(self) -> ProgressDisplay:
        if not self.quiet and self.console.is_terminal:
            self.live = Live(console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def update(self, monitor: RunMonitor) -> None:
        if self.quiet or not monitor.counts:
            return
        counts = monitor.counts
        by = counts["by_status"]
        elapsed = time.monotonic() - monitor.started
        fields = {
            "stage": monitor.stage,
            "topics": f"{monitor.topics_finished}/{monitor.topics_total}",
            "problems": f"{by.get('accepted', 0)} accepted, {by.get('rejected', 0)} rejected, "
                        f"{by.get('failed', 0)} failed, {by.get('pending', 0)} in progress",
            "samples": f"{counts['samples']} ({counts['correct']} correct)",
            "model calls": f"{counts['calls']} ({in_flight(monitor.endpoints.by_endpoint())} in flight)",
            "tokens": f"{counts['tokens_in'] + counts['tokens_out']:,}",
            "elapsed": f"{elapsed:.0f}s",
        }
        if self.live is not None:
            table = Table(show_header=False, box=None, title=f"chimera run {monitor.run}")
            for key, value in fields.items():
                table.add_row(key, value)
            self.live.update(table)
        elif time.monotonic() - self._last_plain >= PLAIN_EVERY_S or monitor.stage == "done":
            self._last_plain = time.monotonic()
            self.console.print(" | ".join(f"{k}: {v}" for k, v in fields.items()), markup=False)
