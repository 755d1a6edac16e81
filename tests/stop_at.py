"""Stopping a run at an exact point: the moment a chosen request reaches its endpoint, not wherever a poll of
the database happens to find it. The endpoint is the real simulator behind the hostile proxy."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from aiohttp import web
from helpers import CHIMERA
from hostile import HostileEndpoint, Mischief, echo_error, passthrough

from chimera.config import SimSettings
from chimera.sim.oracle import schema_name

Trigger = Callable[[dict[str, Any]], bool]  # a request body -> whether the run stops at it


class StopAt:
    """The endpoint of a run that is sent a signal when the first request `when` picks arrives. For a signal that
    ends the run, that request is held unanswered until the run has exited, so nothing it would start happens;
    a stopped run (SIGSTOP) finds its reply waiting when it is continued."""

    def __init__(self, sim: SimSettings | None = None, *, seed: int = 0, mischief: Mischief = passthrough):
        self._endpoint = HostileEndpoint(mischief, sim, seed=seed, arrival=self._arrived)
        self._when: Trigger | None = None
        self._process: subprocess.Popen[str] | None = None
        self._signal: int = signal.SIGKILL
        self.signalled = threading.Event()
        self.stopped_at: dict[str, Any] | None = None  # the body of the request the run was signalled at

    def __enter__(self) -> StopAt:
        self._endpoint.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._endpoint.__exit__(*exc)

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self._endpoint.requests

    def models(self) -> dict[str, Any]:
        """A config's `models`: every role on this endpoint."""
        return {"default": {"provider": "openai", "base_url": self._endpoint.url, "model": "sim", "timeout_s": 30,
                            "max_retries": 1}}

    def start(self, args: list[str], when: Trigger, sig: int = signal.SIGKILL,
              stderr: IO[str] | int = subprocess.PIPE) -> subprocess.Popen[str]:
        """`chimera ARGS`, started, to be sent `sig` at the first request `when` picks."""
        self._when, self._signal, self.stopped_at = when, sig, None
        self.signalled.clear()
        # A shell starts background jobs with SIGINT ignored, and Python then installs no KeyboardInterrupt
        # handler: give the child the disposition a terminal's foreground process has, wherever pytest runs.
        self._process = subprocess.Popen([CHIMERA, *args], stdout=subprocess.DEVNULL, stderr=stderr, text=True,
                                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        return self._process

    def run(self, args: list[str], when: Trigger, sig: int = signal.SIGKILL,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`chimera ARGS` to its end, sent `sig` on the way; fails if it ends before the request to stop at."""
        process = self.start(args, when, sig)
        try:
            _, stderr = process.communicate(timeout=timeout)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert self.signalled.is_set(), f"the run ended before the request to stop at arrived:\n{stderr}"
        return subprocess.CompletedProcess(process.args, process.returncode, "", stderr)

    async def _arrived(self, body: dict[str, Any]) -> web.StreamResponse | None:
        process = self._process
        if process is None or self._when is None or self.signalled.is_set() or not self._when(body):
            return None
        self.stopped_at = body
        process.send_signal(self._signal)
        self.signalled.set()
        if self._signal == signal.SIGSTOP:
            return None
        while process.poll() is None:
            await asyncio.sleep(0.01)
        return echo_error(503, "the run was stopped")


def asks_for(schema: str) -> Trigger:
    """Requests for replies of this schema (CriticVerdict, LabelVerdict, TopicList, ...)."""
    return lambda body: schema_name(body) == schema


def counted(db: Path, count_sql: str, at_least: int) -> Trigger:
    """Any request that arrives once `count_sql` on `db` has reached `at_least`."""
    return lambda body: count(db, count_sql) >= at_least


def count(db: Path, sql: str) -> int:
    """`sql`'s count on `db`, 0 while the run has not made the file or its tables; never creates the file."""
    with contextlib.suppress(sqlite3.OperationalError):
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            return int(conn.execute(sql).fetchone()[0])
    return 0
