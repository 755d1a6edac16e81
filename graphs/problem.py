"""The per-problem flow, wired: which node follows which. The nodes live by stage:

    validate ─┬─ revise ─> validate             graphs/validate.py (both critics, the decision, dedup)
              ├─ solve ─┬─ commit               graphs/solve.py (k trajectories, labels, commit)
              │         └─ review ─> ...        graphs/review.py (only with a review policy)
              └─ reject | fail (or review first)

Each problem is its own `Send` branch of the host graph: its small routing state travels in the
branch's payload (graphs/tasks.py), and each node names the next with `Command(goto=Send(...))`. One
host step (and one checkpoint) then carries the work of every problem of a topic that is at that stage,
instead of a subgraph with its own checkpoints per problem. Nodes get the store, clients and config from
the run's LangGraph context (`ainvoke(..., context=deps)`).
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import START, StateGraph
from langgraph.types import Send

from chimera.agents.critic import answer_matches
from chimera.graphs.deps import Deps
from chimera.graphs.review import review
from chimera.graphs.solve import solve
from chimera.graphs.tasks import ProblemInput, ProblemOutput, ProblemTask, task_of
from chimera.graphs.validate import revise, validate


def add_problem_nodes(graph: StateGraph[Any, Any, Any, Any]) -> None:
    """Add the per-problem nodes to `graph`, whose state must have an `outcomes` list channel.
    Start a problem with `Send("validate", task)`."""
    graph.add_node("validate", validate, destinations=("solve", "revise", "review"))
    graph.add_node("revise", revise, destinations=("validate", "review"))
    graph.add_node("solve", solve, destinations=("review",))
    graph.add_node("review", review, destinations=("solve", "revise", "validate"))


class ProblemGraphState(ProblemInput, ProblemOutput):
    pass


def add_problem_flow(graph: StateGraph[Any, Any, Any, Any], *, review: bool) -> str:
    """Add the problem flow to a host graph; returns the node to `Send` each problem's task to.

    Without review the nodes are the host's own: one host step and one checkpoint carry every problem at
    that stage. With a review policy, each problem runs as a subgraph inside a single host step: an
    interrupt stops the host after the step it happens in, and a problem inlined beside it would wait
    there too, although no human needs to see it.
    """
    if review:
        graph.add_node("problem", build_problem_graph().compile())
        return "problem"
    add_problem_nodes(graph)
    return "validate"


def build_problem_graph() -> StateGraph[ProblemGraphState, Deps, ProblemInput, ProblemOutput]:
    """One problem on its own: the input names a drafted problem in the store."""
    graph = StateGraph(ProblemGraphState, context_schema=Deps, input_schema=ProblemInput,
                       output_schema=ProblemOutput)
    add_problem_nodes(graph)
    graph.add_conditional_edges(START, lambda state: [Send("validate", task_of(state))], ["validate"])
    return graph


__all__ = ["ProblemInput", "ProblemOutput", "ProblemTask", "add_problem_flow", "add_problem_nodes",
           "answer_matches", "build_problem_graph", "task_of"]
