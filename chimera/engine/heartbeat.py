"""A worker's lease renewals on a thread and a connection of their own, so that nothing the process does
(bulk store calls on the store's thread, a busy event loop) can queue them past the lease.

Every third of a lease the thread renews every live lease of the worker and reports, on the event loop, which
topics it still holds as of when the renewal was asked. A renewal that comes over half a lease after the last
one is logged with how late it was: the machine was too busy for this process (a lease shorter than the
stalls it sees loses topics to other workers). While the database cannot be reached the thread keeps trying,
and `outage_s()` says for how long; the worker decides when that is too long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from chimera.store import Store
from chimera.store.postgres import connection_lost, first_line

log = logging.getLogger("chimera.worker")
RETRY_S = 1.0  # between renewals while the database is away


@dataclass(frozen=True)
class Renewal:
    held: set[str]  # topics still held by the worker
    asked_at: float  # time.monotonic() when the renewal was sent: topics claimed later are not in `held`
    live_workers: int


class Heartbeat:
    def __init__(self, url: str, *, run: str, worker: str, lease_s: float,
                 on_renewal: Callable[[Renewal], None]):
        self.url, self.run, self.worker, self.lease_s = url, run, worker, lease_s
        self._on_renewal = on_renewal
        self._loop = asyncio.get_running_loop()
        self._stop = threading.Event()
        self._failing_since: float | None = None
        self._last_renewal = time.monotonic()
        self._thread = threading.Thread(target=self._serve, name=f"chimera-heartbeat {worker}", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def outage_s(self) -> float:
        """How long renewals have failed because the database was away (0 while they succeed)."""
        since = self._failing_since
        return 0.0 if since is None else time.monotonic() - since

    async def stop(self) -> None:
        self._stop.set()
        # not for long: a renewal stuck on a dead connection ends with the process (the thread is a daemon)
        await asyncio.to_thread(self._thread.join, 2.0)

    def _serve(self) -> None:
        store: Store | None = None
        try:
            while not self._stop.wait(self.lease_s / 3 if self._failing_since is None else RETRY_S):
                try:
                    store = store or self._open()
                    self._renew(store)
                except Exception as error:  # noqa: BLE001 - the worker reads the outage and decides
                    if not connection_lost(error):
                        log.exception("worker %s: its heartbeat failed", self.worker)
                    elif self._failing_since is None:
                        log.warning("worker %s: could not renew its leases (%s); trying again every %.0fs",
                                    self.worker, first_line(error), RETRY_S)
                    self._failing_since = self._failing_since or time.monotonic()
        finally:
            if store is not None:
                with contextlib.suppress(Exception):
                    store.close()

    def _open(self) -> Store:
        store = Store(self.url)
        # Named as the worker's, so that another worker ends this session too if this process stalls.
        store.act_as(self.worker, lease_s=self.lease_s)
        return store

    def _renew(self, store: Store) -> None:
        asked_at = time.monotonic()
        held = store.renew_leases(self.worker, lease_s=self.lease_s)
        workers = store.live_workers(self.run, lease_s=self.lease_s)
        gap = asked_at - self._last_renewal
        if gap > self.lease_s / 2 and self._failing_since is None:
            log.warning("worker %s renewed its leases %.1fs late (every %.1fs expected, the lease is %gs): the "
                        "machine is too busy for this process", self.worker, gap - self.lease_s / 3,
                        self.lease_s / 3, self.lease_s)
        if self._failing_since is not None:
            log.warning("worker %s: the database is back after %.1fs", self.worker,
                        time.monotonic() - self._failing_since)
        self._failing_since = None
        self._last_renewal = asked_at
        renewal = Renewal(held=held, asked_at=asked_at, live_workers=workers)
        with contextlib.suppress(RuntimeError):  # the loop closed while this renewal was on its way
            self._loop.call_soon_threadsafe(self._on_renewal, renewal)

