"""Graph factories for LangGraph's own tooling (`langgraph.json`): `langgraph dev` serves them.

They read the run config named by CHIMERA_CONFIG; roles on the simulator need CHIMERA_SIM_URL (start one
with `chimera sim`). The server brings its own checkpointer, and its runs carry no context of ours, so the
first graph asked for opens the run's store and clients once, records the run, and binds them as every
served graph's default context. Each factory is an async context manager: the server awaits it, so opening
the database never blocks its event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from chimera.config import load_config
from chimera.dispatch import Endpoints
from chimera.errors import ConfigError
from chimera.graphs.deps import Deps, with_default_context
from chimera.graphs.taxonomy import build_taxonomy_graph
from chimera.graphs.topic import build_topic_graph
from chimera.runner import open_deps
from chimera.store.nonblocking import AsyncStore

Graph = CompiledStateGraph[Any, Deps, Any, Any]
_opened: Deps | None = None
_opening = asyncio.Lock()


async def served_deps() -> Deps:
    """The server's one `Deps`: the run of CHIMERA_CONFIG, recorded in its database as a run."""
    global _opened
    async with _opening:
        if _opened is None:
            path = os.environ.get("CHIMERA_CONFIG")
            if not path:
                raise ConfigError("CHIMERA_CONFIG: set it to the run config the graphs should use")
            config = await asyncio.to_thread(load_config, path)
            store = await AsyncStore.open(config.run.db, lock_wait_s=config.run.lock_wait_s)
            await store.save_run(config.run.name, config.redacted())
            # Open for the server's life: the same clients, embedder and duplicate index as `chimera run`.
            _opened = await open_deps(config, store, Endpoints(config.run.concurrency),
                                      os.environ.get("CHIMERA_SIM_URL"), contextlib.AsyncExitStack())
        return _opened


@contextlib.asynccontextmanager
async def make_topic_graph() -> AsyncIterator[Graph]:
    deps = await served_deps()
    yield with_default_context(build_topic_graph(review=bool(deps.config.review.active)).compile(), deps)


@contextlib.asynccontextmanager
async def make_taxonomy_graph() -> AsyncIterator[Graph]:
    yield with_default_context(build_taxonomy_graph().compile(), await served_deps())
