"""One process's share of a run on PostgreSQL: claim topics under leases, keep the leases alive, run each topic,
and stop when no topic is left that anyone could still need to run.

A lease runs out `lease_s` after its last renewal, by the database's clock; this process renews its leases every
third of that. When a renewal shows a topic is no longer held (this process stalled past its lease and another
took the topic over), the topic's task is cancelled. A write that still races out is refused by the database's
lease check, and the topic is dropped here the same way; the worker that holds it now goes on from its last
checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any, TypeVar

from chimera.store.nonblocking import AsyncStore
from chimera.store.postgres import connection_lost, first_line, is_fenced
from chimera.store.rows import TopicRow

log = logging.getLogger("chimera.worker")
T = TypeVar("T")


def new_worker_id() -> str:
    """Unique across machines and restarts: host, pid and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


CLAIM_BATCH = 8  # topics taken in one claim: a worker takes more only while its budget has room


async def work_topics(store: AsyncStore, run_topic: Callable[[TopicRow], Coroutine[Any, Any, bool]], *, run: str,
                      worker: str, lease_s: float, capacity: int, has_room: Callable[[], bool] = lambda: True,
                      on_workers: Callable[[int], None] = lambda _: None) -> int:
    """Run topics of `run` as `worker`, up to `capacity` at once, until none is left unfinished and unleased and
    no other worker holds one (it might die, and its topics would come back). `run_topic` returns whether the
    topic's thread ended waiting for a review. Topics are claimed a few at a time, and only while `has_room()`
    (fewer requests wait for a place than the budget holds: enough work queued to keep it full), so that
    workers which start together share the topics instead of the first taking them all. `on_workers` hears
    how many workers are alive, at the start and at each heartbeat (for budgets shared by the whole run).
    Returns how many topics this worker finished."""
    await store.register_worker(worker, run, host=socket.gethostname(), pid=os.getpid())
    on_workers(await store.live_workers(run, lease_s=lease_s))
    running: dict[asyncio.Task[bool], str] = {}
    lost: set[str] = set()
    finished = 0
    heartbeat = asyncio.create_task(_keep_leases(store, run, worker, lease_s, running, lost, on_workers))
    poll_s = min(1.0, lease_s / 3)
    try:
        while True:
            if heartbeat.done():
                heartbeat.result()  # the database went away for longer than a lease: stop (resumable)
            # A topic another worker left unfinished (it died, or stopped) is taken at once, past this worker's
            # capacity and with a full budget: it was under way. New topics only while there is room. First, the
            # sessions of a worker stalled past its lease are ended: their row locks would hold the claims back.
            await _once_more(partial(store.end_stalled_sessions, run, lease_s, caller=worker))
            mine = set(running.values())
            claimed = await _once_more(partial(store.claim_topics, run, worker, lease_s=lease_s, limit=CLAIM_BATCH,
                                               orphans_only=True, running=mine)) if running else []
            room = min(capacity - len(running) - len(claimed), CLAIM_BATCH)
            wants_more = room > 0 and (has_room() or not running)
            if wants_more:
                claimed += await _once_more(partial(store.claim_topics, run, worker, lease_s=lease_s, limit=room,
                                                    running=mine))
            for topic in claimed:
                log.info("worker %s took topic %s (%s)", worker, topic["id"], topic["name"])
                running[asyncio.create_task(run_topic(topic))] = topic["id"]
            if not running:
                if claimed:
                    continue
                if await _once_more(partial(store.live_leases, run)) == 0:
                    return finished
                await asyncio.sleep(poll_s)  # others hold the rest; wait in case one of them dies
                continue
            # Soon again while the last claim filled up and there is room; else when a topic ends, or at the poll.
            wait_s = 0.05 if wants_more and len(claimed) >= room else min(poll_s, 0.25)
            done, _ = await asyncio.wait(running, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                topic_id = running.pop(task)
                if task.cancelled() or topic_id in lost:
                    lost.discard(topic_id)
                    continue
                error = task.exception()
                if error is not None:
                    if is_fenced(error):
                        # Refused while its lease had run out: the thread goes on from its last checkpoint, here
                        # or in another worker, once the topic is claimed again (a release frees it at once where
                        # the lease is still this worker's; it changes nothing where another has taken it).
                        log.warning("worker %s: a write for topic %s was refused (%s); dropping the topic",
                                    worker, topic_id, first_line(error))
                        await _once_more(partial(store.release_topic, topic_id, worker))
                        continue
                    still_held = topic_id in await _once_more(partial(store.renew_leases, worker, lease_s=lease_s))
                    if not still_held:
                        # e.g. the server ended this worker's session after it stalled mid-transaction
                        log.warning("worker %s lost the lease of topic %s while it failed (%s); dropping the topic",
                                    worker, topic_id, first_line(error))
                        continue
                    await store.release_topic(topic_id, worker)  # another worker may try it at once
                    raise error
                await _once_more(partial(store.release_topic, topic_id, worker, waiting=task.result()))
                finished += 1
    finally:
        heartbeat.cancel()
        for task in running:
            task.cancel()
        await asyncio.gather(heartbeat, *running, return_exceptions=True)
        with contextlib.suppress(Exception):  # the database may be what failed; the leases then run out alone
            for topic_id in running.values():
                await store.release_topic(topic_id, worker)  # unfinished: another worker may take it at once
            await store.worker_stopped(worker)


async def _once_more(call: Callable[[], Awaitable[T]]) -> T:
    """`call()`, and once more if the database connection turned out to be lost: the server ends the sessions
    of a worker that stopped past its lease, and the store opens a new one on the next call."""
    try:
        return await call()
    except Exception as error:
        if not connection_lost(error):
            raise
        log.warning("the connection to the run's database was lost (%s); opening a new one", first_line(error))
        return await call()


async def _keep_leases(store: AsyncStore, run: str, worker: str, lease_s: float,
                       running: dict[asyncio.Task[bool], str], lost: set[str], on_workers: Callable[[int], None]) -> None:
    failures_since = None
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(lease_s / 3)
        asked_for = dict(running)  # a topic claimed while the renewal is on its way is not in its answer
        try:
            held = await store.renew_leases(worker, lease_s=lease_s)
            on_workers(await store.live_workers(run, lease_s=lease_s))
            failures_since = None
        except Exception as error:
            failures_since = failures_since or loop.time()
            log.warning("worker %s: could not renew its leases (%s)", worker, first_line(error))
            if loop.time() - failures_since > lease_s:
                raise
            continue
        for task, topic_id in asked_for.items():
            if topic_id not in held and not task.done():
                log.warning("worker %s no longer holds the lease of topic %s (it stalled past its lease); "
                            "dropping the topic", worker, topic_id)
                lost.add(topic_id)
                task.cancel()
