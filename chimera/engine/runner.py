"""Runs a whole job: Stage 1, then every topic graph concurrently under one in-flight budget.

Resumable by construction: each graph thread is checkpointed in the run's
database; a thread with a checkpoint and work left is resumed with
`ainvoke(None)`, a finished one is skipped, a new one is started.

On a SQLite file one process holds the run. On PostgreSQL any number of
processes share it: `chimera run` does Stage 1 once (under the run's lock),
then every process, `chimera worker`s included, takes topics under leases
(chimera.engine.worker_loop), and `chimera run` settles the near-duplicates and
retries at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from langgraph.errors import EmptyInputError
from langgraph.types import Command

from chimera.config import Config
from chimera.engine.admission import run_while_room
from chimera.engine.outages import through_outage
from chimera.engine.session import simulator_for
from chimera.engine.worker_loop import new_worker_id, work_topics
from chimera.errors import BudgetReached, ChimeraError
from chimera.graphs.deps import Deps
from chimera.graphs.retry import build_retry_graph
from chimera.graphs.taxonomy import build_taxonomy_graph
from chimera.graphs.topic import build_topic_graph, topic_done
from chimera.ids import retry_thread_id, taxonomy_thread_id, topic_thread_id
from chimera.models.batching import BatchLedger
from chimera.models.costs import SpendCap
from chimera.models.dispatch import Endpoints
from chimera.models.embeddings import Embedder
from chimera.models.llm import build_clients, close_clients
from chimera.products.label_report import label_figures
from chimera.store import Store
from chimera.store.checkpoint_saver import open_saver
from chimera.store.kept_replies import KeptReplies
from chimera.store.nonblocking import AsyncStore
from chimera.store.postgres import connection_lost, is_postgres_url
from chimera.store.rows import CallCount, TopicRow
from chimera.store.run_lock import holding_run
from chimera.tools.dedup import ProblemIndex, settle

log = logging.getLogger("chimera.run")
T = TypeVar("T")


@dataclass
class RunSummary:
    name: str
    db: str
    seconds: float
    topics_run: int
    counts: dict[str, Any] = field(default_factory=dict)
    db_bytes: int = 0
    checkpoint_bytes: int = 0
    call_rows: list[CallCount] = field(default_factory=list)  # this invocation's calls by role, endpoint, outcome, message
    unlabeled: int = 0
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)  # chimera.products.label_report.label_figures
    shortfalls: list[dict[str, Any]] = field(default_factory=list)  # why Stage 1 gave fewer topics than asked
    reused_calls: int = 0  # calls answered from replies kept before a restart instead of asked again
    worker: str | None = None  # on PostgreSQL: this process's worker id


ProgressHook = Callable[["RunMonitor"], None]


@dataclass
class RunMonitor:
    """What a progress display reads while the run goes on (`counts` as of the last tick)."""

    run: str
    endpoints: Endpoints
    counts: dict[str, Any] = field(default_factory=dict)
    stage: str = "starting"
    topics_total: int = 0
    topics_finished: int = 0
    slots_total: int = 0  # problem slots of the run's topics (each becomes one problem)
    started: float = field(default_factory=time.monotonic)


async def run_thread(graph: Any, thread_id: str, initial: dict[str, Any], recursion_limit: int, *,
                     context: Deps, known_started: bool = False, decisions: dict[str, dict[str, Any]] | None = None,
                     on_applied: Callable[[list[str]], Awaitable[None]] | None = None) -> bool:
    """Start a thread that has no checkpoint, or resume one that has; True when it ended waiting for review.

    `ainvoke(None)` is the resume: it replays pending writes of a step cut short and
    goes on, and does nothing on a finished thread. (`state.next` cannot tell the two
    apart: after a kill between a step's last write and its checkpoint it is empty too.)
    Reviewers' `decisions` (review id -> decision) then resume the interrupts that wait
    for them with `Command(resume=...)`, and only those are recorded as applied. The
    resume comes first because a review opened just before a kill has no interrupt in the
    checkpoint yet: its step runs again, and then waits for the decision. A decision that
    nothing waits for even then was applied by a run killed before it could record that.
    """
    config = {"configurable": {"thread_id": thread_id}, "recursion_limit": recursion_limit}
    result = await _start_or_resume(graph, config, context, initial, known_started)
    undelivered = dict(decisions or {})
    while undelivered and _waiting(result):
        state = await graph.aget_state(config)
        resume = {pending.id: pending.value["review_id"] for pending in state.interrupts
                  if isinstance(pending.value, dict) and pending.value.get("review_id") in undelivered}
        if not resume:
            break
        result = await graph.ainvoke(Command(resume={i: undelivered.pop(r) for i, r in resume.items()}), config,
                                     context=context)
        if on_applied is not None:
            await on_applied(list(resume.values()))
    if undelivered and on_applied is not None:
        await on_applied(list(undelivered))
    return _waiting(result)


async def _start_or_resume(graph: Any, config: dict[str, Any], context: Deps, initial: dict[str, Any],
                           known_started: bool) -> Any:
    if known_started:  # the store already holds its work: skip reading the state only to learn that
        try:
            return await graph.ainvoke(None, config, context=context)
        except EmptyInputError:
            pass  # killed after a node's first store write but before the thread's first checkpoint landed
    state = await graph.aget_state(config)
    return await graph.ainvoke(initial if state.created_at is None else None, config, context=context)


def _waiting(result: Any) -> bool:
    return isinstance(result, dict) and bool(result.get("__interrupt__"))


async def run_pipeline(config: Config, *, on_progress: ProgressHook | None = None,
                       progress_every_s: float = 0.5, topics_only: bool = False,
                       retry_failed: bool = False, worker_only: bool = False,
                       stop: asyncio.Event | None = None,
                       pilot: Callable[[list[TopicRow]], list[TopicRow]] | None = None) -> RunSummary:
    """The whole run (`worker_only`: as `chimera worker`, the topics of a run under way on PostgreSQL).

    Once `stop` is set (SIGTERM), no request is sent and no topic claimed any more; the calls already sent get
    `run.stop_grace_s` to finish (their replies are kept for the resume), then the run is cancelled.
    `pilot` (chimera plan): Stage 1, then only the topics it picks, to their end; the rest wait for `chimera run`."""
    started = time.monotonic()
    shared = is_postgres_url(config.run.db)
    if worker_only and not shared:
        raise ChimeraError(f"{config.run.db}: chimera worker joins a run on a postgresql:// database; "
                           "a SQLite file is one process's (use chimera run)")
    if pilot is not None and shared:
        raise ChimeraError(f"{config.run.db}: a pilot runs on a SQLite file; on PostgreSQL, plan from an earlier "
                           "run's database (chimera plan CONFIG --from DB)")
    if shared:
        # On the store's thread: every call is a round trip to a server, which must not hold the loop.
        # The schema is migrated once, under a lock in the database, however many processes start at once.
        store = await AsyncStore.open(config.run.db)
        lock: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    else:
        Path(config.run.db).parent.mkdir(parents=True, exist_ok=True)
        # The schema first (one transaction, safe beside another process): once the run holds its lock,
        # read-only commands find a database they can open.
        # On the loop: this process's loop is the run's alone (see AsyncStore on what a thread would cost).
        store = await AsyncStore.open(config.run.db, offload=False, lock_wait_s=config.run.lock_wait_s)
        lock = holding_run(config.run.db)
    try:
        with lock:
            return await _run_pipeline(config, store, started, on_progress=on_progress,
                                       progress_every_s=progress_every_s, topics_only=topics_only,
                                       retry_failed=retry_failed, worker_only=worker_only, shared=shared, stop=stop,
                                       pilot=pilot)
    finally:
        await store.aclose()


async def _run_pipeline(config: Config, store: AsyncStore, started: float, *, on_progress: ProgressHook | None,
                        progress_every_s: float, topics_only: bool, retry_failed: bool, worker_only: bool,
                        shared: bool, stop: asyncio.Event | None,
                        pilot: Callable[[list[TopicRow]], list[TopicRow]] | None = None) -> RunSummary:
    run = config.run.name
    worker = new_worker_id() if shared else None
    if not worker_only:
        await store.run(Store.save_run, run, config.redacted())
    endpoints = Endpoints(config.run.concurrency)
    monitor = RunMonitor(run=config.run.name, endpoints=endpoints)
    ticker: asyncio.Task | None = None
    main = asyncio.current_task()
    assert main is not None
    stop = stop if stop is not None else asyncio.Event()  # also set by the budget cap
    draining = asyncio.create_task(_drain_when_stopped(stop, endpoints, monitor, main, config.run.stop_grace_s))
    cap: SpendCap | None = None
    outage_s = config.run.db_outage_s

    def outlasting(phase: Callable[[], Awaitable[T]], what: str) -> Awaitable[T]:
        """On PostgreSQL, a phase that resumes from its checkpoints is made again after a lost connection."""
        return through_outage(phase, outage_s=outage_s, what=what) if shared else phase()
    # Closed in reverse: the checkpointer, the embedder, the clients, then the simulator they talk to.
    stack = contextlib.AsyncExitStack()
    try:
        sim_url = await stack.enter_async_context(
            simulator_for(config, config.models.run_roles().values()))
        deps = await open_deps(config, store, endpoints, sim_url, stack)
        clients = deps.clients
        cap = SpendCap.of(config, await store.run(Store.usage_by_role, run), on_reached=stop.set)
        for client in clients.values():
            client.cap = cap
        if cap is not None and (reached := cap.exhausted()):  # the runs before this one spent it
            raise BudgetReached(reached)
        saver, saver_stack = await open_saver(config.run.db, config.run.lock_wait_s)
        stack.push_async_callback(saver_stack.aclose)
        if on_progress is not None:
            ticker = asyncio.create_task(_tick(monitor, store, on_progress, progress_every_s))

        if worker_only:
            monitor.stage = "waiting for stage 1"
            if await store.run(Store.taxonomy_source, run) is None:  # chimera run does Stage 1; a worker joins after
                log.info("waiting for chimera run to finish Stage 1 of run %s", run)
            while await outlasting(lambda: store.run(Store.taxonomy_source, run), "the wait for Stage 1") is None:
                await asyncio.sleep(1.0)
        else:
            monitor.stage = "stage 1: topics"

            async def stage_one() -> None:
                async with _run_lock(store, run, shared):
                    await _stage_one(config, store, saver, deps)
            await outlasting(stage_one, "Stage 1")

        topics = await store.run(Store.topics, run, live=True)
        if topics_only:
            topics = []
        monitor.stage = "stages 2-3: problems"
        monitor.topics_total = len(topics)
        monitor.slots_total = sum(config.problems_per_topic if t["slots"] is None else t["slots"] for t in topics)
        pending = [t for t in topics if t["status"] != "done"]
        monitor.topics_finished = len(topics) - len(pending)
        if pilot is not None:
            pending = [t for t in pilot(topics) if t["status"] != "done"]
        topic_graph = build_topic_graph(review=bool(config.review.active)).compile(checkpointer=saver)
        most_slots = max([t["slots"] or 0 for t in topics] + [config.problems_per_topic])
        limit = 20 + 4 * most_slots * (config.max_revisions + 2)
        started_topics = await store.run(Store.topics_with_problems, config.run.name)
        decided = await store.run(Store.threads_with_decisions, config.run.name)

        async def decisions(thread_id: str) -> dict[str, dict[str, Any]] | None:
            # Shared: another process's reviewer may have decided since this one started.
            return await store.run(Store.decisions_to_apply, thread_id) if shared or thread_id in decided else None
        capacity = config.run.topics_in_flight or _topics_to_fill(config, endpoints)

        async def one_topic(topic: TopicRow, graph: Any = topic_graph) -> bool:
            thread_id = topic_thread_id(run, topic["id"])
            if shared and deps.kept is not None:  # taken over: the replies its last worker kept
                await deps.kept.learn(run, topic["id"])
            waiting = await run_thread(
                graph, thread_id,
                {"topic_id": topic["id"], "subject": topic["subject"], "topic": topic["name"],
                 "slots": config.problems_per_topic if topic["slots"] is None else topic["slots"]},
                recursion_limit=limit, context=deps, known_started=topic["id"] in started_topics,
                decisions=await decisions(thread_id), on_applied=store.forward(Store.mark_reviews_applied))
            if not waiting:  # the graph's `finished` node has marked it done; a thread ended before it existed has not
                await topic_done(deps.store, run, topic["id"], deps.kept)
            monitor.topics_finished += 1
            return waiting

        if shared and not topics_only:
            assert worker is not None
            # This process's writes for a topic are checked against its lease from here on, checkpoints too.
            fenced_saver, fenced_stack = await open_saver(config.run.db, worker=worker, lease_s=config.run.lease_s)
            stack.push_async_callback(fenced_stack.aclose)
            fenced_graph = build_topic_graph(review=bool(config.review.active)).compile(checkpointer=fenced_saver)
            await store.run(Store.act_as, worker, lease_s=config.run.lease_s)
            try:
                await work_topics(store, functools.partial(one_topic, graph=fenced_graph), run=run, worker=worker,
                                  lease_s=config.run.lease_s, capacity=capacity, db_outage_s=outage_s,
                                  has_room=lambda: endpoints.waiting < endpoints.places,
                                  on_workers=endpoints.share_totals, stopping=stop)
            finally:
                # a lost connection: a new one starts with no worker set in any case
                await _unless_connection_lost(store.run(Store.act_as, None))
        else:
            if len(pending) <= capacity:  # all in flight at once: kept in step, they end on one wide wave
                endpoints.keep_in_step()
            await run_while_room(pending, one_topic, capacity=capacity,
                                 has_room=lambda: endpoints.waiting < endpoints.places, stopping=stop)
        if worker_only or pilot is not None:
            return await _summary(config, store, clients, started, topics_run=monitor.topics_finished, worker=worker)

        async def settle_and_retry() -> None:
            async with _run_lock(store, run, shared):
                await _settle_and_retry(config, store, deps, saver, monitor, topics_only=topics_only,
                                        retry_failed=retry_failed, limit=limit, decisions=decisions, shared=shared)
        await outlasting(settle_and_retry, "settling")
        monitor.stage = "done"
        return await _summary(config, store, clients, started, topics_run=len(pending), worker=worker)
    except asyncio.CancelledError:
        if cap is not None and cap.reached is not None:  # the cap stopped the run, as SIGTERM would
            raise BudgetReached(cap.reached) from None
        raise
    finally:
        draining.cancel()
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # what stops the run is raised already
                await ticker
        if on_progress is not None:
            with contextlib.suppress(Exception):  # the last counts stand where the database is what failed
                await _refresh(monitor, store)
            on_progress(monitor)
        await stack.aclose()


async def _stage_one(config: Config, store: AsyncStore, saver: Any, deps: Deps) -> None:
    if await store.run(Store.taxonomy_source, config.run.name) != "imported":  # an imported taxonomy replaces Stage 1
        taxonomy = build_taxonomy_graph().compile(checkpointer=saver)
        await run_thread(taxonomy, taxonomy_thread_id(config.run.name), {}, recursion_limit=50, context=deps)
        await store.run(Store.forget_replies, config.run.name)
        if deps.kept is not None:
            deps.kept.forget_topic(None)


@contextlib.asynccontextmanager
async def _run_lock(store: AsyncStore, run: str, shared: bool) -> AsyncIterator[None]:
    """On PostgreSQL, what one process of a run must do alone (Stage 1, settling) runs under the run's lock."""
    if not shared:
        yield
        return
    await store.run(Store.lock_run, run)
    try:
        yield
    finally:
        await _unless_connection_lost(store.run(Store.unlock_run, run))  # a lost session has let go of its lock already


async def _settle_and_retry(config: Config, store: AsyncStore, deps: Deps, saver: Any, monitor: RunMonitor, *,
                            topics_only: bool, retry_failed: bool, limit: int,
                            decisions: Callable[[str], Awaitable[dict[str, dict[str, Any]] | None]],
                            shared: bool) -> None:
    """After the topics: make the near-duplicate decisions order-free, then retry failed and revived slots."""
    if not topics_only:
        # Shared: other workers kept problems this process's duplicate index never saw, so settle always.
        await settle_duplicates(config, store, deps, always=shared)
    # Slots whose calls ran out of retries end `failed`; --retry-failed takes them again, and a
    # retry cut short by a kill is picked up by the next run in any case. Revived duplicates too.
    run = config.run.name
    retries = await store.run(Store.pending_retries, run)
    if retry_failed:
        retries += await store.run(Store.reopen_failed, run)
    if retries:
        monitor.stage = f"retrying {len(retries)} failed slots"
        retry_graph = build_retry_graph(review=bool(config.review.active)).compile(checkpointer=saver)
        threads = [retry_thread_id(run, row["topic_id"], row["retries"], row["slot"]) for row in retries]

        async def one_retry(thread_id: str, row: dict[str, Any]) -> None:
            waiting = await run_thread(
                retry_graph, thread_id, {key: row[key] for key in ("topic_id", "subject", "topic", "slot")}
                | {"problem_id": row["id"]}, recursion_limit=limit, context=deps,
                decisions=await decisions(thread_id), on_applied=store.forward(Store.mark_reviews_applied))
            if not waiting:
                await store.run(Store.forget_replies, run, problem_id=row["id"])

        await _all_or_first_error([one_retry(thread_id, row) for thread_id, row in zip(threads, retries)])
    await store.run(Store.forget_ended_replies, run)


async def _summary(config: Config, store: AsyncStore, clients: dict[str, Any], started: float, *, topics_run: int,
                   worker: str | None) -> RunSummary:
    run = config.run.name
    since = time.time() - (time.monotonic() - started)  # this invocation's start, on the clock calls are logged by
    summary = RunSummary(name=run, db=store.sync.shown_path, seconds=time.monotonic() - started,
                         topics_run=topics_run, counts=await store.run(Store.counts, run),
                         call_rows=await store.run(Store.call_rows, run, since=since),
                         unlabeled=await store.run(Store.unlabeled_samples, run),
                         labels=label_figures(await store.run(Store.label_rows, run)),
                         shortfalls=await store.run(Store.shortfalls, run),
                         reused_calls=sum(client.reused for client in clients.values()), worker=worker)
    sizes = await store.run(Store.table_bytes)
    summary.db_bytes = sum(sizes.values()) or Path(config.run.db).stat().st_size
    summary.checkpoint_bytes = sum(size for name, size in sizes.items() if is_checkpoint_table(name))
    return summary


async def open_deps(config: Config, store: AsyncStore, endpoints: Endpoints, sim_url: str | None,
                    stack: contextlib.AsyncExitStack) -> Deps:
    """What the graphs need for a run (clients with the kept replies, the embedder, the duplicate index),
    closed by `stack`. `chimera run` and a LangGraph server build them alike."""
    kept = await KeptReplies.of_run(store.for_graphs, config.run.name)
    stack.push_async_callback(endpoints.stop_steering)  # adaptive budgets' controllers, started with the clients
    clients = build_clients(config, endpoints=endpoints, sim_url=sim_url, log=kept.log_call,
                            relabel=store.forward(Store.relabel_call), replay=kept.lookup,
                            batch_ledger=cast(BatchLedger, store))  # Store's methods, forwarded: the tests hold them alike
    stack.push_async_callback(close_clients, clients)
    embedder = None
    if config.models.embedder is not None:
        embedder = Embedder(config.models.embedder, endpoints=endpoints, sim_url=sim_url,
                            log=store.forward(Store.log_call))
        stack.push_async_callback(embedder.close)
    return Deps(config=config, store=store.for_graphs, clients=clients, embedder=embedder,
                index_loader=lambda: _rebuild_index(config, store), kept=kept)


async def settle_duplicates(config: Config, store: AsyncStore, deps: Deps, *, always: bool = False) -> None:
    """Make the near-duplicate decisions what they are in key order over every problem that reached the check,
    whatever order the topics finished in: drop a kept one that duplicates a smaller kept one, and revive
    one dropped for a problem that did not stay kept (a retry thread then solves it, reusing its votes)."""
    if not config.dedup.enabled or not (always or await store.run(Store.any_displaced, config.run.name)):
        return  # with no problem displaced, one process's arrival order already gave the key-order answer
    candidates = await store.run(Store.duplicate_candidates, config.run.name)
    settled = settle([(c["id"], c["problem"]) for c in candidates], threshold=config.dedup.threshold,
                     shingle_words=config.dedup.shingle_words, num_perm=config.dedup.num_perm)
    changed = False
    for candidate in candidates:
        match = settled.get(candidate["id"])
        if match is not None and candidate["duplicate_of"] != match.key:
            # newly a duplicate, or of another twin (the one it was marked against was displaced or rejected)
            await store.run(Store.mark_duplicate, candidate["id"], match.key, match.similarity)
            changed = True
        elif match is None and candidate["duplicate_of"] is not None and not candidate["in_review"]:
            await store.run(Store.revive_duplicate, candidate["id"])
            changed = True
    await store.run(Store.settled_duplicates, config.run.name)
    if changed:
        deps.index = await _rebuild_index(config, store)


async def _unless_connection_lost(cleanup: Awaitable[Any]) -> None:
    """A clean-up step on the store, skipped where the connection it would clean up is gone already."""
    try:
        await cleanup
    except Exception as error:
        if not connection_lost(error):
            raise


async def _drain_when_stopped(stop: asyncio.Event, endpoints: Endpoints, monitor: RunMonitor, main: asyncio.Task[Any],
                              grace_s: float) -> None:
    """Once `stop` is set: send nothing more, give the calls in flight `grace_s` to finish, then cancel `main`."""
    await stop.wait()
    endpoints.close()
    monitor.stage = "stopping"
    log.warning("stopping: %d calls in flight get up to %gs to finish; nothing new is sent", endpoints.in_flight,
                grace_s)
    deadline = time.monotonic() + grace_s
    while endpoints.in_flight and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    main.cancel()


def _topics_to_fill(config: Config, endpoints: Endpoints) -> int:
    """The most topic graphs in flight at once: room for every endpoint's budget to stay full (a topic drafts one
    problem at a time, then solves its slots side by side); which of them start is up to the budget's queue."""
    return max(16, 2 * endpoints.limit)


async def _rebuild_index(config: Config, store: AsyncStore) -> ProblemIndex | None:
    """The duplicate index as it stood: every problem of this run that already passed the check."""
    if not config.dedup.enabled:
        return None
    index = ProblemIndex(config.dedup.threshold, config.dedup.shingle_words, config.dedup.num_perm)
    for problem_id, text in await store.run(Store.indexed_problems, config.run.name):
        index.add(problem_id, text)
    return index


def is_checkpoint_table(name: str) -> bool:
    """LangGraph's saver tables and their automatic indexes."""
    return name in ("checkpoints", "writes", "checkpoint_blobs", "checkpoint_writes", "checkpoint_migrations") \
        or name.startswith(("sqlite_autoindex_checkpoints", "sqlite_autoindex_writes"))


async def _tick(monitor: RunMonitor, store: AsyncStore, hook: ProgressHook, every: float) -> None:
    while True:
        # A database that is away for a moment (a PostgreSQL restart) leaves the last counts on the display;
        # the run's own next write says whether it is gone for good.
        try:
            await _refresh(monitor, store)
        except (ChimeraError, OSError):
            pass
        except Exception as error:
            if not connection_lost(error):
                raise
        hook(monitor)
        await asyncio.sleep(every)


async def _refresh(monitor: RunMonitor, store: AsyncStore) -> None:
    monitor.counts = await store.run(Store.counts, monitor.run)


async def _all_or_first_error(coroutines: list) -> None:
    """Run all; the first error (an unreachable endpoint, say) stops the rest, which resume on the next run."""
    tasks = [asyncio.create_task(c) for c in coroutines]
    try:
        for finished in asyncio.as_completed(tasks):
            await finished
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
