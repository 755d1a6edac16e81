"""A second chance for problem slots that failed (their calls ran out of retries): draft if needed, then
the same problem nodes, in a thread of its own so the first attempt's checkpoints stay as they were."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from chimera.graphs.deps import Deps
from chimera.graphs.drafting import draft_slot
from chimera.graphs.problem import ProblemInput, ProblemOutput, add_problem_flow, task_of


class RetryState(ProblemInput, ProblemOutput, total=False):
    drafted: bool


def build_retry_graph(deps: Deps) -> StateGraph:
    store = deps.store

    async def redraft(state: RetryState) -> dict[str, Any]:
        if store.problem(state["problem_id"])["problem"]:
            return {"drafted": True}
        ok = await draft_slot(deps, problem_id=state["problem_id"], topic_id=state["topic_id"],
                              subject=state["subject"], topic=state["topic"], slot=state["slot"])
        return {"drafted": ok}

    graph = StateGraph(RetryState, input_schema=ProblemInput)
    graph.add_node("redraft", redraft)
    entry = add_problem_flow(graph, deps)
    graph.add_edge(START, "redraft")
    graph.add_conditional_edges("redraft", lambda state: [Send(entry, task_of(state))] if state["drafted"]
                                else END, [entry, END])
    return graph
