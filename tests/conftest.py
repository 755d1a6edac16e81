"""Fixtures: a simulator on a free loopback port."""

from __future__ import annotations

import asyncio
import threading

import pytest

from chimera.config import SimSettings
from chimera.sim import server as sim_server


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
