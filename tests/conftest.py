"""Fixtures: a simulator on a free loopback port; a throwaway PostgreSQL server; a guard that keeps every test on
this machine.

Which fake serves what: the project's own simulator (chimera.sim) is the model endpoint of nearly every test, over
real HTTP, in-process (`simulator` fixture, or a role with `provider: sim`) or in a thread that outlives a killed
run (tests/test_batches.py); `tests/hostile.py` puts a proxy in front of it that rewrites replies (malformed,
hostile, slow); `tests/stop_at.py` signals a run at an exact request; `tests/tcp_proxy.py` drops connections to
PostgreSQL; `tests/scripted.py` puts a transport that answers from a script (in order, each reply once, recording
every prompt; a call after the script is spent ends the test) behind a real role client, and builds the graph
`Deps` of a run answered by such clients (`scripted_deps`), for routing, grading and Stage 1 tests. None reaches
beyond loopback."""

from __future__ import annotations

import asyncio
import ipaddress
import multiprocessing
import os
import socket
import threading
import warnings

import pytest
from postgres_server import PostgresServer, binaries

from chimera.config import SimSettings
from chimera.sim import server as sim_server


def pytest_addoption(parser):
    parser.addoption("--busy-loops", type=int, default=0, metavar="N",
                     help="hold N cores with busy loops for the whole session (the multi-process tests under "
                          "starvation: pytest tests/test_postgres.py --busy-loops 2)")


def _spin() -> None:
    while True:
        pass


def pytest_configure(config):
    """--busy-loops N: N processes that hold a core each from before the first test to after the last (started
    once, by the process that runs the session, not by each xdist worker)."""
    if hasattr(config, "workerinput"):
        return
    config._busy_loops = [multiprocessing.Process(target=_spin, daemon=True)
                          for _ in range(config.getoption("busy_loops"))]
    for spinner in config._busy_loops:
        spinner.start()


def pytest_unconfigure(config):
    for spinner in getattr(config, "_busy_loops", []):
        spinner.kill()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Say so where xdist's groups are lost: each group's worker then starts its own PostgreSQL and vLLM server,
    which still passes but costs a minute or more (pytest 9.2 drops xdist's group suffix, pytest-xdist#1386)."""
    if getattr(config.option, "loadgroup", False):
        lost = [item.nodeid for item in items if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
        if lost:
            warnings.warn(pytest.PytestWarning(
                f"--dist loadgroup is not applied ({lost[0]} has no group): install the pytest pyproject.toml names"),
                stacklevel=1)


LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def _loopback(address: object) -> bool:
    """A socket address on this machine: a Unix socket, 127.0.0.0/8, ::1 or localhost."""
    if not isinstance(address, tuple):
        return True  # AF_UNIX paths
    host = str(address[0])
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def only_this_machine(monkeypatch):
    """No test reaches a real endpoint, or spends a real key: a connection off this machine is refused here (the
    tests' own subprocesses get no key either), and every *_API_KEY variable is cleared."""
    for name in [n for n in os.environ if n.endswith("_API_KEY")]:
        monkeypatch.delenv(name)
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded(method):
        def call(self, address, *rest):
            if not _loopback(address):
                raise ConnectionRefusedError(f"the tests reach only this machine, not {address!r}")
            return method(self, address, *rest)
        return call
    monkeypatch.setattr(socket.socket, "connect", guarded(connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(connect_ex))


@pytest.fixture
def simulator():
    """A simulator on a free loopback port, served from a background event loop thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def start(settings: SimSettings | None = None, seed: int = 0):
        future = asyncio.run_coroutine_threadsafe(sim_server.start(settings or SimSettings(), seed=seed), loop)
        runner, url, sim = future.result(10)
        started.append(runner)
        return url, sim

    started: list = []
    yield start
    for runner in started:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL server for this test process (tests that use it share an xdist group, so one process)."""
    bin_dir = binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run installs it)")
    server = PostgresServer(bin_dir)
    yield server
    server.close()
