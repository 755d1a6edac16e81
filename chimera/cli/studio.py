"""Graph factories for LangGraph's own tooling (`langgraph.json`): `langgraph dev` serves them.

They read the run config named by CHIMERA_CONFIG; roles on the simulator need
CHIMERA_SIM_URL (start one with `chimera sim`). The server brings its own checkpointer, and
its runs carry no context of ours, so the factory binds the run's `Deps` as the graph's default.
"""

from __future__ import annotations

import os
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from chimera.config import load_config
from chimera.dispatch import Endpoints
from chimera.errors import ConfigError
from chimera.graphs.deps import Deps, with_default_context
from chimera.graphs.taxonomy import build_taxonomy_graph
from chimera.graphs.topic import build_topic_graph
from chimera.llm import build_clients
from chimera.store import Store


def _deps() -> Deps:
    path = os.environ.get("CHIMERA_CONFIG")
    if not path:
        raise ConfigError("CHIMERA_CONFIG: set it to the run config the graphs should use")
    config = load_config(path)
    store = Store(config.run.db)
    clients = build_clients(config, endpoints=Endpoints(config.run.concurrency),
                            sim_url=os.environ.get("CHIMERA_SIM_URL"), log=store.log_call)
    return Deps(config=config, store=store, clients=clients)


def make_topic_graph() -> CompiledStateGraph[Any, Deps, Any, Any]:
    deps = _deps()
    return with_default_context(build_topic_graph(review=bool(deps.config.review.active)).compile(), deps)


def make_taxonomy_graph() -> CompiledStateGraph[Any, Deps, Any, Any]:
    return with_default_context(build_taxonomy_graph().compile(), _deps())
