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
from chimera.graphs.quotas import allocate
from chimera.ids import normalize_topic, topic_id
from chimera.store.rows import TopicRow
from chimera.tools.topic_dedup import dedup_topics

log = logging.getLogger("chimera.taxonomy")
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


class RefillTask(TypedDict):
    subject: str
    subfield: str
    index: int
    count: int
    existing: list[str]
    round: int
    weight: float


class Shortfall(TypedDict):
    subject: str
    subfield: str  # "" for the subject as a whole
    kind: str  # "reply" (an expander call failed or was cut), "exhausted", "short"
    detail: str
    target: int
    got: int


class TaxonomyState(TypedDict, total=False):
    subjects: list[SubjectTask]
    # one entry per expansion or refill call batch: {"subject", "subfield", "index", "target", "topics", "calls"}
    expanded: Annotated[list[dict[str, Any]], operator.add]
    notes: Annotated[list[Shortfall], operator.add]  # expander trouble, as it happened
    round: int  # refill rounds started
    live: dict[str, int]  # topics per subject after the last dedup
    settled: list[str]  # subjects no further refill round can help
    refills: list[RefillTask]
    summary: dict[str, Any]
    # what Stage 2 runs: each topic's input of the topic graph (its id, subject, name and problem slots)
    topics: list[dict[str, Any]]


MAX_EXISTING_IN_PROMPT = 200  # names shown to a refill call as already listed


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


def shortfall_note(subject: str, subfield: str, note: str, target: int, got: int) -> list[Shortfall]:
    """A note from `grow` as a stored shortfall (none when it went fine), logged as it happens."""
    if note == "ok" or got >= target:
        return []
    kind, _, detail = note.partition(": ")
    log.warning("stage 1: %s: %d of %d names (%s)", f"{subject} / {subfield}" if subfield else subject, got, target,
                detail)
    return [Shortfall(subject=subject, subfield=subfield, kind=kind, detail=detail, target=target, got=got)]


def refill_tasks(subject: str, deficit: int, subfields: list[dict[str, Any]], round_: int,
                 weight: float) -> list[RefillTask]:
    """Spread a subject's `deficit` over its subfields, the most short of their own target first.

    `subfields`: {"subfield", "index", "target", "live", "existing"} per subfield of the subject.
    """
    counts = {s["subfield"]: 0 for s in subfields}
    left = deficit
    for s in sorted(subfields, key=lambda s: (s["live"] - s["target"], s["index"])):
        take = min(left, max(0, s["target"] - s["live"]))
        counts[s["subfield"]] += take
        left -= take
    if left > 0:  # the subfields met their own targets, but merges elsewhere left the subject short
        for s, extra in zip(subfields, split_target(left, len(subfields))):
            counts[s["subfield"]] += extra
    return [RefillTask(subject=subject, subfield=s["subfield"], index=s["index"], count=counts[s["subfield"]],
                       existing=s["existing"][-MAX_EXISTING_IN_PROMPT:], round=round_, weight=weight)
            for s in subfields if counts[s["subfield"]] > 0]


async def plan_subject(state: SubjectTask, *, runtime: Runtime[Deps]) -> Command:
    deps = deps_of(runtime)
    settings = deps.config.taxonomy
    subject = state["subject"]
    if state["explicit"] is not None:
        sends = [Send("expand_subfield", SubfieldTask(subject=subject, subfield=GIVEN, index=0, target=None,
                                                      explicit=state["explicit"], weight=state["weight"]))]
        return Command(goto=sends)
    notes: list[Shortfall] = []
    if isinstance(state["subfields"], list):
        subfields = unique_names(state["subfields"])
    else:
        async def ask(missing: int, so_far: list[str]) -> list[str]:
            return await expander.expand_subfields(deps.clients["expander"], subject=subject, count=missing,
                                                   existing=so_far, retries=deps.retries,
                                                   context=deps.context(scope=subject))

        subfields, _, note = await grow(ask, state["subfields"], settings.max_rounds)
        notes = shortfall_note(subject, "subfield list", note, state["subfields"], len(subfields))
        subfields = subfields or [GIVEN]
    targets = split_target(state["target"] or 0, len(subfields))
    return Command(update={"notes": notes}, goto=[
        Send("expand_subfield", SubfieldTask(subject=subject, subfield=name, index=i, target=targets[i],
                                             explicit=None, weight=state["weight"]))
        for i, name in enumerate(subfields) if targets[i] > 0
    ])


async def expand_subfield(state: SubfieldTask, *, runtime: Runtime[Deps]) -> dict[str, Any]:
    deps = deps_of(runtime)
    store, settings = deps.store, deps.config.taxonomy
    subject, subfield = state["subject"], state["subfield"]
    notes: list[Shortfall] = []
    if state["explicit"] is not None:
        names, calls = unique_names(state["explicit"]), 0
    else:
        async def ask(missing: int, so_far: list[str]) -> list[str]:
            return await expander.expand(deps.clients["expander"], subject=subject, subfield=subfield,
                                         count=missing, existing=so_far, retries=deps.retries,
                                         context=deps.context(scope=f"{subject} / {subfield}"))

        target = state["target"] or 0
        names, calls, note = await grow(ask, target, settings.max_rounds)
        notes = shortfall_note(subject, subfield, note, target, len(names))
    source = "explicit" if state["explicit"] is not None else "expanded"
    for i, name in enumerate(names):
        await store.upsert_topic(id=topic_id(deps.run, subject, subfield, name), run=deps.run, subject=subject,
                                 subfield=subfield, name=name, position=state["index"] * POSITION_STRIDE + i,
                                 source=source, weight=state["weight"])
    return {"notes": notes, "expanded": [{"subject": subject, "subfield": subfield, "index": state["index"],
                                          "target": state["target"], "topics": len(names), "calls": calls}]}


async def refill(state: RefillTask, *, runtime: Runtime[Deps]) -> dict[str, Any]:
    deps = deps_of(runtime)
    store = deps.store
    subject, subfield = state["subject"], state["subfield"]
    try:
        names = await expander.expand(deps.clients["expander"], subject=subject, subfield=subfield,
                                      count=state["count"], existing=state["existing"], retries=deps.retries,
                                      context=deps.context(scope=f"{subject} / {subfield}"))
        note = "ok"
    except (ReplyError, CallFailed) as error:
        names, note = [], f"reply: {error}"
    names = unique_names(names, state["existing"])[: state["count"]]
    first = max((t["position"] for t in await store.topics(deps.run)
                 if t["subject"] == subject and t["subfield"] == subfield), default=-1) + 1
    for i, name in enumerate(names):
        await store.upsert_topic(id=topic_id(deps.run, subject, subfield, name), run=deps.run, subject=subject,
                                 subfield=subfield, name=name, position=first + i, source="expanded",
                                 weight=state["weight"], round_=state["round"])
    log.info("stage 1: refill round %d: %s / %s: %d new of %d asked", state["round"], subject, subfield,
             len(names), state["count"])
    return {"notes": shortfall_note(subject, subfield, note, state["count"], len(names)),
            "expanded": [{"subject": subject, "subfield": subfield, "index": state["index"], "target": 0,
                          "topics": len(names), "calls": 1}]}


async def dedup(state: TaxonomyState, *, runtime: Runtime[Deps]) -> dict[str, Any]:
    deps = deps_of(runtime)
    store, settings = deps.store, deps.config.taxonomy
    order = {task["subject"]: task["position"] for task in state["subjects"]}
    # Explicit topics first, then each refill round after the one before: a later name never
    # displaces one kept earlier, so every round can only add.
    topics = sorted((t for t in await store.topics(deps.run) if t["status"] != "surplus"),
                    key=lambda t: (t["source"] != "explicit", t["round"] or 0,
                                   order.get(t["subject"], len(order)), t["position"]))
    names = [t["name"] for t in topics]
    vectors = None
    if deps.embedder is not None and names:
        vectors = await deps.embedder.embed(names, deps.context())
    result = dedup_topics(names, vectors, threshold=settings.similarity_threshold,
                          lexical_threshold=settings.lexical_threshold,
                          protected={i for i, t in enumerate(topics) if t["source"] == "explicit"})
    for i in result.kept:
        if topics[i]["status"] == "merged":
            await store.set_topic_status(topics[i]["id"], "pending")
    absorbed: dict[str, list[str]] = {}  # topic id -> names merged away from it and the names they hit
    for merge in result.merges:
        dropped, kept = topics[merge.dropped], topics[merge.kept]
        await store.record_merge(deps.run, dropped_id=dropped["id"], dropped=dropped["name"], kept_id=kept["id"],
                                 kept=kept["name"], similarity=merge.similarity, method=merge.method)
        absorbed.setdefault(dropped["id"], []).extend([dropped["name"], kept["name"]])
    live = await trim_surplus(deps, [topics[i] for i in sorted(result.kept)], state["subjects"])
    counts = {task["subject"]: 0 for task in state["subjects"]}
    for topic in live:
        counts[topic["subject"]] = counts.get(topic["subject"], 0) + 1
    return {"live": counts, **plan_refills(deps, state, topics, live, absorbed, counts)}


async def trim_surplus(deps: Deps, live: list[TopicRow], subjects: list[SubjectTask]) -> list[TopicRow]:
    """Refills ask for more names than are missing (some merge away); what lands past a subject's
    target is set aside as surplus, the latest refill's last names first."""
    targets = {s["subject"]: s["target"] for s in subjects if s["target"] is not None}
    drop: set[str] = set()
    for subject, target in targets.items():
        mine = [t for t in live if t["subject"] == subject]
        excess = len(mine) - target
        if excess <= 0:
            continue
        refilled = sorted((t for t in mine if t["round"]), key=lambda t: (t["round"], t["position"]))
        for topic in refilled[-excess:]:
            drop.add(topic["id"])
            await deps.store.set_topic_status(topic["id"], "surplus")
    return [t for t in live if t["id"] not in drop]


def plan_refills(deps: Deps, state: TaxonomyState, topics: list[TopicRow], live: list[TopicRow],
                 absorbed: dict[str, list[str]], counts: dict[str, int]) -> dict[str, Any]:
    done_rounds, before = state.get("round", 0), state.get("live") or {}
    settled = list(state.get("settled") or [])
    notes: list[Shortfall] = []
    live_ids = {t["id"] for t in live}
    targets: dict[tuple[str, str], tuple[int, int]] = {}  # (subject, subfield) -> (index, target)
    for entry in state.get("expanded", []):
        if entry["target"]:
            targets[(entry["subject"], entry["subfield"])] = (entry["index"], entry["target"])
    tasks: list[RefillTask] = []
    for subject in state["subjects"]:
        name, target = subject["subject"], subject["target"]
        if target is None or name in settled or counts.get(name, 0) >= target:
            continue
        if done_rounds >= deps.config.taxonomy.max_rounds:
            settled.append(name)
            continue
        if done_rounds and counts.get(name, 0) <= before.get(name, 0):
            settled.append(name)
            notes += shortfall_note(name, "", f"short: refill round {done_rounds} added no new topic",
                                    target, counts.get(name, 0))
            continue
        subfields = []
        for (subj, subfield), (index, sub_target) in sorted(targets.items(), key=lambda kv: kv[1][0]):
            if subj != name:
                continue
            mine = [t for t in topics if t["subject"] == name and t["subfield"] == subfield]
            existing = [t["name"] for t in mine if t["id"] in live_ids]
            existing += [n for t in mine for n in absorbed.get(t["id"], [])]
            subfields.append({"subfield": subfield, "index": index, "target": sub_target,
                              "live": sum(1 for t in mine if t["id"] in live_ids),
                              "existing": unique_names(existing)})
        if not subfields:
            settled.append(name)
            continue
        missing = target - counts.get(name, 0)
        tasks += refill_tasks(name, missing + max(1, missing // 2), subfields, done_rounds + 1, subject["weight"])
    return {"refills": tasks, "settled": settled, "notes": notes, "round": done_rounds + (1 if tasks else 0)}


def after_dedup(state: TaxonomyState) -> list[Send] | str:
    return [Send("refill", task) for task in state["refills"]] or "finalize"


async def finalize(state: TaxonomyState, *, runtime: Runtime[Deps]) -> dict[str, Any]:
    deps = deps_of(runtime)
    store, settings = deps.store, deps.config.taxonomy
    live = await store.topics(deps.run, live=True)
    slots = assign_slots(deps, live)
    await store.set_slots(slots)
    counts = state.get("live") or {}
    notes = list(state.get("notes", []))
    for subject in state["subjects"]:
        got, target = counts.get(subject["subject"], 0), subject["target"]
        noted = any(n["subject"] == subject["subject"] and not n["subfield"] for n in notes)
        if target is not None and got < target and not noted:
            rounds = state.get("round", 0)
            why = (f"still short after {rounds} refill round{'s' * (rounds != 1)}" if rounds < settings.max_rounds
                   else f"still short after {rounds} refill rounds (taxonomy.max_rounds)")
            notes += shortfall_note(subject["subject"], "", f"short: {why}", target, got)
    await store.replace_shortfalls(deps.run, [dict(n) for n in notes])
    await store.set_taxonomy_source(deps.run, "expanded")
    calls = sum(e["calls"] for e in state.get("expanded", []))
    merged = sum(1 for t in await store.topics(deps.run) if t["status"] == "merged")
    return {"summary": {"topics": len(live), "merged": merged, "topic_calls": calls,
                        "refill_rounds": state.get("round", 0), "shortfalls": len(notes)},
            "topics": [{"topic_id": t["id"], "subject": t["subject"], "topic": t["name"], "slots": slots.get(t["id"])}
                       for t in live]}


async def subjects(state: TaxonomyState, *, runtime: Runtime[Deps]) -> dict[str, Any]:
    """The subjects to expand: the input's, else the config's (a LangGraph server's run may start from {})."""
    return {"subjects": state.get("subjects") or subject_tasks(deps_of(runtime))}


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


def assign_slots(deps: Deps, topics: list[TopicRow]) -> dict[str, int]:
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
