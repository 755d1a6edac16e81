"""Fixtures: a simulator on a free loopback port; a throwaway PostgreSQL server."""

from __future__ import annotations

import asyncio
import multiprocessing
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
