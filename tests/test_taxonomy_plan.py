"""Stage 1's planning rules on their own: targets, refills, surplus, shortfalls and problem slots (no graph, no model)."""

import pytest

from chimera.config import SubjectSpec
from chimera.graphs.taxonomy_plan import (
    GIVEN,
    MAX_EXISTING_IN_PROMPT,
    Expansion,
    Shortfall,
    SubfieldStanding,
    SubjectTask,
    absorbed_names,
    assign_slots,
    dedup_candidates,
    explicit_task,
    final_shortfalls,
    next_position,
    plan_refills,
    refill_tasks,
    shortfall,
    split_surplus,
    split_target,
    subfield_tasks,
    subject_tasks,
    unique_names,
)
from chimera.store.rows import TopicRow
from chimera.tools.topic_dedup import Merge


def topic(name: str, subject: str = "Math", subfield: str = "Algebra", *, position: int = 0, round_: int = 0,
          source: str = "expanded", status: str = "pending", weight: float | None = 1.0) -> TopicRow:
    return TopicRow(id=f"{subject}/{name}", run="r", subject=subject, subfield=subfield, name=name, position=position,
                    source=source, status=status, slots=None, weight=weight, round=round_, created_at=0.0,
                    updated_at=0.0)


def task(subject: str = "Math", target: int | None = 4, *, position: int = 0, weight: float = 1.0) -> SubjectTask:
    return SubjectTask(subject=subject, position=position, target=target, explicit=None, subfields=2, weight=weight)


def expansion(subfield: str, index: int, target: int | None, subject: str = "Math") -> Expansion:
    return Expansion(subject=subject, subfield=subfield, index=index, target=target, topics=0, calls=1)


@pytest.mark.parametrize(("total", "parts", "shares"), [(7, 3, [3, 2, 2]), (2, 3, [1, 1, 0]), (9, 3, [3, 3, 3])])
def test_a_target_splits_evenly_with_the_larger_shares_first(total, parts, shares):
    assert split_target(total, parts) == shares


def test_unique_names_keep_the_first_spelling_and_skip_names_already_listed():
    assert unique_names([" Rings ", "rings!", "Fields", "", "Groups"], existing=["groups"]) == ["Rings", "Fields"]


def test_config_subjects_become_tasks_with_a_target_or_named_topics():
    specs = [SubjectSpec(name="Math", topics=9, weight=2), SubjectSpec(name="Bio", topics=["Genetics"]),
             SubjectSpec(name="CS", topics=4, subfields=["Systems", "Theory"])]
    tasks = subject_tasks(specs)
    assert [(t["subject"], t["position"], t["target"], t["explicit"], t["subfields"], t["weight"]) for t in tasks] == [
        ("Math", 0, 9, None, 3, 2.0), ("Bio", 1, None, ["Genetics"], 1, 1.0),
        ("CS", 2, 4, None, ["Systems", "Theory"], 1.0)]


def test_named_topics_go_to_one_general_subfield_with_nothing_to_ask():
    sent = explicit_task(task("Bio", None, weight=0.5), ["Genetics", "Ecology"])
    assert (sent["subfield"], sent["index"], sent["target"], sent["explicit"], sent["weight"]) == (
        GIVEN, 0, None, ["Genetics", "Ecology"], 0.5)


def test_a_subject_target_splits_over_its_subfields_and_a_zero_share_is_not_expanded():
    sent = subfield_tasks(task(target=2), ["Algebra", "Graphs", "Logic"])
    assert [(t["subfield"], t["index"], t["target"]) for t in sent] == [("Algebra", 0, 1), ("Graphs", 1, 1)]


def test_a_note_that_went_fine_or_met_its_target_is_no_shortfall():
    assert shortfall("Math", "Algebra", "ok", 4, 2) == []
    assert shortfall("Math", "Algebra", "exhausted: no new names", 4, 4) == []
    assert shortfall("Math", "Algebra", "reply: cut at max_tokens", 4, 1) == [Shortfall(
        subject="Math", subfield="Algebra", kind="reply", detail="cut at max_tokens", target=4, got=1)]


def test_refilled_names_go_after_the_subfields_last_topic():
    topics = [topic("A", position=3), topic("B", position=10_001), topic("C", subfield="Graphs", position=50)]
    assert next_position(topics, "Math", "Algebra") == 10_002
    assert next_position(topics, "Math", "Logic") == 0


def test_dedup_weighs_named_topics_first_then_rounds_in_order_then_config_order_and_skips_surplus():
    topics = [topic("late", "Math", round_=2), topic("first", "Bio", position=1), topic("first", "Math", position=5),
              topic("named", "Bio", source="explicit"), topic("refilled", "Math", round_=1),
              topic("aside", "Math", round_=1, status="surplus")]
    ordered = dedup_candidates(topics, [task("Math", position=0), task("Bio", position=1)])
    assert [t["id"] for t in ordered] == ["Bio/named", "Math/first", "Bio/first", "Math/refilled", "Math/late"]


def test_a_merged_topic_passes_on_its_own_name_and_the_name_it_merged_into():
    topics = [topic("Optics", "Physics"), topic("optics.", "CS")]
    assert absorbed_names(topics, [Merge(dropped=1, kept=0, similarity=1.0, method="exact")]) == {
        "CS/optics.": ["optics.", "Optics"]}


def test_surplus_is_the_latest_refills_last_names_and_never_the_first_expansion():
    live = [topic("a"), topic("b"), topic("c", round_=1, position=1), topic("d", round_=2, position=0),
            topic("e", round_=1, position=2), topic("x", "Bio")]
    kept, surplus = split_surplus(live, [task("Math", 3), task("Bio", None)])
    assert [t["name"] for t in surplus] == ["e", "d"]
    assert [t["name"] for t in kept] == ["a", "b", "c", "x"]
    _, too_many_first = split_surplus([topic("a"), topic("b")], [task("Math", 1)])
    assert too_many_first == []


def test_a_refill_asks_the_subfields_furthest_below_their_own_target_first():
    subfields = [SubfieldStanding("Algebra", 0, target=3, live=3, existing=["A"]),
                 SubfieldStanding("Graphs", 1, target=3, live=1, existing=["G"]),
                 SubfieldStanding("Logic", 2, target=3, live=2, existing=["L"])]
    tasks = refill_tasks("Math", 2, subfields, round_=1, weight=2.0)
    assert [(t["subfield"], t["index"], t["count"], t["existing"], t["round"], t["weight"]) for t in tasks] == [
        ("Graphs", 1, 2, ["G"], 1, 2.0)]


def test_a_deficit_past_every_subfields_own_target_spreads_evenly_over_all():
    subfields = [SubfieldStanding("Algebra", 0, target=2, live=2, existing=[]),
                 SubfieldStanding("Graphs", 1, target=2, live=1, existing=[])]
    assert [(t["subfield"], t["count"]) for t in refill_tasks("Math", 4, subfields, 1, 1.0)] == [
        ("Algebra", 2), ("Graphs", 2)]


def test_a_refill_prompt_lists_only_the_latest_names_taken():
    names = [f"T{i}" for i in range(MAX_EXISTING_IN_PROMPT + 5)]
    [sent] = refill_tasks("Math", 1, [SubfieldStanding("Algebra", 0, 2, 1, names)], 1, 1.0)
    assert sent["existing"] == names[-MAX_EXISTING_IN_PROMPT:]


def refill_plan(live, *, topics=None, rounds_done=0, live_before=None, settled=(), max_rounds=4, absorbed=None):
    return plan_refills([task("Math", 4), task("Bio", 2, position=1)],
                        [expansion("Algebra", 0, 2), expansion("Graphs", 1, 2), expansion("General", 0, 2, "Bio"),
                         expansion("Algebra", 0, 0)],
                        topics if topics is not None else live, live, absorbed or {}, rounds_done=rounds_done,
                        live_before=live_before or {}, settled=list(settled), max_rounds=max_rounds)


def test_a_short_subject_asks_for_what_is_missing_and_half_again():
    live = [topic("A1"), topic("A2"), topic("G1", subfield="Graphs"), topic("B1", "Bio", "General"),
            topic("B2", "Bio", "General")]
    plan = refill_plan(live)
    assert plan.live == {"Math": 3, "Bio": 2}
    # 1 missing, 2 asked: Graphs (1 below its own target) first, the rest spread from the first subfield
    assert [(t["subject"], t["subfield"], t["count"], t["round"]) for t in plan.refills] == [
        ("Math", "Algebra", 1, 1), ("Math", "Graphs", 1, 1)]
    assert plan.round == 1 and plan.settled == [] and plan.notes == []


def test_a_refill_lists_the_subfields_live_names_and_those_merged_away():
    merged_away = topic("G-old", subfield="Graphs", status="merged")
    live = [topic("A1"), topic("A2"), topic("G1", subfield="Graphs")]
    plan = refill_plan(live, topics=[*live, merged_away], absorbed={merged_away["id"]: ["G-old", "Rings"]})
    graphs = next(t for t in plan.refills if t["subfield"] == "Graphs")
    assert graphs["existing"] == ["G1", "G-old", "Rings"]


def test_a_round_that_adds_nothing_settles_the_subject_with_a_shortfall():
    live = [topic("A1"), topic("B1", "Bio", "General"), topic("B2", "Bio", "General")]
    plan = refill_plan(live, rounds_done=1, live_before={"Math": 1, "Bio": 2})
    assert plan.refills == [] and plan.settled == ["Math"] and plan.round == 1
    assert plan.notes == [Shortfall(subject="Math", subfield="", kind="short",
                                    detail="refill round 1 added no new topic", target=4, got=1)]


def test_no_refill_round_past_max_rounds_and_a_settled_subject_is_not_asked_again():
    live = [topic("A1")]
    spent = refill_plan(live, rounds_done=4, live_before={"Math": 0})
    assert spent.refills == [] and spent.settled == ["Math", "Bio"] and spent.notes == [] and spent.round == 4
    settled = refill_plan(live, settled=["Math", "Bio"])
    assert settled.refills == [] and settled.settled == ["Math", "Bio"] and settled.round == 0


def test_a_subject_without_an_expanded_subfield_settles_without_asking():
    plan = plan_refills([task("Bio", 3)], [expansion("General", 0, None, "Bio")], [], [], {}, rounds_done=0,
                        live_before={}, settled=[], max_rounds=4)
    assert plan.refills == [] and plan.settled == ["Bio"] and plan.notes == [] and plan.live == {"Bio": 0}


def test_a_subject_ending_short_gets_one_shortfall_saying_how_many_rounds_ran():
    subjects = [task("Math", 4), task("Bio", 2), task("CS", None)]
    noted = Shortfall(subject="Bio", subfield="", kind="short", detail="refill round 1 added no new topic",
                      target=2, got=1)
    found = final_shortfalls(subjects, {"Math": 3, "Bio": 1, "CS": 0}, [noted], rounds=1, max_rounds=4)
    assert found == [Shortfall(subject="Math", subfield="", kind="short", detail="still short after 1 refill round",
                               target=4, got=3)]
    [spent] = final_shortfalls(subjects[:1], {"Math": 3}, [], rounds=4, max_rounds=4)
    assert spent["detail"] == "still short after 4 refill rounds (taxonomy.max_rounds)"


def test_slots_are_per_topic_without_a_total_and_follow_the_weights_with_one():
    topics = [topic("A", weight=2.0), topic("B", weight=1.0), topic("C", weight=None)]
    assert assign_slots(topics, total=None, per_topic=3) == {"Math/A": 3, "Math/B": 3, "Math/C": 3}
    assert assign_slots(topics, total=8, per_topic=3) == {"Math/A": 4, "Math/B": 2, "Math/C": 2}
