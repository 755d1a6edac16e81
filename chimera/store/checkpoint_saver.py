"""LangGraph's savers (SQLite, or PostgreSQL for a postgresql:// run), with each task's writes landing whole.

The run's saver connection is in autocommit mode: a transaction left open across an await would make the
store's own writes, on the event-loop thread, wait for a lock only the loop can release. Under autocommit
the stock `aput_writes` (`executemany`) commits row by row, so a full disk or a kill between two rows
leaves a task with some of its writes and not others. A resumed thread then takes the task for done and
may drop what it had sent on (its `Send`s), ending a topic with problems still pending. One multi-row
INSERT is one statement, so it lands whole or not at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import aiosqlite
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import WRITES_IDX_MAP, BaseCheckpointSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from chimera.store import LOCK_WAIT_S
from chimera.store.checkpoint_serde import StrictSerializer
from chimera.store.postgres import is_postgres_url

COLUMNS = "thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, value"
ROWS_PER_STATEMENT = 3000  # 9 parameters a row, under SQLite's 32,766 per statement


class AtomicWritesSaver(AsyncSqliteSaver):
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
        await self.setup()
        async with self.lock:
            await self.conn.execute(f"{verb} INTO writes ({COLUMNS}) VALUES {placeholders}", params)
            await self.conn.commit()


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
