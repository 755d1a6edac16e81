"""LangGraph's savers (SQLite, or PostgreSQL for a postgresql:// run), with each task's writes landing whole.

The run's saver connection is in autocommit mode: a transaction left open across an await would make the
store's own writes, on the event-loop thread, wait for a lock only the loop can release. Under autocommit
the stock `aput_writes` (`executemany`) commits row by row, so a full disk or a kill between two rows
leaves a task with some of its writes and not others. A resumed thread then takes the task for done and
may drop what it had sent on (its `Send`s), ending a topic with problems still pending. One multi-row
INSERT is one statement, so it lands whole or not at all.

Writes are also committed in groups. The stock saver sends each checkpoint and each task's writes to the
connection's thread as its own statement and commit, one after another under one lock, and each step
waits for the busy event loop to hand it on. At a few hundred calls a second that queue held 9,000 pending
writes (a 500-topic run), and topic graphs starting behind it waited seconds for their first read. Here
every write waiting when the thread is free goes in one transaction, run whole in the connection's thread
(so no transaction stays open across an await), and each writer's await returns once its group has
committed: the same durability, one hand-off per group. Orchestration CPU per call fell by a seventh.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from chimera.store import LOCK_WAIT_S
from chimera.store.checkpoint_serde import StrictSerializer
from chimera.store.postgres import is_postgres_url

COLUMNS = "thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, value"
ROWS_PER_STATEMENT = 3000  # 9 parameters a row, under SQLite's 32,766 per statement


Statement = tuple[str, Sequence[Any]]
Group = list[tuple[list[Statement], "asyncio.Future[None]"]]


def _commit_group(conn: sqlite3.Connection, statements: list[Statement]) -> None:
    """Runs in the connection's own thread: every statement in one transaction, committed or rolled back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, params in statements:
            conn.execute(sql, params)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite has already rolled back after some errors (a full disk)
            conn.execute("ROLLBACK")
        raise


class AtomicWritesSaver(AsyncSqliteSaver):
    def __init__(self, conn: aiosqlite.Connection, **kwargs: Any):
        super().__init__(conn, **kwargs)
        self._waiting: Group = []
        self._committer: asyncio.Task[None] | None = None
        self._reader: SqliteSaver | None = None  # the synchronous saver on this connection, for reads

    async def setup(self) -> None:
        # The stock setup takes the saver's lock on every call, before every read and write, even once the
        # tables exist: with thousands of writers that is a second queue on the one lock.
        if not self.is_setup:
            await super().setup()

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        # The stock read holds the lock over several hand-offs between the loop and the connection's thread;
        # a run starting hundreds of topic graphs at once queued its writes behind those reads for seconds.
        # The synchronous saver's read, run whole in the connection's thread, is one hand-off and needs no
        # lock: nothing runs in that thread between its statements.
        await self.setup()
        if self._reader is None:
            self._reader = SqliteSaver(self.conn._conn, serde=self.serde)
            self._reader.is_setup = True
            self._reader._has_task_path = self._has_task_path  # a database from before writes.task_path
        return await self.conn._execute(self._reader.get_tuple, config)

    async def _write(self, statements: list[Statement]) -> None:
        """`statements` committed together, in order after every write asked for before them."""
        await self.setup()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A writer cancelled while it waits no longer reads the outcome; nothing else would, and asyncio would
        # log a failed group's error as never retrieved.
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._waiting.append((statements, done))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_waiting())
        await asyncio.shield(done)  # a cancelled writer leaves its group to commit, as a sent statement would

    async def _commit_waiting(self) -> None:
        group: Group = []
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                try:
                    async with self.lock:
                        await self._commit(group)
                except Exception as error:  # the writers get it; the writes queued behind them still go
                    for _, done in group:
                        if not done.done():
                            done.set_exception(error)
        finally:  # cancelled (the loop is closing): no writer waits for ever
            for _, done in group + self._waiting:
                if not done.done():
                    done.cancel()

    async def _commit(self, group: Group) -> None:
        try:
            # aiosqlite's only way to run several statements in its thread without handing back to the loop
            await self.conn._execute(_commit_group, self.conn._conn, [s for statements, _ in group for s in statements])
        except sqlite3.OperationalError:
            raise  # locked, full or unreadable: the same for every write of the group
        except Exception:
            if len(group) == 1:
                raise
            for statements, done in group:  # a write the database refuses takes only itself down
                try:
                    await self.conn._execute(_commit_group, self.conn._conn, statements)
                except Exception as error:
                    done.set_exception(error)
                else:
                    done.set_result(None)
            return
        for _, done in group:
            done.set_result(None)

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
                   new_versions: ChannelVersions) -> RunnableConfig:
        configurable = config["configurable"]
        kind, blob = self.serde.dumps_typed(checkpoint)
        meta = json.dumps(get_checkpoint_metadata(config, metadata), ensure_ascii=False).encode("utf-8", "ignore")
        await self._write([("INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
                            "parent_checkpoint_id, type, checkpoint, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (str(configurable["thread_id"]), configurable["checkpoint_ns"], checkpoint["id"],
                             configurable.get("checkpoint_id"), kind, blob, meta))])
        return {"configurable": {"thread_id": configurable["thread_id"], "checkpoint_ns": configurable["checkpoint_ns"],
                                 "checkpoint_id": checkpoint["id"]}}

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                          task_path: str = "") -> None:
        if not writes:
            return
        if len(writes) > ROWS_PER_STATEMENT:  # no task writes this many channels; keep the stock path for it
            await super().aput_writes(config, writes, task_id, task_path)
            return
        verb = "INSERT OR REPLACE" if all(w[0] in WRITES_IDX_MAP for w in writes) else "INSERT OR IGNORE"
        configurable = config["configurable"]
        params: list[Any] = []
        for idx, (channel, value) in enumerate(writes):
            params += [str(configurable["thread_id"]), str(configurable["checkpoint_ns"]),
                       str(configurable["checkpoint_id"]), task_id, task_path, WRITES_IDX_MAP.get(channel, idx),
                       channel, *self.serde.dumps_typed(value)]
        placeholders = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(writes))
        await self._write([(f"{verb} INTO writes ({COLUMNS}) VALUES {placeholders}", params)])


async def open_saver(db: str, lock_wait_s: float = LOCK_WAIT_S, *, worker: str | None = None,
                     lease_s: float | None = None) -> tuple[BaseCheckpointSaver, contextlib.AsyncExitStack]:
    """The run's checkpointer on its own connection to the run's database, set up; close it with the stack.
    `worker` (PostgreSQL): the worker its writes are checked against, by the topic leases it holds."""
    if is_postgres_url(db):
        from chimera.store.checkpoint_postgres import open_postgres_saver
        return await open_postgres_saver(db, worker=worker, lease_s=lease_s)
    stack = contextlib.AsyncExitStack()
    try:
        # Autocommit: no write transaction may stay open across an await, or the store's own
        # (synchronous) writes on the event-loop thread would wait on a lock the loop must release.
        conn = await stack.enter_async_context(aiosqlite.connect(db, isolation_level=None, timeout=lock_wait_s))
        # Same reasons as the store's connection: share the file, skip the per-commit fsync.
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute(f"PRAGMA busy_timeout={int(lock_wait_s * 1000)}")
        saver = AtomicWritesSaver(conn, serde=StrictSerializer())
        await saver.setup()
    except BaseException:
        await stack.aclose()  # the connection's worker thread would otherwise keep the process alive
        raise
    return saver, stack
