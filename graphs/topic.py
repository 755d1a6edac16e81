"""The per-topic graph: draft every slot in order, then validate and solve them all side by side.

Slot k's drafter sees the first drafts of slots before k, so drafting is
sequential and deterministic; each drafted problem then runs the problem nodes
(graphs/problem.py) as its own `Send` branch, so a topic keeps several calls in
flight and a resumed run re-runs only the branches that had not finished. After
every step that ran a problem node, `finished` looks whether each drafted problem
has its outcome (a problem waiting for review has none yet); the first time all
have, it marks the topic done, however the thread was run: by `chimera run` or
through a LangGraph server.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send
from typing_extensions import TypedDict  # pydantic reads these as schemas; on 3.11 only this kind works

from chimera.graphs.deps import Deps, deps_of
from chimera.graphs.drafting import draft_slot
from chimera.graphs.problem import add_problem_flow
from chimera.graphs.tasks import Outcome
from chimera.ids import problem_id
from chimera.store.graph_store import GraphStore
from chimera.store.kept_replies import KeptReplies


class TopicInput(TypedDict):
    topic_id: str
    subject: str
    topic: str
    slots: int


class Drafted(TypedDict):
    problem_id: str
    ok: bool  # the draft parsed and goes to the critics


class TopicState(TopicInput, total=False):
    drafted: Annotated[list[Drafted], operator.add]  # one per drafted slot, in order
    outcomes: Annotated[list[Outcome], operator.add]


async def draft(state: TopicState, *, runtime: Runtime[Deps]) -> dict[str, Any]:
    deps = deps_of(runtime)
    slot = len(state.get("drafted", []))
    pid = problem_id(deps.run, state["topic_id"], slot)
    ok = await draft_slot(deps, problem_id=pid, topic_id=state["topic_id"], subject=state["subject"],
                          topic=state["topic"], slot=slot)
    return {"drafted": [{"problem_id": pid, "ok": ok}]}


async def topic_done(store: GraphStore, run: str, topic_id: str, kept: KeptReplies | None = None) -> None:
    """A topic whose thread has ended with nothing waiting for review: done (`chimera status` counts it, a
    resumed run skips it), and the replies kept for a resume are dropped (nothing can ask those calls again),
    with their keys in `kept`."""
    await store.set_topic_status(topic_id, "done")
    await store.forget_replies(run, topic_id=topic_id)
    if kept is not None:
        kept.forget_topic(topic_id)


def all_ended(state: TopicState) -> bool:
    """Every problem that went to the critics has its outcome: each branch adds exactly one as it ends."""
    sent = sum(1 for d in state.get("drafted", []) if d["ok"])
    return len(state.get("drafted", [])) >= state["slots"] and len(state.get("outcomes", [])) >= sent


async def finished(state: TopicState, *, runtime: Runtime[Deps]) -> dict[str, Any]:
    """The topic's join. It runs beside the problem branches still going (a `Send` fan-out has no barrier to
    wait on: LangGraph's deferred nodes do not wait for pending sends), so it acts only once all have ended."""
    if all_ended(state):
        deps = deps_of(runtime)
        await topic_done(deps.store, deps.run, state["topic_id"], deps.kept)
    return {}


MAX_SLOTS = 1000  # as many problems as a config may ask of one topic (problems_per_topic)
MAX_NAME_CHARS = 500


def start(state: TopicState) -> str:
    """A topic's input is checked before anything is drafted: it may come from a request to the LangGraph server."""
    slots = state["slots"]
    if not isinstance(slots, int) or isinstance(slots, bool) or not 0 <= slots <= MAX_SLOTS:
        raise ValueError(f"slots: a whole number from 0 to {MAX_SLOTS}, not {str(slots)[:40]!r}")
    for name in ("topic_id", "subject", "topic"):
        if not isinstance(state[name], str) or not state[name] or len(state[name]) > MAX_NAME_CHARS:
            raise ValueError(f"{name}: text of 1 to {MAX_NAME_CHARS} characters")
    return "draft" if slots > 0 else "finished"


def build_topic_graph(*, review: bool = False) -> StateGraph[TopicState, Deps, TopicInput, TopicState]:
    graph = StateGraph(TopicState, context_schema=Deps, input_schema=TopicInput)
    graph.add_node("draft", draft)
    graph.add_node("finished", finished)
    entry = add_problem_flow(graph, review=review)
    for node in [name for name in graph.nodes if name not in ("draft", "finished")]:  # the problem flow's
        graph.add_edge(node, "finished")

    def after_draft(state: TopicState) -> list[Send] | str:
        drafted = state.get("drafted", [])
        if len(drafted) < state["slots"]:
            return "draft"
        sends = [Send(entry, {"topic_id": state["topic_id"], "subject": state["subject"], "topic": state["topic"],
                              "problem_id": d["problem_id"], "slot": slot})
                 for slot, d in enumerate(drafted) if d["ok"]]
        return sends or "finished"

    graph.add_conditional_edges(START, start, ["draft", "finished"])
    graph.add_conditional_edges("draft", after_draft, ["draft", entry, "finished"])
    graph.add_edge("finished", END)
    return graph
