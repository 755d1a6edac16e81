"""Stage 1: subjects -> subfields -> fine-grained topics, then dedup and quotas.

    plan_subject × subjects (Send) ─> expand_subfield × subfields (Send) ─> finalize

Each expansion level is one structured expander call, repeated while the list is
short of its target and the last round still added something new (the names so
far go in the prompt). `finalize` merges duplicates across the whole run
(normalized exact match, then embedding or lexical similarity), records every
merge, and assigns each topic its number of problem slots.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send

from chimera.agents import expander
from chimera.errors import CallFailed, ReplyError
from chimera.graphs.deps import Deps
from chimera.ids import normalize_topic, topic_id
from chimera.quotas import allocate
from chimera.tools.topic_dedup import dedup_topics

GIVEN = "General"  # the subfield of topics a config names explicitly
POSITION_STRIDE = 10_000  # topic position = subfield index * stride + index within the subfield


class SubjectTask(TypedDict):
    subject: str
    position: int
    target: int | None
    explicit: list[str] | None
    subfields: list[str] | int
    weight: float


class SubfieldTask(TypedDict):
    subject: str
    subfield: str
    index: int
    target: int | None
    explicit: list[str] | None
    weight: float


class TaxonomyState(TypedDict, total=False):
    subjects: list[SubjectTask]
    # one entry per subfield: {"subject", "subfield", "topics", "calls", "note"}
    expanded: Annotated[list[dict[str, Any]], operator.add]
    summary: dict[str, Any]


def unique_names(names: list[str], existing: list[str] | None = None) -> list[str]:
    """Names in order, dropping any whose normalized form was already seen."""
    seen = {normalize_topic(n) for n in existing or []}
    kept = []
    for name in names:
        key = normalize_topic(name)
        if key and key not in seen:
            seen.add(key)
            kept.append(name.strip())
    return kept


def split_target(total: int, parts: int) -> list[int]:
    """`total` spread over `parts` as evenly as possible, larger shares first."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def grow(ask, target: int, max_rounds: int) -> tuple[list[str], int, str]:
    """Call `ask(missing, so_far)` until `target` names, or a round adds nothing new; returns (names, calls, note)."""
    names: list[str] = []
    calls = 0
    for _ in range(max_rounds):
        missing = target - len(names)
        if missing <= 0:
            return names, calls, "ok"
        calls += 1
        try:
            fresh = unique_names(await ask(missing, names), names)[:missing]
        except (ReplyError, CallFailed) as error:
            return names, calls, f"stopped early: {error}"
        if not fresh:
            return names, calls, "the expander ran out of new names"
        names += fresh
    return names, calls, "ok" if len(names) >= target else f"short after {max_rounds} rounds"


def build_taxonomy_graph(deps: Deps) -> StateGraph:
    store, settings = deps.store, deps.config.taxonomy

    async def plan_subject(task: SubjectTask) -> Command:
        subject = task["subject"]
        if task["explicit"] is not None:
            sends = [Send("expand_subfield", SubfieldTask(subject=subject, subfield=GIVEN, index=0, target=None,
                                                          explicit=task["explicit"], weight=task["weight"]))]
            return Command(goto=sends)
        if isinstance(task["subfields"], list):
            subfields = unique_names(task["subfields"])
        else:
            async def ask(missing: int, so_far: list[str]) -> list[str]:
                return await expander.expand_subfields(deps.clients["expander"], subject=subject, count=missing,
                                                       existing=so_far, retries=deps.retries,
                                                       context=deps.context(scope=subject))

            subfields, _, _ = await grow(ask, task["subfields"], settings.max_rounds)
            subfields = subfields or [GIVEN]
        targets = split_target(task["target"], len(subfields))
        return Command(goto=[
            Send("expand_subfield", SubfieldTask(subject=subject, subfield=name, index=i, target=targets[i],
                                                 explicit=None, weight=task["weight"]))
            for i, name in enumerate(subfields) if targets[i] > 0
        ])

    async def expand_subfield(task: SubfieldTask) -> dict[str, Any]:
        subject, subfield = task["subject"], task["subfield"]
        if task["explicit"] is not None:
            names, calls, note = unique_names(task["explicit"]), 0, "given"
        else:
            async def ask(missing: int, so_far: list[str]) -> list[str]:
                return await expander.expand(deps.clients["expander"], subject=subject, subfield=subfield,
                                             count=missing, existing=so_far, retries=deps.retries,
                                             context=deps.context(scope=f"{subject} / {subfield}"))

            names, calls, note = await grow(ask, task["target"], settings.max_rounds)
        source = "explicit" if task["explicit"] is not None else "expanded"
        for i, name in enumerate(names):
            store.upsert_topic(id=topic_id(deps.run, subject, subfield, name), run=deps.run, subject=subject,
                               subfield=subfield, name=name, position=task["index"] * POSITION_STRIDE + i,
                               source=source, weight=task["weight"])
        return {"expanded": [{"subject": subject, "subfield": subfield, "topics": len(names), "calls": calls,
                              "note": note}]}

    async def finalize(state: TaxonomyState) -> dict[str, Any]:
        order = {task["subject"]: task["position"] for task in state["subjects"]}
        topics = sorted(store.topics(deps.run), key=lambda t: (order.get(t["subject"], len(order)), t["position"]))
        names = [t["name"] for t in topics]
        vectors = None
        if deps.embedder is not None and names:
            vectors = await deps.embedder.embed(names, deps.context())
        result = dedup_topics(names, vectors, threshold=settings.similarity_threshold,
                              lexical_threshold=settings.lexical_threshold)
        for i in result.kept:
            if topics[i]["status"] == "merged":
                store.set_topic_status(topics[i]["id"], "pending")
        for merge in result.merges:
            dropped, kept = topics[merge.dropped], topics[merge.kept]
            store.record_merge(deps.run, dropped_id=dropped["id"], dropped=dropped["name"], kept_id=kept["id"],
                               kept=kept["name"], similarity=merge.similarity, method=merge.method)
        live = [topics[i] for i in result.kept]
        store.set_slots(assign_slots(deps, live))
        store.set_taxonomy_source(deps.run, "expanded")
        calls = sum(e["calls"] for e in state.get("expanded", []))
        return {"summary": {"topics": len(live), "merged": len(result.merges), "topic_calls": calls}}

    def fan_out(state: TaxonomyState) -> list[Send]:
        return [Send("plan_subject", task) for task in state["subjects"]]

    graph = StateGraph(TaxonomyState)
    graph.add_node("plan_subject", plan_subject, destinations=("expand_subfield",))
    graph.add_node("expand_subfield", expand_subfield)
    graph.add_node("finalize", finalize)
    graph.add_conditional_edges(START, fan_out, ["plan_subject"])
    graph.add_edge("expand_subfield", "finalize")
    graph.add_edge("finalize", END)
    return graph


def assign_slots(deps: Deps, topics: list[dict[str, Any]]) -> dict[str, int]:
    """Problem slots per topic: `problems_total` spread by subject weight, else `problems_per_topic` each."""
    total = deps.config.problems_total
    if total is None:
        return {t["id"]: deps.config.problems_per_topic for t in topics}
    return allocate({t["id"]: t["weight"] or 1.0 for t in topics}, total)


def subject_tasks(deps: Deps) -> list[SubjectTask]:
    tasks = []
    for i, s in enumerate(deps.config.subjects):
        explicit = list(s.topics) if isinstance(s.topics, list) else None
        tasks.append(SubjectTask(
            subject=s.name, position=i, target=s.topics if isinstance(s.topics, int) else None, explicit=explicit,
            subfields=list(s.subfields) if isinstance(s.subfields, list) else s.subfield_target(), weight=s.weight))
    return tasks
