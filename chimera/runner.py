"""Runs a whole job: Stage 1, then every topic graph concurrently under one in-flight budget.

Resumable by construction: each graph thread is checkpointed in the run's
SQLite file; a thread with a checkpoint and work left is resumed with
`ainvoke(None)`, a finished one is skipped, a new one is started.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.errors import EmptyInputError
from langgraph.types import Command

from chimera.checkpoint_saver import open_saver
from chimera.config import Config
from chimera.dispatch import Endpoints
from chimera.embeddings import Embedder
from chimera.graphs.deps import Deps
from chimera.graphs.retry import build_retry_graph
from chimera.graphs.taxonomy import build_taxonomy_graph
from chimera.graphs.topic import build_topic_graph
from chimera.ids import taxonomy_thread_id, topic_thread_id
from chimera.kept_replies import KeptReplies
from chimera.llm import build_clients, close_clients
from chimera.run_lock import holding_run
from chimera.session import simulator_for
from chimera.store.nonblocking import AsyncStore
from chimera.store.rows import TopicRow
from chimera.tools.dedup import ProblemIndex, settle


@dataclass
class RunSummary:
    name: str
    db: str
    seconds: float
    topics_run: int
    counts: dict[str, Any] = field(default_factory=dict)
    db_bytes: int = 0
    checkpoint_bytes: int = 0
    call_rows: list[dict[str, Any]] = field(default_factory=list)  # calls by role, endpoint, outcome, message
    unlabeled: int = 0
    shortfalls: list[dict[str, Any]] = field(default_factory=list)  # why Stage 1 gave fewer topics than asked
    reused_calls: int = 0  # calls answered from replies kept before a restart instead of asked again


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
                       retry_failed: bool = False) -> RunSummary:
    started = time.monotonic()
    Path(config.run.db).parent.mkdir(parents=True, exist_ok=True)
    # The schema first (one transaction, safe beside another process): once the run holds its lock, read-only
    # commands find a database they can open.
    # On the loop: this process's loop is the run's alone (see AsyncStore on what a thread would cost).
    store = await AsyncStore.open(config.run.db, offload=False, lock_wait_s=config.run.lock_wait_s)
    try:
        with holding_run(config.run.db):
            return await _run_pipeline(config, store, started, on_progress=on_progress,
                                       progress_every_s=progress_every_s, topics_only=topics_only,
                                       retry_failed=retry_failed)
    finally:
        await store.aclose()


async def _run_pipeline(config: Config, store: AsyncStore, started: float, *, on_progress: ProgressHook | None,
                        progress_every_s: float, topics_only: bool, retry_failed: bool) -> RunSummary:
    await store.save_run(config.run.name, config.redacted())
    endpoints = Endpoints(config.run.concurrency)
    monitor = RunMonitor(run=config.run.name, endpoints=endpoints)
    ticker: asyncio.Task | None = None
    # Closed in reverse: the checkpointer, the embedder, the clients, then the simulator they talk to.
    stack = contextlib.AsyncExitStack()
    try:
        sim_url = await stack.enter_async_context(
            simulator_for(config, [*config.models.all_roles().values(), config.models.embedder]))
        deps = await open_deps(config, store, endpoints, sim_url, stack)
        clients = deps.clients
        saver, saver_stack = await open_saver(config.run.db, config.run.lock_wait_s)
        stack.push_async_callback(saver_stack.aclose)
        if on_progress is not None:
            ticker = asyncio.create_task(_tick(monitor, store, on_progress, progress_every_s))

        monitor.stage = "stage 1: topics"
        if await store.taxonomy_source(config.run.name) != "imported":  # an imported taxonomy replaces Stage 1
            taxonomy = build_taxonomy_graph().compile(checkpointer=saver)
            await run_thread(taxonomy, taxonomy_thread_id(config.run.name), {},
                             recursion_limit=50, context=deps)
            await store.forget_replies(config.run.name)

        topics = await store.topics(config.run.name, live=True)
        if topics_only:
            topics = []
        monitor.stage = "stages 2-3: problems"
        monitor.topics_total = len(topics)
        pending = [t for t in topics if t["status"] != "done"]
        monitor.topics_finished = len(topics) - len(pending)
        topic_graph = build_topic_graph(review=bool(config.review.active)).compile(checkpointer=saver)
        most_slots = max([t["slots"] or 0 for t in topics] + [config.problems_per_topic])
        limit = 20 + 4 * most_slots * (config.max_revisions + 2)
        started_topics = await store.topics_with_problems(config.run.name)
        decided = await store.threads_with_decisions(config.run.name)

        async def decisions(thread_id: str) -> dict[str, dict[str, Any]] | None:
            return await store.decisions_to_apply(thread_id) if thread_id in decided else None
        gate = asyncio.Semaphore(config.run.topics_in_flight or _topics_to_fill(config, endpoints))

        async def one_topic(topic: TopicRow) -> None:
            async with gate:
                thread_id = topic_thread_id(config.run.name, topic["id"])
                waiting = await run_thread(
                    topic_graph, thread_id,
                    {"topic_id": topic["id"], "subject": topic["subject"], "topic": topic["name"],
                     "slots": config.problems_per_topic if topic["slots"] is None else topic["slots"]},
                    recursion_limit=limit, context=deps, known_started=topic["id"] in started_topics,
                    decisions=await decisions(thread_id), on_applied=store.mark_reviews_applied)
                if not waiting:
                    await store.set_topic_status(topic["id"], "done")
                    await store.forget_replies(config.run.name, topic_id=topic["id"])
                monitor.topics_finished += 1

        await _all_or_first_error([one_topic(t) for t in pending])

        if not topics_only:
            await settle_duplicates(config, store, deps)
        # Slots whose calls ran out of retries end `failed`; --retry-failed takes them again, and a
        # retry cut short by a kill is picked up by the next run in any case. Revived duplicates too.
        retries = await store.pending_retries(config.run.name)
        if retry_failed:
            retries += await store.reopen_failed(config.run.name)
        if retries:
            monitor.stage = f"retrying {len(retries)} failed slots"
            retry_graph = build_retry_graph(review=bool(config.review.active)).compile(checkpointer=saver)
            threads = [f"{topic_thread_id(config.run.name, row['topic_id'])}:retry{row['retries']}:{row['slot']}"
                       for row in retries]

            async def one_retry(thread_id: str, row: dict[str, Any]) -> None:
                waiting = await run_thread(
                    retry_graph, thread_id, {key: row[key] for key in ("topic_id", "subject", "topic", "slot")}
                    | {"problem_id": row["id"]}, recursion_limit=limit, context=deps,
                    decisions=await decisions(thread_id), on_applied=store.mark_reviews_applied)
                if not waiting:
                    await store.forget_replies(config.run.name, problem_id=row["id"])

            await _all_or_first_error([one_retry(thread_id, row) for thread_id, row in zip(threads, retries)])
        monitor.stage = "done"
        summary = RunSummary(name=config.run.name, db=config.run.db, seconds=time.monotonic() - started,
                             topics_run=len(pending), counts=await store.counts(config.run.name),
                             call_rows=await store.call_rows(config.run.name),
                             unlabeled=await store.unlabeled_samples(config.run.name),
                             shortfalls=await store.shortfalls(config.run.name),
                             reused_calls=sum(client.reused for client in clients.values()))
        sizes = await store.table_bytes()
        summary.db_bytes = sum(sizes.values()) or Path(config.run.db).stat().st_size
        summary.checkpoint_bytes = sum(size for name, size in sizes.items() if _is_checkpoint_table(name))
        return summary
    finally:
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        if on_progress is not None:
            with contextlib.suppress(Exception):  # the last counts stand where the database is what failed
                await _refresh(monitor, store)
            on_progress(monitor)
        await stack.aclose()


async def open_deps(config: Config, store: AsyncStore, endpoints: Endpoints, sim_url: str | None,
                    stack: contextlib.AsyncExitStack) -> Deps:
    """What the graphs need for a run (clients with the kept replies, the embedder, the duplicate index),
    closed by `stack`. `chimera run` and a LangGraph server build them alike."""
    kept = await KeptReplies.of_run(store, config.run.name)
    clients = build_clients(config, endpoints=endpoints, sim_url=sim_url, log=kept.log,
                            relabel=store.relabel_call, replay=kept.lookup)
    stack.push_async_callback(close_clients, clients)
    embedder = None
    if config.models.embedder is not None:
        embedder = Embedder(config.models.embedder, endpoints=endpoints, sim_url=sim_url, log=store.log_call)
        stack.push_async_callback(embedder.close)
    return Deps(config=config, store=store, clients=clients, embedder=embedder,
                index_loader=lambda: _rebuild_index(config, store))


async def settle_duplicates(config: Config, store: AsyncStore, deps: Deps) -> None:
    """Make the near-duplicate decisions what they are in key order over every problem that reached the check,
    whatever order the topics finished in: drop a kept one that duplicates a smaller kept one, and revive
    one dropped for a problem that did not stay kept (a retry thread then solves it, reusing its votes)."""
    if not config.dedup.enabled or not await store.any_displaced(config.run.name):
        return  # with no problem displaced, arrival order already gave the key-order answer
    candidates = await store.duplicate_candidates(config.run.name)
    settled = settle([(c["id"], c["problem"]) for c in candidates], threshold=config.dedup.threshold,
                     shingle_words=config.dedup.shingle_words, num_perm=config.dedup.num_perm)
    changed = False
    for candidate in candidates:
        match = settled.get(candidate["id"])
        if match is not None and candidate["duplicate_of"] is None:
            await store.mark_duplicate(candidate["id"], match.key, match.similarity)
            changed = True
        elif match is None and candidate["duplicate_of"] is not None and not candidate["in_review"]:
            await store.revive_duplicate(candidate["id"])
            changed = True
    await store.settled_duplicates(config.run.name)
    if changed:
        deps.index = await _rebuild_index(config, store)


def _topics_to_fill(config: Config, endpoints: Endpoints) -> int:
    """Topic graphs to run at once: enough that every endpoint's budget stays full (a topic drafts one
    problem at a time, then solves its slots side by side)."""
    return max(16, 2 * endpoints.limit)


async def _rebuild_index(config: Config, store: AsyncStore) -> ProblemIndex | None:
    """The duplicate index as it stood: every problem of this run that already passed the check."""
    if not config.dedup.enabled:
        return None
    index = ProblemIndex(config.dedup.threshold, config.dedup.shingle_words, config.dedup.num_perm)
    for problem_id, text in await store.indexed_problems(config.run.name):
        index.add(problem_id, text)
    return index


def _is_checkpoint_table(name: str) -> bool:
    """LangGraph's saver tables and their automatic indexes."""
    return name in ("checkpoints", "writes") or name.startswith(("sqlite_autoindex_checkpoints",
                                                                 "sqlite_autoindex_writes"))


async def _tick(monitor: RunMonitor, store: AsyncStore, hook: ProgressHook, every: float) -> None:
    while True:
        await _refresh(monitor, store)
        hook(monitor)
        await asyncio.sleep(every)


async def _refresh(monitor: RunMonitor, store: AsyncStore) -> None:
    monitor.counts = await store.counts(monitor.run)


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
