"""Stage 1: subjects -> subfields -> fine-grained topics, then dedup, refills and quotas.

    plan_subject × subjects (Send) ─> expand_subfield × subfields (Send) ─> dedup ─┬─> finalize
                                                       refill × short subfields <─┘ (Send, back to dedup)

Each expansion level is one structured expander call, repeated while the list is
short of its target and the last round still added something new (the names so
far go in the prompt). `dedup` merges duplicates across the whole run (normalized
exact match, then embedding or lexical similarity; topics named in the config are
never merged with each other) and records every merge. A subject left below its
target gets refill rounds: its short subfields are asked for names not yet listed,
including the other subjects' topics its own were merged into, until the target is
met, a round adds nothing, or `taxonomy.max_rounds`. `finalize` stores every
shortfall with its reason and assigns each topic its number of problem slots.

The rules the nodes follow (target splits, refill rounds, surplus, shortfalls, slots) are pure functions over
typed data in `taxonomy_plan`; the nodes here call the expander and the store and wire those rules together.
"""

from __future__ import annotations

import logging
import operator
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, Send
from typing_extensions import TypedDict  # pydantic reads these as schemas; on 3.11 only this kind works

from chimera.agents import expander
from chimera.errors import CallFailed, ReplyError
from chimera.graphs.deps import Deps, deps_of
from chimera.graphs.taxonomy_plan import (
    GIVEN,
    POSITION_STRIDE,
    Expansion,
    RefillTask,
    Shortfall,
    SubfieldTask,
    SubjectTask,
    TaxonomySummary,
    absorbed_names,
    assign_slots,
    dedup_candidates,
    explicit_task,
    final_shortfalls,
    next_position,
    plan_refills,
    shortfall,
    split_surplus,
    subfield_tasks,
    subject_tasks,
    unique_names,
)
from chimera.graphs.topic import TopicInput
from chimera.ids import topic_id
from chimera.tools.topic_dedup import dedup_topics

log = logging.getLogger("chimera.taxonomy")


class TaxonomyState(TypedDict, total=False):
    subjects: list[SubjectTask]
    expanded: Annotated[list[Expansion], operator.add]
    notes: Annotated[list[Shortfall], operator.add]  # expander trouble, as it happened
    round: int  # refill rounds started
    live: dict[str, int]  # topics per subject after the last dedup
    settled: list[str]  # subjects no further refill round can help
    refills: list[RefillTask]
    summary: TaxonomySummary
    topics: list[TopicInput]  # what Stage 2 runs: one topic graph input per live topic


async def grow(ask, target: int, max_rounds: int) -> tuple[list[str], int, str]:
    """Call `ask(missing, so_far)` until `target` names, or a round adds nothing new; returns (names, calls, note).

    The note is "ok", or why fewer names came back: "reply: ..." (a call failed or was cut) or "exhausted: ...".
    """
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
            return names, calls, f"reply: {error}"
        if not fresh:
            return names, calls, "exhausted: the expander gave no new names"
        names += fresh
    return names, calls, "ok" if len(names) >= target else f"exhausted: still short after {max_rounds} calls"


def logged(notes: list[Shortfall]) -> list[Shortfall]:
    """Shortfalls as they are found, each logged once."""
    for note in notes:
        where = f"{note['subject']} / {note['subfield']}" if note["subfield"] else note["subject"]
        log.warning("stage 1: %s: %d of %d names (%s)", where, note["got"], note["target"], note["detail"])
    return notes


async def plan_subject(state: SubjectTask, *, runtime: Runtime[Deps]) -> Command:
    deps = deps_of(runtime)
    subject = state["subject"]
    if state["explicit"] is not None:
        return Command(goto=[Send("expand_subfield", explicit_task(state, state["explicit"]))])
    notes: list[Shortfall] = []
    if isinstance(state["subfields"], list):
        subfields = unique_names(state["subfields"])
    else:
        async def ask(missing: int, so_far: list[str]) -> list[str]:
            return await expander.expand_subfields(deps.clients["expander"], subject=subject, count=missing,
                                                   existing=so_far, retries=deps.parse_retries,
                                                   context=deps.context(scope=subject))

        subfields, _, note = await grow(ask, state["subfields"], deps.config.taxonomy.max_rounds)
        notes = logged(shortfall(subject, "subfield list", note, state["subfields"], len(subfields)))
        subfields = subfields or [GIVEN]
    return Command(update={"notes": notes},
                   goto=[Send("expand_subfield", task) for task in subfield_tasks(state, subfields)])


async def expand_subfield(state: SubfieldTask, *, runtime: Runtime[Deps]) -> dict[str, Any]:
    deps = deps_of(runtime)
    subject, subfield = state["subject"], state["subfield"]
    notes: list[Shortfall] = []
    if state["explicit"] is not None:
        names, calls = unique_names(state["explicit"]), 0
    else:
        async def ask(missing: int, so_far: list[str]) -> list[str]:
            return await expander.expand(deps.clients["expander"], subject=subject, subfield=subfield,
                                         count=missing, existing=so_far, retries=deps.parse_retries,
                                         context=deps.context(scope=f"{subject} / {subfield}"))

        target = state["target"] or 0
        names, calls, note = await grow(ask, target, deps.config.taxonomy.max_rounds)
        notes = logged(shortfall(subject, subfield, note, target, len(names)))
    source = "explicit" if state["explicit"] is not None else "expanded"
    for i, name in enumerate(names):
        await deps.store.upsert_topic(id=topic_id(deps.run, subject, subfield, name), run=deps.run,
                                      subject=subject, subfield=subfield, name=name,
                                      position=state["index"] * POSITION_STRIDE + i, source=source,
                                      weight=state["weight"])
    return {"notes": notes, "expanded": [Expansion(subject=subject, subfield=subfield, index=state["index"],
                                                   target=state["target"], topics=len(names), calls=calls)]}


async def refill(state: RefillTask, *, runtime: Runtime[Deps]) -> dict[str, Any]:
    deps = deps_of(runtime)
    subject, subfield = state["subject"], state["subfield"]
    try:
        names = await expander.expand(deps.clients["expander"], subject=subject, subfield=subfield,
                                      count=state["count"], existing=state["existing"], retries=deps.parse_retries,
                                      context=deps.context(scope=f"{subject} / {subfield}"))
        note = "ok"
    except (ReplyError, CallFailed) as error:
        names, note = [], f"reply: {error}"
    names = unique_names(names, state["existing"])[: state["count"]]
    first = next_position(await deps.store.topics(deps.run), subject, subfield)
    for i, name in enumerate(names):
        await deps.store.upsert_topic(id=topic_id(deps.run, subject, subfield, name), run=deps.run,
                                      subject=subject, subfield=subfield, name=name, position=first + i,
                                      source="expanded", weight=state["weight"], round_=state["round"])
    log.info("stage 1: refill round %d: %s / %s: %d new of %d asked", state["round"], subject, subfield,
             len(names), state["count"])
    return {"notes": logged(shortfall(subject, subfield, note, state["count"], len(names))),
            "expanded": [Expansion(subject=subject, subfield=subfield, index=state["index"], target=0,
                                   topics=len(names), calls=1)]}


async def dedup(state: TaxonomyState, *, runtime: Runtime[Deps]) -> dict[str, Any]:
    deps = deps_of(runtime)
    store, settings = deps.store, deps.config.taxonomy
    topics = dedup_candidates(await store.topics(deps.run), state["subjects"])
    names = [t["name"] for t in topics]
    vectors = await deps.embedder.embed(names, deps.context()) if deps.embedder is not None and names else None
    result = dedup_topics(names, vectors, threshold=settings.similarity_threshold,
                          lexical_threshold=settings.lexical_threshold,
                          protected={i for i, t in enumerate(topics) if t["source"] == "explicit"})
    for i in result.kept:
        if topics[i]["status"] == "merged":
            await store.set_topic_status(topics[i]["id"], "pending")
    for merge in result.merges:
        dropped, kept = topics[merge.dropped], topics[merge.kept]
        await store.record_merge(deps.run, dropped_id=dropped["id"], dropped=dropped["name"], kept_id=kept["id"],
                                 kept=kept["name"], similarity=merge.similarity, method=merge.method)
    live, surplus = split_surplus([topics[i] for i in sorted(result.kept)], state["subjects"])
    for topic in surplus:
        await store.set_topic_status(topic["id"], "surplus")
    plan = plan_refills(state["subjects"], state.get("expanded", []), topics, live,
                        absorbed_names(topics, result.merges), rounds_done=state.get("round", 0),
                        live_before=state.get("live") or {}, settled=state.get("settled") or [],
                        max_rounds=settings.max_rounds)
    return {"live": plan.live, "refills": plan.refills, "settled": plan.settled, "notes": logged(plan.notes),
            "round": plan.round}


def after_dedup(state: TaxonomyState) -> list[Send] | str:
    return [Send("refill", task) for task in state["refills"]] or "finalize"


async def finalize(state: TaxonomyState, *, runtime: Runtime[Deps]) -> dict[str, Any]:
    deps = deps_of(runtime)
    store, config = deps.store, deps.config
    live = await store.topics(deps.run, live=True)
    slots = assign_slots(live, total=config.problems_total, per_topic=config.problems_per_topic)
    await store.set_slots(slots)
    rounds, notes = state.get("round", 0), list(state.get("notes", []))
    notes += logged(final_shortfalls(state["subjects"], state.get("live") or {}, notes, rounds,
                                     config.taxonomy.max_rounds))
    await store.replace_shortfalls(deps.run, [dict(n) for n in notes])
    await store.set_taxonomy_source(deps.run, "expanded")
    merged = sum(1 for t in await store.topics(deps.run) if t["status"] == "merged")
    calls = sum(e["calls"] for e in state.get("expanded", []))
    summary = TaxonomySummary(topics=len(live), merged=merged, topic_calls=calls, refill_rounds=rounds,
                              shortfalls=len(notes))
    return {"summary": summary, "topics": [TopicInput(topic_id=t["id"], subject=t["subject"], topic=t["name"],
                                                      slots=slots[t["id"]]) for t in live]}


async def subjects(state: TaxonomyState, *, runtime: Runtime[Deps]) -> dict[str, Any]:
    """The subjects to expand: the input's, else the config's (a LangGraph server's run may start from {})."""
    return {"subjects": state.get("subjects") or subject_tasks(deps_of(runtime).config.subjects)}


def fan_out(state: TaxonomyState) -> list[Send]:
    return [Send("plan_subject", task) for task in state["subjects"]]


def build_taxonomy_graph() -> StateGraph[TaxonomyState, Deps, TaxonomyState, TaxonomyState]:
    graph = StateGraph(TaxonomyState, context_schema=Deps)
    graph.add_node("subjects", subjects)
    graph.add_node("plan_subject", plan_subject, destinations=("expand_subfield",))
    graph.add_node("expand_subfield", expand_subfield)
    graph.add_node("refill", refill)
    graph.add_node("dedup", dedup)
    graph.add_node("finalize", finalize)
    graph.add_edge(START, "subjects")
    graph.add_conditional_edges("subjects", fan_out, ["plan_subject"])
    graph.add_edge("expand_subfield", "dedup")
    graph.add_conditional_edges("dedup", after_dedup, ["refill", "finalize"])
    graph.add_edge("refill", "dedup")
    graph.add_edge("finalize", END)
    return graph
