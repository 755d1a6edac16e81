"""Stage 1: subjects -> topics, one `Send` branch per subject, deduplicated by normalized name.

A subject given explicit topics takes them as they are; one given a count asks
the expander, re-asking for names not yet listed while a round still adds new ones.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from chimera.agents import expander
from chimera.errors import CallFailed, ReplyError
from chimera.graphs.deps import Deps
from chimera.ids import normalize_topic, topic_id

MAX_ROUNDS = 4


class SubjectTask(TypedDict):
    subject: str
    position: int
    target: int | None
    explicit: list[str] | None


class TaxonomyState(TypedDict, total=False):
    subjects: list[SubjectTask]
    # subject -> outcome ("ok", or the reason it got fewer topics than asked)
    expanded: Annotated[list[dict[str, Any]], operator.add]


def unique_topics(names: list[str], existing: list[str] | None = None) -> list[str]:
    """Names in order, dropping any whose normalized form was already seen."""
    seen = {normalize_topic(n) for n in existing or []}
    kept = []
    for name in names:
        key = normalize_topic(name)
        if key and key not in seen:
            seen.add(key)
            kept.append(name.strip())
    return kept


def build_taxonomy_graph(deps: Deps) -> StateGraph:
    store = deps.store

    async def expand_subject(task: SubjectTask) -> dict[str, Any]:
        subject, note = task["subject"], "ok"
        if task["explicit"] is not None:
            topics, source = unique_topics(task["explicit"]), "explicit"
        else:
            topics, source = [], "expanded"
            for _ in range(MAX_ROUNDS):
                missing = task["target"] - len(topics)
                if missing <= 0:
                    break
                try:
                    names = await expander.expand(deps.clients["expander"], subject=subject, count=missing,
                                                  existing=topics, retries=deps.retries, context=deps.context())
                except (ReplyError, CallFailed) as error:
                    note = f"expansion stopped early: {error}"
                    break
                fresh = unique_topics(names, topics)[:missing]
                if not fresh:
                    note = "expander ran out of new topics"
                    break
                topics += fresh
        for position, name in enumerate(topics):
            store.upsert_topic(id=topic_id(deps.run, subject, name), run=deps.run, subject=subject, name=name,
                               position=position, source=source)
        return {"expanded": [{"subject": subject, "topics": len(topics), "note": note}]}

    def fan_out(state: TaxonomyState) -> list[Send]:
        return [Send("expand_subject", task) for task in state["subjects"]]

    graph = StateGraph(TaxonomyState)
    graph.add_node("expand_subject", expand_subject)
    graph.add_conditional_edges(START, fan_out, ["expand_subject"])
    graph.add_edge("expand_subject", END)
    return graph


def subject_tasks(deps: Deps) -> list[SubjectTask]:
    return [
        SubjectTask(subject=s.name, position=i,
                    target=s.topics if isinstance(s.topics, int) else None,
                    explicit=list(s.topics) if isinstance(s.topics, list) else None)
        for i, s in enumerate(deps.config.subjects)
    ]
