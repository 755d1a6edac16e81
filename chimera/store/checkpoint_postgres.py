"""LangGraph's PostgreSQL saver for a run on a postgresql:// database: set up once however many workers start
together, each task's writes in one transaction, and (for a worker) every write checked against its leases."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import WRITES_IDX_MAP, ChannelVersions, Checkpoint, CheckpointMetadata, CheckpointTuple
from langgraph.checkpoint.postgres import _ainternal
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import AsyncConnection, errors
from psycopg.rows import DictRow, dict_row

from chimera.errors import ChimeraError
from chimera.store.base import MIGRATION_LOCK
from chimera.store.checkpoint_serde import StrictSerializer
from chimera.store.leases import worker_session_settings
from chimera.store.postgres import connection_lost, connection_settings, first_line, is_fenced, shown_url
from chimera.store.schema_postgres import CHECKPOINT_TABLES, FENCE_CHECKPOINTS

T = TypeVar("T")
SETUP_ATTEMPTS = 8
# What a setup() racing another process's gets (both create the same tables and indexes)
_RACE = (errors.UniqueViolation, errors.DuplicateTable, errors.DuplicateObject, errors.InFailedSqlTransaction,
         errors.DeadlockDetected)


class AtomicWritesPostgresSaver(AsyncPostgresSaver):
    """Each task's writes in one statement or transaction; and a connection the server ended (a restart, a
    failover, a session ended after this process stalled past its lease) opened again, with the call that met
    the loss made once more on it. Every write here is an upsert, so a write that landed before the loss
    lands the same again."""

    reopen: Callable[[], Awaitable[AsyncConnection[DictRow]]] | None = None
    _reopening: asyncio.Lock | None = None

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._on_a_live_connection(lambda: super(AtomicWritesPostgresSaver, self).aget_tuple(config))

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
                   new_versions: ChannelVersions) -> RunnableConfig:
        return await self._on_a_live_connection(
            lambda: super(AtomicWritesPostgresSaver, self).aput(config, checkpoint, metadata, new_versions))

    async def alist(self, config: RunnableConfig | None, **kwargs: Any) -> AsyncIterator[CheckpointTuple]:
        await self._reopen_if_closed()
        async for item in super().alist(config, **kwargs):
            yield item

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                          task_path: str = "") -> None:
        await self._on_a_live_connection(lambda: self._put_writes(config, writes, task_id, task_path))

    async def _on_a_live_connection(self, call: Callable[[], Awaitable[T]]) -> T:
        await self._reopen_if_closed()
        try:
            return await call()
        except Exception as error:
            if self.reopen is None or is_fenced(error) or not connection_lost(error):
                raise
        await self._reopen_if_closed(force=True)
        return await call()

    async def _reopen_if_closed(self, *, force: bool = False) -> None:
        if self.reopen is None or not (force or self.conn.closed):
            return
        self._reopening = self._reopening or asyncio.Lock()
        lost = self.conn
        async with self._reopening:
            if self.conn is lost:  # not already opened again by a call that met the same loss
                with contextlib.suppress(Exception):
                    await lost.close()
                self.conn = await self.reopen()

    async def _put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                          task_path: str) -> None:
        # The stock path sends the rows through a pipeline without a transaction around them: a kill between
        # two rows would leave a task with some of its writes (see checkpoint_saver on what that costs). And a
        # pipeline is what the server's idle-in-transaction timeout misses when a worker stops inside it.
        if not writes:
            return
        query = (self.UPSERT_CHECKPOINT_WRITES_SQL if all(w[0] in WRITES_IDX_MAP for w in writes)
                 else self.INSERT_CHECKPOINT_WRITES_SQL)
        configurable = config["configurable"]
        # serialized here, not on a thread: a task's writes are small, and the hop cost more than the work
        params = self._dump_writes(configurable["thread_id"], configurable["checkpoint_ns"],
                                   configurable["checkpoint_id"], task_id, task_path, writes)
        one_row = "VALUES (" + ", ".join(["%s"] * len(params[0])) + ")"
        async with self.lock, _ainternal.get_connection(self.conn) as conn:
            if one_row in query:  # one multi-row statement: it lands whole, in one round trip
                rows = "VALUES " + ", ".join([one_row.removeprefix("VALUES ")] * len(params))
                await conn.execute(query.replace(one_row, rows), [value for row in params for value in row])
                return
            async with conn.transaction(), conn.cursor(binary=True) as cursor:
                for row in params:  # not executemany: see PgConnection.executemany
                    await cursor.execute(query, row)


async def _set_up(saver: AsyncPostgresSaver, url: str) -> None:
    """The saver's tables, then the lease check on them, once however many processes start together.

    setup() fails when another process runs it at the same moment (duplicate tables, or a deadlock between the
    two), and cannot run under a lock (its CREATE INDEX CONCURRENTLY would wait on the lock's holder): skip what
    is already done, and retry the rest after a short random wait."""
    for attempt in range(SETUP_ATTEMPTS):
        try:
            if not await _saver_tables_current(url, len(saver.MIGRATIONS) - 1):
                await saver.setup()
            async with await AsyncConnection.connect(url, autocommit=True) as conn:
                fenced = await (await conn.execute(
                    "select count(*) from pg_trigger where tgname = 'fence' and tgrelid = any(%s::regclass[])",
                    [list(CHECKPOINT_TABLES)])).fetchone()
                if fenced and fenced[0] == len(CHECKPOINT_TABLES):
                    return
                async with conn.transaction():
                    await conn.execute("select pg_advisory_xact_lock(%s)", [MIGRATION_LOCK])
                    await conn.execute(FENCE_CHECKPOINTS)
            return
        except _RACE:
            if attempt == SETUP_ATTEMPTS - 1:
                raise
            await asyncio.sleep(random.uniform(0.05, 0.3) * (attempt + 1))


async def _saver_tables_current(url: str, latest: int) -> bool:
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        row = await (await conn.execute("select to_regclass('checkpoint_migrations') is not null")).fetchone()
        if not (row and row[0]):
            return False
        done = await (await conn.execute("select coalesce(max(v), -1) from checkpoint_migrations")).fetchone()
        return bool(done and done[0] >= latest)


async def open_postgres_saver(url: str, *, worker: str | None = None,
                              lease_s: float | None = None) -> tuple[AtomicWritesPostgresSaver, contextlib.AsyncExitStack]:
    """On one connection: a saver runs its calls one at a time in any case, and a pool's checkout cost more
    CPU per checkpoint than the rest of the write. A connection the server drops is opened again by the next
    call (see AtomicWritesPostgresSaver)."""
    stack = contextlib.AsyncExitStack()
    # autocommit: setup()'s CREATE INDEX CONCURRENTLY cannot run in a transaction; prepare_threshold=0: no
    # server-side prepared statements, which a PgBouncer in transaction mode would lose between statements.
    kwargs: dict[str, Any] = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row,
                              **connection_settings(url)}
    if worker:
        settings = worker_session_settings(worker, lease_s)
        kwargs["application_name"] = settings.pop("application_name")  # it holds a space: not an option
        kwargs["options"] = " ".join(f"-c {name}={value}" for name, value in settings.items())
    try:
        async def reopen() -> AsyncConnection[DictRow]:
            return cast("AsyncConnection[DictRow]", await AsyncConnection.connect(url, connect_timeout=10, **kwargs))
        saver = AtomicWritesPostgresSaver(await reopen(), serde=StrictSerializer())
        stack.push_async_callback(lambda: saver.conn.close())
        saver.reopen = reopen
        await _set_up(saver, url)
    except BaseException as error:
        await stack.aclose()
        if isinstance(error, Exception) and not isinstance(error, ChimeraError):
            raise ChimeraError(f"{shown_url(url)}: cannot set up the checkpoints ({first_line(error)})") from error
        raise
    return saver, stack
