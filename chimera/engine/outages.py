"""Riding out a PostgreSQL outage: a restart, a failover, a dropped connection, or the server ending the
sessions of a process that stalled past its lease all look alike from a process, and all pass."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from chimera.store.postgres import DatabaseUnreachable, connection_lost, first_line, is_fenced

log = logging.getLogger("chimera.run")
T = TypeVar("T")
FIRST_WAIT_S, LONGEST_WAIT_S = 0.2, 5.0
PROGRESS_S = 5.0  # an attempt that ran this long got somewhere: a loss after it starts a new outage


async def through_outage(call: Callable[[], Awaitable[T]], *, outage_s: float, what: str = "") -> T:
    """`call()`, made again while it fails on a lost database connection (the store and the checkpointer
    open new ones on their next call), until the database has been away for `outage_s`; then its error.
    `call` may be one statement or a whole resumable phase (`what` names it in the log)."""
    loop = asyncio.get_running_loop()
    since: float | None = None
    wait_s = FIRST_WAIT_S
    while True:
        began = loop.time()
        try:
            return await call()
        except Exception as error:
            if is_fenced(error) or not connection_lost(error):
                raise
            now = loop.time()
            if since is None or now - began > PROGRESS_S:
                since, wait_s = now, FIRST_WAIT_S
                log.warning("the connection to the run's database was lost%s (%s); opening a new one",
                            f" during {what}" if what else "", first_line(error))
            elif now - since > outage_s:
                raise gave_up(now - since, outage_s, error) from error
        await asyncio.sleep(wait_s)
        wait_s = min(LONGEST_WAIT_S, wait_s * 2)


def gave_up(away_s: float, outage_s: float, error: BaseException) -> DatabaseUnreachable:
    return DatabaseUnreachable(f"the run's database stayed unreachable for {away_s:.0f}s, past run.db_outage_s "
                               f"({outage_s:g}s): {first_line(error)}; run the same command again to resume once it "
                               "is back")
