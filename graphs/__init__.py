"""LangGraph wiring only. Builders return uncompiled graphs so callers choose the checkpointer."""

from chimera.graphs.problem import build_problem_graph
from chimera.graphs.taxonomy import build_taxonomy_graph
from chimera.graphs.topic import build_topic_graph

__all__ = ["build_problem_graph", "build_taxonomy_graph", "build_topic_graph"]
