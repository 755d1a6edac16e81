"""The store as code on an event loop uses it: every call is awaited, and runs on the store's own thread.

A database call never blocks the loop (model calls, the progress display and a LangGraph server's requests
go on meanwhile). One thread per store keeps the connection's statements in the order they were awaited,
and a call that writes several rows (`keep_original`, say) holds its transaction inside that one call, so
no other coroutine's statement can fall between them.

`offload=False` runs each call on the loop instead. `chimera run` does, on its SQLite file: the loop is its
own, each statement takes microseconds on a local file, and the hand-over to a thread and back costs about
1 ms of CPU per model call on a 2-core machine (25% more than the run's whole orchestration), which caps
how many requests one process keeps in flight. A LangGraph server, whose loop serves other requests,
keeps the thread. The synchronous `Store` stays what commands with no loop use.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from chimera.store import Store

P = ParamSpec("P")
T = TypeVar("T")


def offloaded(method: Callable[Concatenate[Store, P], T]) -> Callable[Concatenate[AsyncStore, P],
                                                                     Coroutine[Any, Any, T]]:
    """`method` of the synchronous store, awaited on the store's thread, with its signature kept."""

    async def call(self: AsyncStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.run(method, *args, **kwargs)

    functools.update_wrapper(call, method)
    return call


class StoreThread:
    """The one thread a store's statements run on, fed from any event loop.

    Lighter than an executor where it counts: a call is a queue entry, and the thread wakes the loop once
    for every batch it finished rather than once per call (under load, calls queue up while one runs).
    """

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[[], Any]]
                                       | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="chimera-store", daemon=True)
        self._thread.start()

    def submit(self, function: Callable[[], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put((loop, future, function))
        return future

    def stop(self) -> None:
        self._calls.put(None)
        self._thread.join()

    def _serve(self) -> None:
        while True:
            call = self._calls.get()
            finished: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
            while call is not None:
                loop, future, function = call
                try:
                    outcome = (future, True, function())
                except BaseException as error:  # noqa: BLE001 - handed to the awaiting coroutine
                    outcome = (future, False, error)
                finished.setdefault(loop, []).append(outcome)
                try:
                    call = self._calls.get_nowait()
                except queue.Empty:
                    break
            for loop, outcomes in finished.items():
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
                    loop.call_soon_threadsafe(_settle, outcomes)
            if call is None:
                return


def _settle(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in outcomes:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class AsyncStore:
    """A `Store` behind its own thread. Open with `await AsyncStore.open(path)`; close with `await aclose()`."""

    def __init__(self, store: Store, *, offload: bool = True):
        self.sync = store  # for code with no loop, and for reads once the loop is done with the store
        self._thread = StoreThread() if offload else None

    @classmethod
    async def open(cls, path: str | Path, *, offload: bool = True, **options: Any) -> AsyncStore:
        """Open (and migrate) where its calls will run: with `offload`, not on the loop either."""
        opened = cls.__new__(cls)
        opened._thread = StoreThread() if offload else None
        try:
            opened.sync = await opened._execute(functools.partial(Store, path, **options))
        except BaseException:
            if opened._thread is not None:
                opened._thread.stop()
            raise
        return opened

    @property
    def path(self) -> str:
        return self.sync.path

    async def run(self, function: Callable[Concatenate[Store, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Any store function (a method, or a function taking the store first) run on the store's thread."""
        return await self._execute(functools.partial(function, self.sync, *args, **kwargs))

    async def _execute(self, call: Callable[[], T]) -> T:
        return call() if self._thread is None else await self._thread.submit(call)

    async def aclose(self) -> None:
        try:
            await self.run(Store.close)
        finally:
            if self._thread is not None:
                self._thread.stop()

    # What code on the loop may ask; each line is the synchronous method of the same name.
    save_run = offloaded(Store.save_run)
    counts = offloaded(Store.counts)
    call_rows = offloaded(Store.call_rows)
    usage_by_role = offloaded(Store.usage_by_role)
    table_bytes = offloaded(Store.table_bytes)
    unlabeled_samples = offloaded(Store.unlabeled_samples)
    label_rows = offloaded(Store.label_rows)
    # topics and Stage 1
    topics = offloaded(Store.topics)
    upsert_topic = offloaded(Store.upsert_topic)
    set_slots = offloaded(Store.set_slots)
    set_topic_status = offloaded(Store.set_topic_status)
    topic_status = offloaded(Store.topic_status)
    topics_with_problems = offloaded(Store.topics_with_problems)
    record_merge = offloaded(Store.record_merge)
    merges = offloaded(Store.merges)
    replace_shortfalls = offloaded(Store.replace_shortfalls)
    shortfalls = offloaded(Store.shortfalls)
    set_taxonomy_source = offloaded(Store.set_taxonomy_source)
    taxonomy_source = offloaded(Store.taxonomy_source)
    # problems, votes and the duplicate check
    problem = offloaded(Store.problem)
    save_draft = offloaded(Store.save_draft)
    record_failed_draft = offloaded(Store.record_failed_draft)
    drafts_before = offloaded(Store.drafts_before)
    save_revision = offloaded(Store.save_revision)
    record_vote = offloaded(Store.record_vote)
    votes = offloaded(Store.votes)
    problem_with_votes = offloaded(Store.problem_with_votes)
    finish_problem = offloaded(Store.finish_problem)
    reopen_failed = offloaded(Store.reopen_failed)
    pending_retries = offloaded(Store.pending_retries)
    mark_disagreement = offloaded(Store.mark_disagreement)
    mark_duplicate = offloaded(Store.mark_duplicate)
    keep_original = offloaded(Store.keep_original)
    any_displaced = offloaded(Store.any_displaced)
    settled_duplicates = offloaded(Store.settled_duplicates)
    duplicate_candidates = offloaded(Store.duplicate_candidates)
    revive_duplicate = offloaded(Store.revive_duplicate)
    indexed_problems = offloaded(Store.indexed_problems)
    set_pass_rate = offloaded(Store.set_pass_rate)
    # batches sent to a provider's batch API
    begin_batch = offloaded(Store.begin_batch)
    batch_uploaded = offloaded(Store.batch_uploaded)
    batch_sent = offloaded(Store.batch_sent)
    batch_polled = offloaded(Store.batch_polled)
    batch_closed = offloaded(Store.batch_closed)
    open_batches = offloaded(Store.open_batches)
    # samples
    save_sample = offloaded(Store.save_sample)
    sample = offloaded(Store.sample)
    update_sample = offloaded(Store.update_sample)
    samples_of = offloaded(Store.samples_of)
    # model calls
    log_call = offloaded(Store.log_call)
    relabel_call = offloaded(Store.relabel_call)
    kept_reply = offloaded(Store.kept_reply)
    kept_request_keys = offloaded(Store.kept_request_keys)
    forget_replies = offloaded(Store.forget_replies)
    forget_ended_replies = offloaded(Store.forget_ended_replies)
    # human review
    open_review = offloaded(Store.open_review)
    decisions_to_apply = offloaded(Store.decisions_to_apply)
    threads_with_decisions = offloaded(Store.threads_with_decisions)
    mark_reviews_applied = offloaded(Store.mark_reviews_applied)
    record_served_decision = offloaded(Store.record_served_decision)
    # workers and leases (PostgreSQL)
    register_worker = offloaded(Store.register_worker)
    worker_stopped = offloaded(Store.worker_stopped)
    claim_topics = offloaded(Store.claim_topics)
    end_stalled_sessions = offloaded(Store.end_stalled_sessions)
    renew_leases = offloaded(Store.renew_leases)
    release_topic = offloaded(Store.release_topic)
    live_leases = offloaded(Store.live_leases)
    live_workers = offloaded(Store.live_workers)
    act_as = offloaded(Store.act_as)
    lock_run = offloaded(Store.lock_run)
    unlock_run = offloaded(Store.unlock_run)
