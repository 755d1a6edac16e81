"""What graph nodes need from the outside world: the run's LangGraph context (never imported globally).

Graphs are compiled once, without them; each run hands its `Deps` to LangGraph as the run's context
(`graph.ainvoke(input, config, context=deps)`), and nodes read it from their `runtime` argument.

Every node that touches the store is `async def` and awaits it: a database round trip runs on the store's own
thread, never on the loop. The graphs see only `GraphStore`, the methods they call (`AsyncStore.for_graphs`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from langgraph.config import get_config
from langgraph.pregel import Pregel
from langgraph.runtime import Runtime
from typing_extensions import TypedDict  # pydantic reads these as schemas; on 3.11 only this kind works

from chimera.config import Config
from chimera.ids import attempt_of
from chimera.models.embeddings import Embedder
from chimera.models.llm import RoleClient
from chimera.store.graph_store import GraphStore
from chimera.store.kept_replies import KeptReplies
from chimera.tools.dedup import ProblemIndex

G = TypeVar("G")
AnyGraph = Pregel[Any, Any, Any, Any]


@dataclass
class Deps:
    config: Config
    store: GraphStore
    clients: dict[str, RoleClient]
    index: ProblemIndex | None = None  # problems kept so far, for near-duplicate rejection
    index_loader: Callable[[], Awaitable[ProblemIndex | None]] | None = None  # builds `index` when first needed
    embedder: Embedder | None = None  # topic dedup by embeddings; lexical similarity without one
    kept: KeptReplies | None = None  # the replies a resumed thread is answered from (runner.open_deps)

    @property
    def shared(self) -> bool:
        """The run's database is PostgreSQL, which other workers may be writing at the same time."""
        return self.store.backend == "postgres"

    async def problem_index(self) -> ProblemIndex | None:
        """The duplicate index, built on first use: a resumed run starts dispatching before it pays for it."""
        if self.index is None and self.index_loader is not None:
            loaded = await self.index_loader()
            if self.index is None:  # the first of several concurrent first uses installs it
                self.index, self.index_loader = loaded, None
        return self.index

    @property
    def run(self) -> str:
        return self.config.run.name

    @property
    def parse_retries(self) -> int:
        """How many more times an agent asks for a reply it could not parse (the config's `parse_retries`)."""
        return self.config.parse_retries

    def context(self, **ids: Any) -> dict[str, Any]:
        """Ids attached to every logged model call, the graph step it is made in (its place in the endpoint's
        queue: see chimera.models.dispatch), and in a retry thread which retry it is: a retry asks again on purpose
        (what failed, or a reply that could not be used), so its requests are not the first attempt's."""
        attempt = attempt_of(_thread_id())
        return {"run": self.run, "step": graph_step(), **({"attempt": attempt} if attempt else {}), **ids}


def _thread_id() -> str:
    try:
        return str(get_config()["configurable"].get("thread_id", ""))
    except RuntimeError:  # not inside a graph run
        return ""


NESTED_STEPS = 10_000  # more steps than a topic's graph takes before its problems start


def graph_step() -> int:
    """How far the node running now is in its thread: its LangGraph step, 0 outside a graph. A subgraph (a
    problem's flow under a review policy) counts its steps from 1 again, inside one step of its host that
    comes after the host's drafting, so its steps rank after every host step."""
    try:
        config = get_config()
    except RuntimeError:  # not inside a graph run
        return 0
    depth = str(config["configurable"].get("checkpoint_ns", "")).count("|")
    return config["metadata"].get("langgraph_step", 0) + NESTED_STEPS * depth


class ServedContext(TypedDict):
    """What a run started through a LangGraph server brings as its context: nothing. The server's graph factory
    names the run's `Deps` once (`with_default_context`); a `Deps` holds live objects (the store, the clients),
    which neither a request can carry nor the server describe as a JSON schema."""


_served: Deps | None = None  # a LangGraph server's runs carry no Deps: the graph factory names them once


def deps_of(runtime: Runtime[Deps]) -> Deps:
    if isinstance(runtime.context, Deps):
        return runtime.context
    if _served is not None:
        return _served
    raise RuntimeError("this graph needs its Deps as the run's context: graph.ainvoke(..., context=deps)")


def with_default_context(graph: G, deps: Deps) -> G:
    """Serve `graph` with `deps` for runs that bring no context of ours (those a LangGraph server starts).

    The graph and every subgraph in it (a review policy's per-problem graph) declare `ServedContext`: the server
    draws its schemas from these (Studio's forms, /assistants/{id}/schemas and /subgraphs), and LangGraph would
    build a `Deps` from a run's JSON context were `Deps` declared."""
    global _served
    _served = deps
    compiled = cast(AnyGraph, graph)
    for served in (compiled, *(cast(AnyGraph, sub) for _, sub in compiled.get_subgraphs(recurse=True))):
        served.context_schema = ServedContext
    return graph
