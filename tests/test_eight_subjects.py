"""A simulated run across the paper's eight subjects: answers of every type, written in equivalent and
near-miss forms, and labels that agree with the simulator's ground truth."""

import json
import random
import sqlite3
from collections import Counter

from helpers import chimera, write_config

from chimera.sim import problems
from chimera.sim.typed import TYPED_KINDS
from chimera.tools.grading import grade

SUBJECTS = ["Mathematics", "Physics", "Chemistry", "Biology", "Computer Science", "Literature", "History",
            "Linguistics"]


def test_every_typed_answer_form_grades_as_its_ground_truth_says_or_goes_to_the_judge():
    """The simulator's equivalent forms never grade wrong and its near misses never grade right."""
    rng = random.Random(0)
    for kind in TYPED_KINDS:
        for fact in kind.facts:
            for form in (fact.answer, *fact.equivalents):
                result = grade(fact.answer, f"... so the result is $\\boxed{{{form}}}$.", fact.question)
                assert result.correct is not False, (fact.question, form, result)
            for form in fact.near_misses:
                result = grade(fact.answer, f"... so the result is $\\boxed{{{form}}}$.", fact.question)
                assert result.correct is not True, (fact.question, form, result)
                assert problems.accepts(fact.question, form) is False
    assert problems.equivalent_form(TYPED_KINDS[0].facts[0].question, "x", rng) != "x"


def test_a_run_over_eight_subjects_exports_labels_that_agree_with_the_ground_truth(tmp_path):
    config = write_config(tmp_path, subjects=[{"name": s, "topics": 2} for s in SUBJECTS], problems_per_topic=3,
                          sim={"solver_correct_rate": 0.6, "drafter_error_rate": 0.1},
                          dedup={"enabled": False})
    result = chimera("run", str(config), "--quiet", timeout=300)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "all.jsonl"
    assert chimera("export", str(tmp_path / "t.db"), "--format", "jsonl", "-o", str(out)).returncode == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["subject"] for r in records} == set(SUBJECTS)
    db = sqlite3.connect(tmp_path / "t.db")
    methods = Counter(row[0] for row in db.execute("select label_method from samples"))
    typed = [r for r in records if any(k.fact(r["problem"]) for k in TYPED_KINDS)]
    assert len(typed) >= 10, "the simulator drafts typed answers in every subject"
    checked = 0
    for record in records:
        truth = problems.accepts(record["problem"], record["predicted_answer"] or "")
        if truth is None or record["correct"] is None or not problems.accepts(record["problem"], record["answer"]):
            continue  # unsolvable, unlabeled, or a wrong reference that slipped past both critics
        assert record["correct"] == truth, record
        checked += 1
    assert checked >= len(records) * 0.8
    assert methods["judge"] > 0 and sum(methods.values()) - methods["judge"] > 0, methods
