"""Graph factories for LangGraph's own tooling (`langgraph.json`): `langgraph dev` serves them.

They read the run config named by CHIMERA_CONFIG; roles on the simulator need
CHIMERA_SIM_URL (start one with `chimera sim`). The server brings its own checkpointer.
"""

from __future__ import annotations

import os

from chimera.config import load_config
from chimera.errors import ConfigError
from chimera.graphs.deps import Deps
from chimera.graphs.taxonomy import build_taxonomy_graph
from chimera.graphs.topic import build_topic_graph
from chimera.dispatch import Endpoints
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


def make_topic_graph():
    return build_topic_graph(_deps()).compile()


def make_taxonomy_graph():
    return build_taxonomy_graph(_deps()).compile()
