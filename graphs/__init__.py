"""LangGraph wiring and nodes, one module per stage. Builders return uncompiled graphs so callers choose the checkpointer."""

from chimera.graphs.problem import build_problem_graph
from chimera.graphs.taxonomy import build_taxonomy_graph
from chimera.graphs.topic import build_topic_graph

__all__ = ["build_problem_graph", "build_taxonomy_graph", "build_topic_graph"]

if __name__ == "graphs":  # imported by folder name from a checkout: use the installed package
    from chimera.checkout_aliases import alias

    alias("graphs")
