"""LangGraph wiring and nodes, one module per stage. Builders return uncompiled graphs so callers choose the checkpointer."""

if __name__ != "chimera.graphs":  # run from the repository root, `import graphs` would load a second copy
    raise ImportError("this folder is the package chimera.graphs: import chimera.graphs, not graphs")

from chimera.graphs.problem import build_problem_graph
from chimera.graphs.taxonomy import build_taxonomy_graph
from chimera.graphs.topic import build_topic_graph

__all__ = ["build_problem_graph", "build_taxonomy_graph", "build_topic_graph"]
