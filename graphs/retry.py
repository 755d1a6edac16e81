"""A second chance for problem slots that failed (their calls ran out of retries): draft if needed, then
the same problem nodes, in a thread of its own so the first attempt's checkpoints stay as they were."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from chimera.graphs.deps import Deps, deps_of
from chimera.graphs.drafting import draft_slot
from chimera.graphs.problem import add_problem_flow
from chimera.graphs.tasks import ProblemInput, ProblemOutput, task_of


class RetryState(ProblemInput, ProblemOutput, total=False):
    drafted: bool
    revisions: int  # the round the slot had reached: its votes and its text are that round's


async def redraft(state: RetryState, *, runtime: Runtime[Deps]) -> dict[str, Any]:
    deps = deps_of(runtime)
    row = await deps.store.problem(state["problem_id"])
    if row["problem"]:
        return {"drafted": True, "revisions": row["revisions"] or 0}
    ok = await draft_slot(deps, problem_id=state["problem_id"], topic_id=state["topic_id"],
                          subject=state["subject"], topic=state["topic"], slot=state["slot"])
    return {"drafted": ok}


def build_retry_graph(*, review: bool = False) -> StateGraph[RetryState, Deps, ProblemInput, RetryState]:
    graph = StateGraph(RetryState, context_schema=Deps, input_schema=ProblemInput)
    graph.add_node("redraft", redraft)
    entry = add_problem_flow(graph, review=review)
    graph.add_edge(START, "redraft")
    graph.add_conditional_edges("redraft", lambda state: [Send(entry, {**task_of(state),
                                                                       "revisions": state.get("revisions", 0)})]
                                if state["drafted"] else END, [entry, END])
    return graph
