"""The one place a command starts the simulator: for as long as a block runs, and only when a role it uses
points at it. Clients themselves are built by chimera.models.llm (chat roles) and chimera.models.embeddings."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable

from chimera.config import Config, ModelSpec, SimSettings
from chimera.sim import server as sim_server


@contextlib.asynccontextmanager
async def simulator(settings: SimSettings, *, seed: int, host: str = "127.0.0.1",
                    port: int = 0) -> AsyncIterator[str]:
    """The simulator's base URL while the block runs (port 0: a free one)."""
    runner, url, _ = await sim_server.start(settings, seed=seed, host=host, port=port)
    try:
        yield url
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def simulator_for(config: Config, specs: Iterable[ModelSpec | None]) -> AsyncIterator[str | None]:
    """The simulator's URL when any of `specs` is on it, else None."""
    if not any(spec is not None and spec.provider == "sim" for spec in specs):
        yield None
        return
    async with simulator(config.sim, seed=config.run.seed) as url:
        yield url
