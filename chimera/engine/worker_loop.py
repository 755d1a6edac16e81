"""One process's share of a run on PostgreSQL: claim topics under leases, keep the leases alive, run each topic,
and stop when no topic is left that anyone could still need to run.

A lease runs out `lease_s` after its last renewal, by the database's clock; this process renews its leases every
third of that, on a thread and a connection of their own (chimera.engine.heartbeat). When a renewal shows a topic is no
longer held (this process stalled past its lease and another took the topic over), the topic's task is
cancelled. A write that still races out is refused by the database's lease check, and the topic is dropped here
the same way; the worker that holds it now goes on from its last checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from chimera.engine.heartbeat import Heartbeat, Renewal
from chimera.engine.outages import gave_up, through_outage
from chimera.store import Store
from chimera.store.nonblocking import AsyncStore
from chimera.store.postgres import DatabaseUnreachable, connection_lost, first_line, is_fenced
from chimera.store.rows import TopicRow

log = logging.getLogger("chimera.worker")


def new_worker_id() -> str:
    """Unique across machines and restarts: host, pid and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


CLAIM_BATCH = 8  # topics taken in one claim: a worker takes more only while its budget has room


async def work_topics(store: AsyncStore, run_topic: Callable[[TopicRow], Coroutine[Any, Any, bool]], *, run: str,
                      worker: str, lease_s: float, capacity: int, db_outage_s: float,
                      has_room: Callable[[], bool] = lambda: True, on_workers: Callable[[int], None] = lambda _: None,
                      stopping: asyncio.Event | None = None) -> int:
    """Run topics of `run` as `worker`, up to `capacity` at once, until none is left unfinished and unleased and
    no other worker holds one (it might die, and its topics would come back). `run_topic` returns whether the
    topic's thread ended waiting for a review. Topics are claimed a few at a time, and only while `has_room()`
    (fewer requests wait for a place than the budget holds: enough work queued to keep it full), so that
    workers which start together share the topics instead of the first taking them all. `on_workers` hears
    how many workers are alive, at the start and at each heartbeat (for budgets shared by the whole run).
    Once `stopping` is set, no topic is claimed any more.

    The database may go away (a restart, a failover, this process's sessions ended after it stalled): every
    call here waits for it up to `db_outage_s`, a topic stopped by the loss is dropped and claimed again, and
    only an outage longer than that stops the worker. Returns how many topics this worker finished."""
    patient = partial(through_outage, outage_s=db_outage_s)
    await patient(partial(store.run, Store.register_worker, worker, run, host=socket.gethostname(), pid=os.getpid()))
    on_workers(await patient(partial(store.run, Store.live_workers, run, lease_s=lease_s)))
    running: dict[asyncio.Task[bool], str] = {}
    claimed_at: dict[str, float] = {}
    lost: set[str] = set()
    finished = 0

    def renewed(renewal: Renewal) -> None:
        on_workers(renewal.live_workers)
        for task, topic_id in running.items():
            # a topic claimed after the renewal was sent is not in its answer
            if topic_id not in renewal.held and claimed_at.get(topic_id, 0) < renewal.asked_at and not task.done():
                log.warning("worker %s no longer holds the lease of topic %s (it stalled past its lease); "
                            "dropping the topic", worker, topic_id)
                lost.add(topic_id)
                task.cancel()

    heartbeat = Heartbeat(store.path, run=run, worker=worker, lease_s=lease_s, on_renewal=renewed).start()
    poll_s = min(1.0, lease_s / 3)
    try:
        while True:
            if heartbeat.outage_s() > db_outage_s:
                raise gave_up(heartbeat.outage_s(), db_outage_s, DatabaseUnreachable(
                    f"{store.sync.shown_path}: its lease renewals failed"))
            # A topic another worker left unfinished (it died, or stopped) is taken at once, past this worker's
            # capacity and with a full budget: it was under way. New topics only while there is room. First, the
            # sessions of a worker stalled past its lease are ended: their row locks would hold the claims back.
            claimed: list[TopicRow] = []
            wants_more = False
            if not (stopping and stopping.is_set()):
                await patient(partial(store.run, Store.end_stalled_sessions, run, lease_s, caller=worker))
                mine = set(running.values())
                if running:
                    claimed = await patient(partial(store.run, Store.claim_topics, run, worker, lease_s=lease_s,
                                                    limit=CLAIM_BATCH, orphans_only=True, running=mine))
                room = min(capacity - len(running) - len(claimed), CLAIM_BATCH)
                wants_more = room > 0 and (has_room() or not running)
                if wants_more:
                    claimed += await patient(partial(store.run, Store.claim_topics, run, worker, lease_s=lease_s, limit=room,
                                                     running=mine))
            for topic in claimed:
                log.info("worker %s took topic %s (%s)", worker, topic["id"], topic["name"])
                claimed_at[topic["id"]] = time.monotonic()
                running[asyncio.create_task(run_topic(topic))] = topic["id"]
            if not running:
                if claimed:
                    continue
                if (stopping and stopping.is_set()) or await patient(partial(store.run, Store.live_leases, run)) == 0:
                    return finished
                await asyncio.sleep(poll_s)  # others hold the rest; wait in case one of them dies
                continue
            # Soon again while the last claim filled up and there is room; else when a topic ends, or at the poll.
            wait_s = 0.05 if wants_more and len(claimed) >= room else min(poll_s, 0.25)
            done, _ = await asyncio.wait(running, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                topic_id = running.pop(task)
                claimed_at.pop(topic_id, None)
                if task.cancelled() or topic_id in lost:
                    lost.discard(topic_id)
                    continue
                error = task.exception()
                # Released whatever happened: a topic that ended, or one another worker (or this one) takes
                # again (a release frees it at once where the lease is still this worker's; it changes
                # nothing where another has taken it).
                await patient(partial(store.run, Store.release_topic, topic_id, worker,
                                      waiting=error is None and task.result()))
                if error is None:
                    finished += 1
                elif is_fenced(error):
                    # Refused while its lease had run out: the thread goes on from its last checkpoint.
                    log.warning("worker %s: a write for topic %s was refused (%s); dropping the topic",
                                worker, topic_id, first_line(error))
                elif connection_lost(error):
                    # Its checkpoints hold what it did: claimed again (by any worker), it goes on from there.
                    log.warning("worker %s: topic %s stopped when the database connection was lost (%s); it goes on "
                                "from its last checkpoint", worker, topic_id, first_line(error))
                else:
                    raise error
    finally:
        await heartbeat.stop()
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        with contextlib.suppress(Exception):  # the database may be what failed; the leases then run out alone
            for topic_id in running.values():
                await store.run(Store.release_topic, topic_id, worker)  # unfinished: another worker may take it at once
            await store.run(Store.worker_stopped, worker)

