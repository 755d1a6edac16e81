"""Live progress of a run: a rich panel on a terminal, a plain line now and then otherwise."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.live import Live
from rich.table import Table

from chimera.engine.runner import RunMonitor

PLAIN_EVERY_S = 10.0


def in_flight(endpoints: list[tuple[str, int, int]]) -> str:
    """"12/32" for one endpoint; "host:port 12/32, host 0/8" for several, each against its own budget."""
    if len(endpoints) == 1:
        return f"{endpoints[0][1]}/{endpoints[0][2]}"
    return ", ".join(f"{urlsplit(url).netloc or url} {busy}/{limit}" for url, busy, limit in endpoints) or "0/0"


def slot_progress(done: int, total: int, since: tuple[float, int] | None, now: float) -> str:
    """"120/400 problem slots (30%), about 5m left": slots that ended (accepted, rejected, failed or waiting
    for review) of all, and the time left at the pace since `since` (time, slots done then), once there is
    one. Topics finish together by design, so slots are what shows the run moving."""
    if not total:
        return "0/0"
    text = f"{done}/{total} ({done / total:.0%})"
    if since is None or done >= total:
        return text
    seconds, done_then = now - since[0], since[1]
    if done <= done_then or seconds <= 0:
        return text
    left = (total - done) * seconds / (done - done_then)
    return text + f", about {_duration(left)} left"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


class ProgressDisplay:
    def __init__(self, console: Console, *, quiet: bool = False):
        self.console = console
        self.quiet = quiet
        self.live: Live | None = None
        self._last_plain = 0.0
        self._slots_since: tuple[float, int] | None = None  # the first count seen in stages 2-3, for the pace

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
        now = time.monotonic()
        elapsed = now - monitor.started
        slots_done = by.get("accepted", 0) + by.get("rejected", 0) + by.get("failed", 0) \
            + counts["reviews"]["pending"]
        if monitor.slots_total and self._slots_since is None:
            self._slots_since = (now, slots_done)
        fields = {
            "stage": monitor.stage,
            "topics": f"{monitor.topics_finished}/{monitor.topics_total}",
            "problem slots": slot_progress(min(slots_done, monitor.slots_total), monitor.slots_total,
                                           self._slots_since, now),
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
