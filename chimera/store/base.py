"""The connection every aggregate shares: opening (and refusing) a database, migrating it, transactions, and
the row helpers on the hot path."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlite_utils

from chimera.errors import ChimeraError
from chimera.store.schema import MIGRATIONS

LOCK_WAIT_S = 30.0  # how long a write waits for another process's lock before the command stops


def _connect(path: str, lock_wait_s: float = LOCK_WAIT_S) -> sqlite3.Connection:
    # check_same_thread off: an AsyncStore opens it on one thread and uses it on its own (one at a time).
    conn = sqlite3.connect(path, timeout=lock_wait_s, check_same_thread=False)
    # WAL lets the checkpointer's connection and ours share the file; NORMAL drops the per-commit fsync.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={int(lock_wait_s * 1000)}")
    return conn


def _connect_read_only(path: str) -> sqlite3.Connection:
    """Open without writing anything, not even WAL's shared-memory file where the folder is read-only."""
    uri = Path(path).resolve().as_uri()
    try:
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30.0, check_same_thread=False)
        conn.execute("select count(*) from sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)


class _DeferredCommits:
    """A connection whose `with conn:` blocks do not commit: the enclosing transaction does, once."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def __enter__(self) -> _DeferredCommits:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class StoreBase:
    """One run database, used by one thread at a time (code on an event loop goes through AsyncStore).

    `create=False`: the file must exist and be chimera's. `read_only=True` (implies create=False): opened
    read-only and never migrated; a database of a newer chimera, or not chimera's, is refused in one line.
    """

    def __init__(self, path: str | Path, *, create: bool = True, read_only: bool = False,
                 lock_wait_s: float = LOCK_WAIT_S):
        path = str(path)
        if (read_only or not create) and not Path(path).exists():
            raise ChimeraError(f"{path}: no such database")
        if not Path(path).parent.is_dir():
            raise ChimeraError(f"{path}: the folder {Path(path).parent} does not exist")
        try:
            conn = _connect_read_only(path) if read_only else _connect(path, lock_wait_s)
            self.db = sqlite_utils.Database(conn)
            applied = self._applied_migrations()
        except sqlite3.DatabaseError as error:
            raise ChimeraError(f"{path}: not a chimera database ({error})") from None
        self.path = path
        self.conn = self.db.conn
        self.read_only = read_only
        known = {name for name, _ in MIGRATIONS}
        newer = sorted(applied - known)
        if newer:
            raise ChimeraError(f"{path}: written by a newer chimera (schema step {newer[-1]}); upgrade chimera "
                               "to open it")
        if not applied and self.db.table_names():
            raise ChimeraError(f"{path}: not a chimera database (it has tables, but no chimera schema)")
        if read_only:
            missing = [name for name, _ in MIGRATIONS if name not in applied]
            if not applied:
                raise ChimeraError(f"{path}: holds no chimera schema yet (a run that is starting creates it); "
                                   "try again in a moment")
            if missing:
                raise ChimeraError(f"{path}: written by an older chimera (schema lacks {missing[0]}); run a writing "
                                   "command on it once (chimera run) to upgrade")
            return
        self.migrate()

    def _applied_migrations(self) -> set[str]:
        if "_migrations" not in self.db.table_names():
            return set()
        return {row[0] for row in self.db.execute("select name from _migrations").fetchall()}

    def migrate(self) -> list[str]:
        """Apply the missing schema steps, all in one transaction: a reader (chimera status while a run
        starts) sees the schema before or after, never half of it, and two writers upgrade it once."""
        if not ({name for name, _ in MIGRATIONS} - self._applied_migrations()):
            return []
        done = []
        with self.transaction(immediate=True):
            applied_table = self.db.table("_migrations")
            if not applied_table.exists():
                applied_table.create({"name": str, "applied_at": float}, pk="name")
            applied = self._applied_migrations()  # again, under the lock: another writer may have been first
            for name, step in MIGRATIONS:
                if name not in applied:
                    step(self.db)
                    self.conn.execute("insert into _migrations (name, applied_at) values (?, ?)",
                                      [name, time.time()])
                    done.append(name)
        return done

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self, *, immediate: bool = False) -> Iterator[None]:
        """Every write inside lands together or not at all (sqlite-utils commits per call otherwise).
        `immediate`: take the write lock first and hold DDL in the transaction too (Python's sqlite3 opens
        none for it by itself)."""
        real = self.db.conn
        if immediate:
            real.execute("BEGIN IMMEDIATE")
        deferred = _DeferredCommits(real)
        self.db.conn = self.conn = deferred  # type: ignore[assignment]
        try:
            yield
            real.commit()
        except BaseException:
            real.rollback()
            raise
        finally:
            self.db.conn = self.conn = real

    def _get(self, table: str, pk: str) -> dict[str, Any] | None:
        cursor = self.conn.execute(f"select * from [{table}] where id = ?", [pk])
        row = cursor.fetchone()
        return dict(zip([d[0] for d in cursor.description], row)) if row else None

    def _update(self, table: str, pk: str, fields: dict[str, Any]) -> None:
        sets = ", ".join(f"[{name}] = ?" for name in fields)
        with self.conn:
            self.conn.execute(f"update [{table}] set {sets} where id = ?", [*fields.values(), pk])

    def _upsert(self, table: str, row: dict[str, Any], keep: tuple[str, ...] = ("created_at",)) -> None:
        """Insert, or overwrite every column but `keep` (kept from the first write)."""
        names = list(row)
        columns = ", ".join(f"[{n}]" for n in names)
        updates = ", ".join(f"[{n}] = excluded.[{n}]" for n in names if n != "id" and n not in keep)
        with self.conn:
            self.conn.execute(
                f"insert into [{table}] ({columns}) values ({', '.join('?' * len(names))}) "
                f"on conflict(id) do update set {updates}", list(row.values()))

    def table_bytes(self) -> dict[str, int]:
        """Bytes per table, from SQLite's dbstat view when compiled in, else the payload sizes."""
        try:
            rows = self.db.execute("select name, sum(pgsize) from dbstat group by name").fetchall()
            return {name: size for name, size in rows}
        except sqlite3.OperationalError:
            return {}
