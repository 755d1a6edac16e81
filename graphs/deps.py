"""What graph nodes need from the outside world: the run's LangGraph context (never imported globally).

Graphs are compiled once, without them; each run hands its `Deps` to LangGraph as the run's context
(`graph.ainvoke(input, config, context=deps)`), and nodes read it from their `runtime` argument.

Every node that touches the store is `async def`: LangGraph runs sync nodes of an
async graph in a worker thread, and the store's SQLite connection belongs to the loop's thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from langgraph.config import get_config
from langgraph.runtime import Runtime

from chimera.config import Config
from chimera.embeddings import Embedder
from chimera.llm import RoleClient
from chimera.store import Store
from chimera.tools.dedup import ProblemIndex

G = TypeVar("G")


@dataclass
class Deps:
    config: Config
    store: Store
    clients: dict[str, RoleClient]
    index: ProblemIndex | None = None  # problems kept so far, for near-duplicate rejection
    index_loader: Callable[[], ProblemIndex | None] | None = None  # builds `index` when first needed
    embedder: Embedder | None = None  # topic dedup by embeddings; lexical similarity without one

    def problem_index(self) -> ProblemIndex | None:
        """The duplicate index, built on first use: a resumed run starts dispatching before it pays for it."""
        if self.index is None and self.index_loader is not None:
            self.index, self.index_loader = self.index_loader(), None
        return self.index

    @property
    def run(self) -> str:
        return self.config.run.name

    @property
    def retries(self) -> int:
        return self.config.parse_retries

    def context(self, **ids: Any) -> dict[str, Any]:
        """Ids attached to every logged model call, and the graph step it is made in (its place in
        the endpoint's queue: see chimera.dispatch)."""
        return {"run": self.run, "step": graph_step(), **ids}


def graph_step() -> int:
    """The LangGraph step of the node running now; 0 outside a graph."""
    try:
        return get_config()["metadata"].get("langgraph_step", 0)
    except RuntimeError:  # not inside a graph run
        return 0


_served: Deps | None = None  # a LangGraph server's runs carry no Deps: the graph factory names them once


def deps_of(runtime: Runtime[Deps]) -> Deps:
    if isinstance(runtime.context, Deps):
        return runtime.context
    if _served is not None:
        return _served
    raise RuntimeError("this graph needs its Deps as the run's context: graph.ainvoke(..., context=deps)")


def with_default_context(graph: G, deps: Deps) -> G:
    """Serve `graph` with `deps` for runs that bring no context (those a LangGraph server starts)."""
    global _served
    _served = deps
    return graph
