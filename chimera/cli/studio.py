"""What `langgraph.json` names for LangGraph's own tooling (`langgraph dev`): the graph factories and the HTTP app.

They read the run config named by CHIMERA_CONFIG; roles on the simulator need CHIMERA_SIM_URL (start one
with `chimera sim`). The server brings its own checkpointer, and its runs carry no context of ours, so the
run's store and clients are opened once, the run recorded, and they are bound as every served graph's
default context. The app (with the guard of chimera.cli.server_guard) opens them as the server starts, and
answers a `ChimeraError` raised while serving (no config, a bad one, a database it cannot open) with its one
line, in the reply's `detail` and in the server's log, instead of a bare 500 and a traceback; a request that
would start a run is answered so before it is queued (the server's worker would hide the message). Each factory is an
async context manager: the server awaits it, so opening the database never blocks its event loop.
`langgraph.json` names all three by module, not by file: the server loads a file once per name in it, and
each copy of this module would open the run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chimera.cli.server_guard import OwnUserOnly
from chimera.config import load_config
from chimera.engine.runner import open_deps
from chimera.errors import ChimeraError, ConfigError
from chimera.graphs.deps import Deps, with_default_context
from chimera.graphs.taxonomy import build_taxonomy_graph
from chimera.graphs.topic import build_topic_graph
from chimera.models.dispatch import Endpoints
from chimera.store import Store
from chimera.store.nonblocking import AsyncStore

log = logging.getLogger("chimera.studio")
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
            try:
                await store.run(Store.save_run, config.run.name, config.redacted())
                # Open for the server's life: the same clients, embedder and duplicate index as `chimera run`.
                _opened = await open_deps(config, store, Endpoints(config.run.concurrency),
                                          os.environ.get("CHIMERA_SIM_URL"), contextlib.AsyncExitStack())
            except BaseException:
                await store.aclose()
                raise
        return _opened


@contextlib.asynccontextmanager
async def make_topic_graph() -> AsyncIterator[Graph]:
    deps = await served_deps()
    yield with_default_context(build_topic_graph(review=bool(deps.config.review.active)).compile(), deps)


@contextlib.asynccontextmanager
async def make_taxonomy_graph() -> AsyncIterator[Graph]:
    yield with_default_context(build_taxonomy_graph().compile(), await served_deps())


@contextlib.asynccontextmanager
async def open_at_startup(_: Starlette) -> AsyncIterator[None]:
    """Open the served run as the server starts (its lifespan): a missing or bad config shows in the log at
    once, as one line, and the first request does not wait for the database. The server starts either way;
    every request that needs a graph then tries again and answers what is wrong."""
    try:
        await served_deps()
    except ChimeraError as error:
        log.error("the graphs cannot be served: %s", error)
    yield


def unavailable(method: str, path: str, error: ChimeraError) -> Response:
    """What cannot be served: 503 with the error's line as `detail` (what langgraph-sdk raises as its error's
    message), and the same line in the log."""
    log.error("%s %s: %s", method, path, error)
    return JSONResponse({"detail": str(error)}, status_code=503)


async def one_line_error(request: Request, error: Exception) -> Response:
    """A `ChimeraError` a route raised (a graph factory's)."""
    assert isinstance(error, ChimeraError)
    return unavailable(request.method, request.url.path, error)


STARTS_A_RUN = re.compile(r"^(?:/threads/[^/]+)?/runs(?:/(?:stream|wait|batch|crons))?/?$")


class RunOpenedFirst:
    """ASGI middleware: a request that would start a run (or schedule one) first needs the served run open. The
    server builds a run's graph in its worker, where an error reaches the client as "An internal error
    occurred" and the log as a traceback, so what is wrong is answered here, before the run is queued."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST" and STARTS_A_RUN.match(scope.get("path", "")):
            try:
                await served_deps()
            except ChimeraError as error:
                await unavailable(scope["method"], scope["path"], error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


app = Starlette(middleware=[Middleware(OwnUserOnly), Middleware(RunOpenedFirst)],
                exception_handlers={ChimeraError: one_line_error}, lifespan=open_at_startup)
