"""A second chance for problem slots that failed (their calls ran out of retries): draft if needed, then
the same per-problem subgraph, in a thread of its own so the first attempt's checkpoints stay as they were."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph

from chimera.agents import drafter
from chimera.errors import CallFailed, ReplyError
from chimera.graphs.deps import Deps
from chimera.graphs.problem import ProblemInput, ProblemOutput, build_problem_graph


class RetryState(ProblemInput, ProblemOutput, total=False):
    drafted: bool


def build_retry_graph(deps: Deps) -> StateGraph:
    store = deps.store

    async def redraft(state: RetryState) -> dict[str, Any]:
        row = store.problem(state["problem_id"])
        if row["problem"]:
            return {"drafted": True}
        earlier = [p["draft_problem"] for p in store.problems(deps.run)
                   if p["topic_id"] == state["topic_id"] and p["slot"] < state["slot"] and p["draft_problem"]]
        ids = dict(id=state["problem_id"], run=deps.run, topic_id=state["topic_id"], subject=state["subject"],
                   topic=state["topic"], slot=state["slot"])
        try:
            drafted = await drafter.draft(deps.clients["drafter"], subject=state["subject"], topic=state["topic"],
                                          earlier=earlier, retries=deps.retries,
                                          context=deps.context(topic_id=state["topic_id"], problem_id=state["problem_id"]))
        except ReplyError as error:
            store.finish_problem(state["problem_id"], "rejected", f"drafter reply unparseable: {error.reason}")
            return {"drafted": False}
        except CallFailed as error:
            store.finish_problem(state["problem_id"], "failed", str(error))
            return {"drafted": False}
        store.save_draft(**ids, problem=drafted.problem, answer=drafted.answer)
        return {"drafted": True}

    graph = StateGraph(RetryState, input_schema=ProblemInput)
    graph.add_node("redraft", redraft)
    graph.add_node("problem", build_problem_graph(deps).compile())
    graph.add_edge(START, "redraft")
    graph.add_conditional_edges("redraft", lambda state: "problem" if state["drafted"] else END, ["problem", END])
    graph.add_edge("problem", END)
    return graph
