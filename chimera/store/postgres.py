"""A run database on PostgreSQL: URLs, the connection the aggregates' SQL runs on, and its schema.

The aggregate modules write their SQL once, in the dialect both backends read: `?` parameters, `"name"`
quoting, `on conflict (...) do ...`, `returning`. `PgConnection` gives a psycopg connection the
`execute` / `with conn:` shape of `sqlite3.Connection` and turns `?` into psycopg's `%s`.

The connection is in autocommit mode, so each statement lands (or not) on its own, and a read never leaves a
transaction idle (which would hold back another process's `CREATE INDEX CONCURRENTLY`, the checkpointer's
setup, and vacuum). `with conn:`, which commits a statement on SQLite, is nothing more here: a BEGIN and a
COMMIT would be two more round trips for every write. Writes of several statements go through the store's
`transaction()`, on both backends; `executemany` is one transaction by itself.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from chimera.errors import ChimeraError

URL_SCHEMES = ("postgresql://", "postgres://")
FENCE_SQLSTATE = "CH001"  # raised by the lease check when a worker writes for a topic it no longer holds


class DatabaseUnreachable(ChimeraError):
    """A PostgreSQL server that refused or did not answer a new connection (down, restarting, cut off)."""


def is_postgres_url(db: str | os.PathLike[str]) -> bool:
    return isinstance(db, str) and db.startswith(URL_SCHEMES)


def shown_url(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def url_has_password(url: str) -> bool:
    return urlsplit(url).password is not None or re.search(r"[?&]password=", url) is not None


@functools.lru_cache(maxsize=1024)  # the store's statements are a few hundred texts, each run many times
def to_psycopg(sql: str) -> str:
    """`?` parameters as psycopg's `%s` (a literal `%` doubled). The store's SQL has no `?` inside strings."""
    return sql.replace("%", "%%").replace("?", "%s")


class Rows:
    """A statement's whole answer, read at once (psycopg reads it all into memory in any case): the cursor
    surface the store uses, so that one cursor serves every statement (a new cursor per statement cost a
    third of a round trip's CPU)."""

    def __init__(self, cursor: Any):
        self.description = cursor.description
        self.rowcount = cursor.rowcount
        self._rows = cursor.fetchall() if cursor.description is not None else []
        self._next = 0

    def fetchone(self) -> Any:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[Any]:
        rest, self._next = self._rows[self._next:], len(self._rows)
        return rest

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PgConnection:
    """A psycopg connection with the surface the store uses of sqlite3's.

    A connection the server dropped (a restart, or a session it ended for idling inside a transaction) is
    opened again, with the same session settings, by the next call made outside a transaction; the call
    that met the drop fails with its error.
    """

    def __init__(self, open_connection: Callable[[], Any]):
        self._open = open_connection
        self._conn = open_connection()
        self._cursor = self._conn.cursor()
        self._transactions: list[Any] = []
        self._settings: dict[str, str] = {}

    def _live(self) -> Any:
        if self._conn.closed and not self._transactions:
            self._conn = self._open()
            self._cursor = self._conn.cursor()
            for name, value in self._settings.items():
                self._conn.execute("select set_config(%s, %s, false)", [name, value])
        return self._conn

    def set(self, name: str, value: str) -> None:
        """A session setting, kept across a reconnection."""
        self._settings[name] = value
        self._live().execute("select set_config(%s, %s, false)", [name, value])

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        self._live()
        return Rows(self._cursor.execute(to_psycopg(sql), list(params)))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        # One statement at a time, not psycopg's executemany: that sends them as a pipeline, and a session that
        # stops between a pipeline's statements is not ended by the server's idle-in-transaction timeout.
        with self.transaction():
            for row in rows:
                self.execute(sql, row)

    def __enter__(self) -> PgConnection:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together; inside another transaction, it is part of that one."""
        if self._transactions:
            yield
            return
        # (psycopg's pipeline mode, tried here, cost more client CPU than the round trips it saves)
        transaction = self._live().transaction()
        self._transactions.append(transaction)
        try:
            with transaction:
                yield
        finally:
            self._transactions.pop()

    def close(self) -> None:
        self._conn.close()

    @property
    def raw(self) -> Any:
        return self._live()


# A peer that vanished without a word (a network cut, a failed-over host) is found by TCP keepalives within about
# a minute, instead of a call waiting on it forever; a URL's own settings win.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
              "tcp_user_timeout": 60_000}


def connection_settings(url: str) -> dict[str, Any]:
    """KEEPALIVES, less what `url` sets itself."""
    return {name: value for name, value in KEEPALIVES.items() if f"{name}=" not in url}


def connect(url: str, *, read_only: bool = False, connect_timeout_s: float = 10) -> PgConnection:
    """One autocommit connection (a worker names itself to the lease check with `Store.act_as`)."""
    try:
        import psycopg
        from psycopg.types.numeric import FloatLoader
    except ImportError:
        raise ChimeraError("a postgresql:// database needs the postgres extra: pip install 'chimera-engine[postgres]'") \
            from None
    options = "-c default_transaction_read_only=on" if read_only else None

    def open_connection() -> Any:
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=int(connect_timeout_s), options=options,
                                   **connection_settings(url))
        except psycopg.Error as error:
            raise DatabaseUnreachable(f"{shown_url(url)}: cannot connect ({first_line(error)})") from None
        # sum() and avg() of integers are numeric in PostgreSQL: read them as the floats SQLite gives
        conn.adapters.register_loader("numeric", FloatLoader)
        return conn
    return PgConnection(open_connection)


def create_database(server_url: str, name: str) -> str:
    """A new, empty database `name` on the server of `server_url` (dropped first if it exists); its URL."""
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    except psycopg.Error as error:
        raise ChimeraError(f"{shown_url(server_url)}: cannot create database {name} ({first_line(error)})") from None
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


# Sessions the server ends with an error outside the OperationalError class: idling inside a transaction past
# idle_in_transaction_session_timeout (25P03), and past transaction_timeout (25P04, PostgreSQL 17).
SESSION_ENDED_SQLSTATES = frozenset({"25P03", "25P04"})


def connection_lost(error: BaseException) -> bool:
    """A lost or refused PostgreSQL connection (a restart, a network cut, a session the server ended)."""
    if isinstance(error, DatabaseUnreachable):
        return True
    try:
        import psycopg
    except ImportError:
        return False
    return isinstance(error, psycopg.OperationalError) or getattr(error, "sqlstate", None) in SESSION_ENDED_SQLSTATES


def is_fenced(error: BaseException) -> bool:
    """A write refused by the lease check, anywhere in an exception's chain."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "sqlstate", None) == FENCE_SQLSTATE:
            return True
        current = current.__cause__ or current.__context__
    return False
