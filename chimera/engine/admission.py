"""When a single-process run starts its next topic graph: while a place is free and the budget has room.

A topic graph in flight holds its state and, once it solves, a queue of calls waiting for a place in the
budget. Started only up to a fixed count, the graphs of a run past its drafting phase keep thousands of calls
queued that the budget cannot take for seconds, and the process holds their memory. Started only while
fewer calls wait than the budget holds (the rule the PostgreSQL workers claim topics by), there is always
enough queued to keep the budget full and little more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar, cast

T = TypeVar("T")

ADMIT_EVERY_S = 0.02  # how often a run with topics left looks again for room
ADMIT_BATCH = 8  # topics started at one look: their first calls show in the queue before the next
_ALL_STARTED = object()


async def run_while_room(items: Iterable[T], run_one: Callable[[T], Coroutine[Any, Any, Any]], *, capacity: int,
                         has_room: Callable[[], bool], stopping: asyncio.Event | None = None) -> None:
    """Run `run_one` on every item, at most `capacity` at once, starting more only while `has_room()` (or when
    none runs) and, once `stopping` is set, none at all. The first error stops the rest, which resume on the
    next run."""
    left = iter(items)
    running: set[asyncio.Task[Any]] = set()
    exhausted = False
    try:
        while True:
            if stopping is not None and stopping.is_set():
                exhausted = True
            if not exhausted and len(running) < capacity and (has_room() or not running):
                for _ in range(min(ADMIT_BATCH, capacity - len(running))):
                    item = next(left, _ALL_STARTED)
                    if item is _ALL_STARTED:
                        exhausted = True
                        break
                    running.add(asyncio.create_task(run_one(cast(T, item))))
            if not running:
                return
            # asyncio.wait (unlike wait_for on 3.11) never swallows a cancellation that lands as it returns
            done, _ = await asyncio.wait(running, timeout=None if exhausted else ADMIT_EVERY_S,
                                         return_when=asyncio.FIRST_COMPLETED)
            running -= done
            # every finished task's error is read (asyncio would log the others as never retrieved); the first raised
            failed = [task for task in done if not task.cancelled() and task.exception() is not None]
            if failed:
                failed[0].result()
            for task in done:
                task.result()  # a child cancelled from outside cancels the run
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
