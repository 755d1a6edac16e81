"""The connection every aggregate shares: opening (and refusing) a database, migrating it, transactions, and
the row helpers on the hot path."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlite_utils

from chimera.errors import ChimeraError
from chimera.store.postgres import connect as connect_postgres
from chimera.store.postgres import is_postgres_url, shown_url
from chimera.store.schema import MIGRATIONS
from chimera.store.schema_postgres import MIGRATIONS as POSTGRES_MIGRATIONS
from chimera.store.storable import storable

LOCK_WAIT_S = 30.0  # how long a write waits for another process's lock before the command stops
MIGRATION_LOCK = 0x63686D72  # the advisory lock PostgreSQL migrations run under ("chmr")


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


class UnwritableDatabase(ChimeraError):
    """A database this process may read but not write: read-only commands can still open it."""


def write_blocker(path: Path) -> str | None:
    """Why this process cannot write the SQLite file at `path` (SQLite also writes beside it: its journal, or
    WAL's two files), or None when nothing visible stops it."""
    folder = path.parent
    with contextlib.suppress(OSError):
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "read-only file system"
    if path.exists() and not os.access(path, os.W_OK):
        return "no permission to write the file"
    if folder.is_dir() and not os.access(folder, os.W_OK):
        return f"no permission to write its folder {folder}, where SQLite keeps its journal"
    return None


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

    backend: str = "sqlite"

    def __init__(self, path: str | Path, *, create: bool = True, read_only: bool = False,
                 lock_wait_s: float = LOCK_WAIT_S):
        path = str(path)
        self.path = path
        self.read_only = read_only
        if is_postgres_url(path):
            self._open_postgres(path, read_only=read_only)
            return
        if (read_only or not create) and not Path(path).exists():
            raise ChimeraError(f"{path}: no such database")
        if not Path(path).parent.is_dir():
            raise ChimeraError(f"{path}: the folder {Path(path).parent} does not exist")
        try:
            conn = _connect_read_only(path) if read_only else _connect(path, lock_wait_s)
            self.db = sqlite_utils.Database(conn)
            self.conn = self.db.conn
            self._check_schema(self._applied_migrations(), MIGRATIONS)
        except sqlite3.OperationalError as error:
            # "attempt to write a readonly database", "unable to open database file": say which, not "not ours"
            blocker = None if read_only else write_blocker(Path(path))
            if blocker:
                raise UnwritableDatabase(f"cannot write to {path} ({blocker}); copy it somewhere writable, or use "
                                         "a read-only command (status, export, stats)") from None
            raise ChimeraError(f"{path}: not a chimera database ({error})") from None
        except sqlite3.DatabaseError as error:
            raise ChimeraError(f"{path}: not a chimera database ({error})") from None
        if not read_only:
            self.migrate()

    def _open_postgres(self, url: str, *, read_only: bool) -> None:
        self.backend = "postgres"
        self.conn = connect_postgres(url, read_only=read_only)  # type: ignore[assignment]
        try:
            self._check_schema(self._applied_migrations(), POSTGRES_MIGRATIONS)
            if not read_only:
                self.migrate()
        except BaseException:
            self.conn.close()
            raise

    @property
    def shown_path(self) -> str:
        """The database as messages name it (a URL's password left out)."""
        return shown_url(self.path)

    def _check_schema(self, applied: set[str], migrations: list[tuple[str, Any]]) -> None:
        path = self.shown_path
        known = {name for name, _ in migrations}
        newer = sorted(applied - known)
        if newer:
            raise ChimeraError(f"{path}: written by a newer chimera (schema step {newer[-1]}); upgrade chimera "
                               "to open it")
        # Read again before refusing: another process's migration may have committed between the two reads
        # (a worker starting beside `chimera run` on a new database sees no schema, then the schema's tables).
        if not applied and self._table_names():
            applied = self._applied_migrations()
            if not applied:
                raise ChimeraError(f"{path}: not a chimera database (it has tables, but no chimera schema)")
        if self.read_only:
            missing = [name for name, _ in migrations if name not in applied]
            if not applied:
                raise ChimeraError(f"{path}: holds no chimera schema yet (a run that is starting creates it); "
                                   "try again in a moment")
            if missing:
                raise ChimeraError(f"{path}: written by an older chimera (schema lacks {missing[0]}); run a writing "
                                   "command on it once (chimera run) to upgrade")

    def _table_names(self) -> list[str]:
        if self.backend == "postgres":
            return [row[0] for row in self.conn.execute(
                "select tablename from pg_tables where schemaname = current_schema()")]
        return self.db.table_names()

    def _applied_migrations(self) -> set[str]:
        if "_migrations" not in self._table_names():
            return set()
        return {row[0] for row in self.conn.execute("select name from _migrations").fetchall()}

    def migrate(self) -> list[str]:
        """Apply the missing schema steps, all in one transaction: a reader (chimera status while a run
        starts) sees the schema before or after, never half of it, and two writers upgrade it once."""
        migrations: list[tuple[str, Callable[[Any], None]]] = \
            POSTGRES_MIGRATIONS if self.backend == "postgres" else MIGRATIONS
        target: Any = self.conn if self.backend == "postgres" else self.db  # what a step of each list takes
        if not ({name for name, _ in migrations} - self._applied_migrations()):
            return []
        done = []
        with self.transaction(immediate=True):
            if self.backend == "postgres":
                # Several workers may start at once: the first migrates, the others wait here, then find it done.
                self.conn.execute("select pg_advisory_xact_lock(?)", [MIGRATION_LOCK])
                self.conn.execute("create table if not exists _migrations (name text primary key, "
                                  "applied_at double precision)")
            else:
                applied_table = self.db.table("_migrations")
                if not applied_table.exists():
                    applied_table.create({"name": str, "applied_at": float}, pk="name")
            applied = self._applied_migrations()  # again, under the lock: another writer may have been first
            for name, step in migrations:
                if name not in applied:
                    step(target)
                    self.conn.execute("insert into _migrations (name, applied_at) values (?, ?)",
                                      [name, time.time()])
                    done.append(name)
        return done

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def transaction(self, *, immediate: bool = False) -> Iterator[None]:
        """Every write inside lands together or not at all (sqlite-utils commits per call otherwise).
        `immediate`: take the write lock first and hold DDL in the transaction too (Python's sqlite3 opens
        none for it by itself)."""
        real = self.conn
        if isinstance(real, _DeferredCommits):  # already inside one: part of it
            yield
            return
        if self.backend == "postgres":
            with real.transaction():  # type: ignore[attr-defined]
                self.conn = _DeferredCommits(real)  # type: ignore[assignment]
                try:
                    yield
                finally:
                    self.conn = real
            return
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

    def _get(self, table: str, pk: str, key: str = "id") -> dict[str, Any] | None:
        rows = self._rows(table, f'"{key}" = ?', [pk])
        return rows[0] if rows else None

    def _rows(self, table: str, where: str | None = None, args: list[Any] | None = None,
              order_by: str | None = None) -> list[dict[str, Any]]:
        """Rows as dicts; `where` and `order_by` are SQL written by the store, never by a caller's data."""
        cursor = self.conn.execute(f'select * from "{table}"' + (f" where {where}" if where else "")
                                   + (f" order by {order_by}" if order_by else ""), args or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values)) for values in cursor.fetchall()]

    def _update(self, table: str, pk: str, fields: dict[str, Any], key: str = "id", only_if: str = "") -> int:
        """Set `fields` on the row; `only_if` (SQL written by the store) makes it conditional. Rows changed."""
        sets = ", ".join(f'"{name}" = ?' for name in fields)
        where = f'"{key}" = ?' + (f" and {only_if}" if only_if else "")
        with self.conn:
            return self.conn.execute(f'update "{table}" set {sets} where {where}',
                                     [*map(storable, fields.values()), pk]).rowcount

    def _upsert(self, table: str, row: dict[str, Any], keep: tuple[str, ...] = ("created_at",),
                key: tuple[str, ...] = ("id",)) -> None:
        """Insert, or overwrite every column but `keep` (kept from the first write)."""
        names = list(row)
        columns = ", ".join(f'"{n}"' for n in names)
        updates = ", ".join(f'"{n}" = excluded."{n}"' for n in names if n not in key and n not in keep)
        conflict = ", ".join(f'"{n}"' for n in key)
        with self.conn:
            self.conn.execute(
                f'insert into "{table}" ({columns}) values ({", ".join("?" * len(names))}) '
                f"on conflict ({conflict}) do " + (f"update set {updates}" if updates else "nothing"),
                [storable(v) for v in row.values()])

    def _insert_all(self, table: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        names = list(rows[0])
        columns = ", ".join(f'"{n}"' for n in names)
        with self.conn:
            self.conn.executemany(f'insert into "{table}" ({columns}) values ({", ".join("?" * len(names))})',
                                  [[storable(row[n]) for n in names] for row in rows])

    def table_bytes(self) -> dict[str, int]:
        """Bytes per table (with its indexes and TOAST on PostgreSQL), from SQLite's dbstat view when compiled
        in; {} where neither can tell."""
        if self.backend == "postgres":
            return {name: size for name, size in self.conn.execute(
                "select c.relname, pg_total_relation_size(c.oid) from pg_class c "
                "where c.relkind = 'r' and c.relnamespace = current_schema()::regnamespace")}
        try:
            rows = self.db.execute("select name, sum(pgsize) from dbstat group by name").fetchall()
            return {name: size for name, size in rows}
        except sqlite3.OperationalError:
            return {}
