"""Stage 1's plan, apart from its calls: the shapes that travel through the taxonomy graph, and the pure rules
that split targets, pick the topics a refill round asks for, set surplus aside and spread problem slots.

Everything here is data in, data out (no store, no model, no logging), so each rule is tested on its own;
graphs/taxonomy.py wires these rules to the expander and the store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from typing_extensions import TypedDict  # pydantic reads these as schemas; on 3.11 only this kind works

from chimera.config import SubjectSpec
from chimera.ids import normalize_topic
from chimera.store.rows import TopicRow
from chimera.tools.topic_dedup import Merge

GIVEN = "General"  # the subfield of topics a config names explicitly
POSITION_STRIDE = 10_000  # topic position = subfield index * stride + index within the subfield
MAX_EXISTING_IN_PROMPT = 200  # names shown to a refill call as already listed

ShortfallKind = Literal["reply", "exhausted", "short"]
_KINDS: dict[str, ShortfallKind] = {"reply": "reply", "exhausted": "exhausted", "short": "short"}


class SubjectTask(TypedDict):
    """One subject to expand (a `Send` to `plan_subject`)."""

    subject: str
    position: int  # the subject's place in the config: earlier subjects keep a topic two subjects share
    target: int | None  # topics to reach; None when the config names them
    explicit: list[str] | None  # the topics the config names
    subfields: list[str] | int  # the subfields the config names, or how many to ask for
    weight: float


class SubfieldTask(TypedDict):
    """One subfield to expand into topics (a `Send` to `expand_subfield`)."""

    subject: str
    subfield: str
    index: int  # the subfield's place in its subject
    target: int | None  # None: `explicit` holds the topics, nothing is asked
    explicit: list[str] | None
    weight: float


class RefillTask(TypedDict):
    """One refill call for a short subfield (a `Send` to `refill`)."""

    subject: str
    subfield: str
    index: int
    count: int  # names to ask for
    existing: list[str]  # names the prompt lists as taken
    round: int  # the refill round, from 1
    weight: float


class Expansion(TypedDict):
    """One expansion or refill of a subfield, as the graph state keeps it."""

    subject: str
    subfield: str
    index: int
    target: int | None  # the subfield's own target: None for named topics, 0 for a refill (which sets none)
    topics: int  # names it stored
    calls: int  # expander calls it made


class Shortfall(TypedDict):
    """Why a subject or subfield got fewer names than its target."""

    subject: str
    subfield: str  # "" for the subject as a whole
    kind: ShortfallKind  # reply: an expander call failed or was cut; exhausted: no new names; short: still below
    detail: str
    target: int
    got: int


class TaxonomySummary(TypedDict):
    topics: int
    merged: int
    topic_calls: int
    refill_rounds: int
    shortfalls: int


@dataclass(frozen=True)
class SubfieldStanding:
    """Where one subfield of a short subject stands after a dedup."""

    subfield: str
    index: int
    target: int
    live: int  # its topics that survived dedup
    existing: list[str]  # names a refill must not repeat: its live topics and those merged away from it


@dataclass(frozen=True)
class RefillPlan:
    """What a dedup leaves for the next round."""

    live: dict[str, int]  # live topics per subject
    refills: list[RefillTask]  # empty: Stage 1 is done
    settled: list[str]  # subjects no further refill round can help
    notes: list[Shortfall]  # subjects just settled below their target
    round: int  # refill rounds started, this one included


def unique_names(names: Sequence[str], existing: Sequence[str] | None = None) -> list[str]:
    """Names in order, stripped, dropping any whose normalized form was already seen (or is empty)."""
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


def subject_tasks(subjects: Sequence[SubjectSpec]) -> list[SubjectTask]:
    """The config's subjects as Stage 1's tasks, in config order."""
    return [SubjectTask(subject=s.name, position=i, target=s.topics if isinstance(s.topics, int) else None,
                        explicit=list(s.topics) if isinstance(s.topics, list) else None,
                        subfields=list(s.subfields) if isinstance(s.subfields, list) else s.subfield_target(),
                        weight=s.weight)
            for i, s in enumerate(subjects)]


def explicit_task(task: SubjectTask, topics: list[str]) -> SubfieldTask:
    """A subject whose topics the config names: one subfield holding them, nothing asked."""
    return SubfieldTask(subject=task["subject"], subfield=GIVEN, index=0, target=None, explicit=topics,
                        weight=task["weight"])


def subfield_tasks(task: SubjectTask, subfields: Sequence[str]) -> list[SubfieldTask]:
    """The subject's target split over its subfields; a subfield whose share is 0 is not expanded."""
    targets = split_target(task["target"] or 0, len(subfields))
    return [SubfieldTask(subject=task["subject"], subfield=name, index=i, target=targets[i], explicit=None,
                         weight=task["weight"])
            for i, name in enumerate(subfields) if targets[i] > 0]


def shortfall(subject: str, subfield: str, note: str, target: int, got: int) -> list[Shortfall]:
    """A note of the expansion loop ("ok", or "kind: detail") as a shortfall: none when it went fine or the target
    was met anyway."""
    if note == "ok" or got >= target:
        return []
    kind, _, detail = note.partition(": ")
    return [Shortfall(subject=subject, subfield=subfield, kind=_KINDS[kind], detail=detail, target=target, got=got)]


def next_position(topics: Sequence[TopicRow], subject: str, subfield: str) -> int:
    """The position after the subfield's last topic: refilled names go after every name it holds."""
    return max((t["position"] for t in topics if t["subject"] == subject and t["subfield"] == subfield),
               default=-1) + 1


def dedup_candidates(topics: Sequence[TopicRow], subjects: Sequence[SubjectTask]) -> list[TopicRow]:
    """The topics dedup weighs (all but surplus), in the order that decides which of two duplicates stays.

    Named topics first, then each refill round after the one before (a later name never displaces one kept
    earlier, so every round can only add), then by subject in config order, then by position.
    """
    order = {task["subject"]: task["position"] for task in subjects}
    return sorted((t for t in topics if t["status"] != "surplus"),
                  key=lambda t: (t["source"] != "explicit", t["round"] or 0, order.get(t["subject"], len(order)),
                                 t["position"]))


def absorbed_names(topics: Sequence[TopicRow], merges: Sequence[Merge]) -> dict[str, list[str]]:
    """Per merged-away topic id, its name and the name it was merged into: names its subfield's refill must avoid."""
    absorbed: dict[str, list[str]] = {}
    for merge in merges:
        dropped, kept = topics[merge.dropped], topics[merge.kept]
        absorbed.setdefault(dropped["id"], []).extend([dropped["name"], kept["name"]])
    return absorbed


def split_surplus(live: Sequence[TopicRow], subjects: Sequence[SubjectTask]) -> tuple[list[TopicRow], list[TopicRow]]:
    """(kept, surplus): what landed past a subject's target, the latest refill's last names first.

    Refills ask for more names than are missing (some merge away), so a subject can overshoot; topics from the
    first expansion are never surplus.
    """
    targets = {s["subject"]: s["target"] for s in subjects if s["target"] is not None}
    aside: list[TopicRow] = []
    for subject, target in targets.items():
        mine = [t for t in live if t["subject"] == subject]
        excess = len(mine) - target
        if excess > 0:
            refilled = sorted((t for t in mine if t["round"]), key=lambda t: (t["round"], t["position"]))
            aside += refilled[-excess:]
    ids = {t["id"] for t in aside}
    return [t for t in live if t["id"] not in ids], aside


def live_counts(subjects: Sequence[SubjectTask], live: Sequence[TopicRow]) -> dict[str, int]:
    """Live topics per subject, every subject listed (0 when none)."""
    counts = {task["subject"]: 0 for task in subjects}
    for topic in live:
        counts[topic["subject"]] = counts.get(topic["subject"], 0) + 1
    return counts


def refill_tasks(subject: str, deficit: int, subfields: Sequence[SubfieldStanding], round_: int,
                 weight: float) -> list[RefillTask]:
    """Spread a subject's `deficit` over its subfields, the most short of their own target first; what is left
    once each has its own target back goes evenly over all of them."""
    counts = {s.subfield: 0 for s in subfields}
    left = deficit
    for s in sorted(subfields, key=lambda s: (s.live - s.target, s.index)):
        take = min(left, max(0, s.target - s.live))
        counts[s.subfield] += take
        left -= take
    if left > 0:  # the subfields met their own targets, but merges elsewhere left the subject short
        for s, extra in zip(subfields, split_target(left, len(subfields))):
            counts[s.subfield] += extra
    return [RefillTask(subject=subject, subfield=s.subfield, index=s.index, count=counts[s.subfield],
                       existing=s.existing[-MAX_EXISTING_IN_PROMPT:], round=round_, weight=weight)
            for s in subfields if counts[s.subfield] > 0]


def standings(subject: str, expansions: Sequence[Expansion], topics: Sequence[TopicRow], live_ids: set[str],
              absorbed: Mapping[str, list[str]]) -> list[SubfieldStanding]:
    """The subject's expanded subfields (those with a target of their own), in subfield order."""
    targets: dict[tuple[str, str], tuple[int, int]] = {}  # (subject, subfield) -> (index, target)
    for entry in expansions:
        if entry["target"]:
            targets[(entry["subject"], entry["subfield"])] = (entry["index"], entry["target"])
    found = []
    for (owner, subfield), (index, target) in sorted(targets.items(), key=lambda kv: kv[1][0]):
        if owner != subject:
            continue
        mine = [t for t in topics if t["subject"] == subject and t["subfield"] == subfield]
        existing = [t["name"] for t in mine if t["id"] in live_ids]
        existing += [n for t in mine for n in absorbed.get(t["id"], [])]
        found.append(SubfieldStanding(subfield=subfield, index=index, target=target,
                                      live=sum(1 for t in mine if t["id"] in live_ids),
                                      existing=unique_names(existing)))
    return found


def plan_refills(subjects: Sequence[SubjectTask], expansions: Sequence[Expansion], topics: Sequence[TopicRow],
                 live: Sequence[TopicRow], absorbed: Mapping[str, list[str]], *, rounds_done: int,
                 live_before: Mapping[str, int], settled: Sequence[str], max_rounds: int) -> RefillPlan:
    """The next refill round after a dedup: each subject still below its target asks its subfields for the
    missing names and half again (some merge away).

    A subject settles, asking no more, once `max_rounds` refill rounds ran, when the last round added nothing
    to it (a shortfall says so), or when it has no expanded subfield to ask. `topics` are the ones dedup
    weighed, `live` those it kept.
    """
    counts = live_counts(subjects, live)
    live_ids = {t["id"] for t in live}
    settled = list(settled)
    notes: list[Shortfall] = []
    tasks: list[RefillTask] = []
    for subject in subjects:
        name, target, got = subject["subject"], subject["target"], counts.get(subject["subject"], 0)
        if target is None or name in settled or got >= target:
            continue
        if rounds_done >= max_rounds:
            settled.append(name)
            continue
        if rounds_done and got <= live_before.get(name, 0):
            settled.append(name)
            notes += shortfall(name, "", f"short: refill round {rounds_done} added no new topic", target, got)
            continue
        subfields = standings(name, expansions, topics, live_ids, absorbed)
        if not subfields:
            settled.append(name)
            continue
        missing = target - got
        tasks += refill_tasks(name, missing + max(1, missing // 2), subfields, rounds_done + 1, subject["weight"])
    return RefillPlan(live=counts, refills=tasks, settled=settled, notes=notes,
                      round=rounds_done + (1 if tasks else 0))


def final_shortfalls(subjects: Sequence[SubjectTask], counts: Mapping[str, int], notes: Sequence[Shortfall],
                     rounds: int, max_rounds: int) -> list[Shortfall]:
    """A shortfall for each subject that ends below its target and has no subject-wide note yet."""
    found: list[Shortfall] = []
    for subject in subjects:
        got, target = counts.get(subject["subject"], 0), subject["target"]
        noted = any(n["subject"] == subject["subject"] and not n["subfield"] for n in notes)
        if target is not None and got < target and not noted:
            why = (f"still short after {rounds} refill round{'s' * (rounds != 1)}" if rounds < max_rounds
                   else f"still short after {rounds} refill rounds (taxonomy.max_rounds)")
            found += shortfall(subject["subject"], "", f"short: {why}", target, got)
    return found


def allocate(weights: Mapping[str, float], total: int) -> dict[str, int]:
    """Slots per topic, proportional to `weights[topic]`, summing exactly to `total`.

    Largest remainder: each topic gets the floor of its share, then the topics
    with the largest fractional parts (ties by id, so the result is stable) get one more.
    """
    if not weights:
        return {}
    whole = sum(weights.values())
    shares = {topic: total * w / whole for topic, w in weights.items()}
    slots = {topic: math.floor(share) for topic, share in shares.items()}
    left = total - sum(slots.values())
    for topic in sorted(shares, key=lambda t: (-(shares[t] - slots[t]), t))[:left]:
        slots[topic] += 1
    return slots


def assign_slots(topics: Sequence[TopicRow], *, total: int | None, per_topic: int) -> dict[str, int]:
    """Problem slots per topic: `total` spread by subject weight (a topic without one weighs 1), else
    `per_topic` each."""
    if total is None:
        return {t["id"]: per_topic for t in topics}
    return allocate({t["id"]: t["weight"] or 1.0 for t in topics}, total)
