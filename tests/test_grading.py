"""Answer grading: each rule decides the cases it owns, passes the rest on, and agrees with a careful human."""

import asyncio
import json
from pathlib import Path

import pytest
from scripted import scripted, seen

from chimera.agents.labeler import label_answer
from chimera.tools.grading import extract_final_answer, grade, normalize
from helpers import chimera

DATA = Path(__file__).parent / "data"
SETS = ["grading_pairs.jsonl", "grading_pairs_heldout.jsonl"]


def labelled(name):
    return [json.loads(line) for line in (DATA / name).read_text().splitlines()]


@pytest.mark.parametrize("name", SETS)
def test_agrees_with_a_careful_human_grader_on_at_least_98_percent(name):
    pairs = labelled(name)
    agree = sum(grade(p["reference"], p["response"]).correct is p["human"] for p in pairs)
    assert len(pairs) >= 30 and agree / len(pairs) >= 0.98, f"{agree}/{len(pairs)}"


def test_the_labelled_set_is_varied():
    categories = {p["category"] for name in SETS for p in labelled(name)}
    assert len([p for name in SETS for p in labelled(name)]) >= 100
    assert categories >= {"integer", "fraction", "radical", "expression", "equation", "set", "interval",
                          "scientific", "percent", "units", "choice", "matrix", "complex", "yesno", "big-o",
                          "prose", "empty"}


@pytest.mark.parametrize("response, expected", [
    ("long work... \\boxed{\\frac{1}{\\sqrt{2}}} and done", "\\frac{1}{\\sqrt{2}}"),
    ("first \\boxed{1} then \\boxed{2}", "2"),
    ("**Answer: B**", "B"),
    ("Some reasoning.\nFinal answer: 12 apples.", "12 apples"),
    ("The answer is $7$.", "$7$"),
    ("B", "B"),
    ("A long paragraph of prose that never commits to any single final value at all, going on and on.", None),
    ("", None),
])
def test_extraction(response, expected):
    assert extract_final_answer(response) == expected


@pytest.mark.parametrize("raw, normalized", [
    ("\\dfrac{1}{2}", "\\frac{1}{2}"), ("\\text{(B)}", "(B)"), ("1,234,567", "1234567"),
    ("x = 3", "3"), ("$45\\%$", "45%"), ("\\mathrm{J}", "J"), ("45^\\circ", "45°"),
])
def test_normalization(raw, normalized):
    assert normalize(raw) == normalized


@pytest.mark.parametrize("reference, response, method, correct", [
    ("7", "\\boxed{7}", "exact", True),
    ("C", "The answer is (C).", "choice", True),
    ("0.75", "\\boxed{3/4}", "numeric", True),
    ("1267650600228229401496703205376", "\\boxed{1267650600228229401496703205377}", "numeric", False),
    ("2, -3", "\\boxed{-3, 2}", "roots", True),
    ("O(n \\log n)", "\\boxed{O(n\\log n)}", "text", True),
    ("x^2+2x+1", "\\boxed{(x+1)^2}", "evaluation", True),
    ("(0, 1]", "\\boxed{(0,1)}", "evaluation", False),
    ("y = 2x + 1", "\\boxed{y=1+2x}", "evaluation", True),
    ("\\begin{pmatrix}1 & 2\\\\ 3 & 4\\end{pmatrix}", "\\boxed{\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}}", "math-verify", True),
    ("villanelle", "\\boxed{sonnet}", "undecided", None),
    ("42", "", "empty", False),
])
def test_each_rule_decides_what_it_owns(reference, response, method, correct):
    result = grade(reference, response)
    assert (result.method, result.correct) == (method, correct), result


def test_the_judge_is_called_only_when_no_rule_decides():
    judge = scripted("labeler", {"correct": True, "extracted_answer": "the sonnet", "rationale": "synonym"})
    pairs = [("7", "\\boxed{7}"), ("3/4", "\\boxed{0.75}"), ("sonnet", "\\boxed{the sonnet form}"),
             ("A", "**Answer: B**")]

    async def go():
        return [await label_answer(judge, problem="p", reference=r, response=s, retries=0) for r, s in pairs]

    grades = asyncio.run(go())
    assert len(seen(judge)) == 1
    assert [g.method for g in grades] == ["exact", "numeric", "judge", "choice"]
    assert grades[2].correct is True and grades[2].detail == "synonym"


def test_cli_grades_jsonl_in_order_without_a_model(tmp_path):
    lines = [{"reference": "3/4", "response": "\\boxed{0.75}", "id": 1},
             {"reference": "B", "response": "Answer: C"},
             {"reference": "mitosis", "response": "\\boxed{meiosis}"}]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines))
    result = chimera("grade", "--jsonl", str(path), "--no-judge")
    assert result.returncode == 0, result.stderr
    grades = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(g["correct"], g["method"]) for g in grades] == [(True, "numeric"), (False, "choice"), (None, "undecided")]
    needs_judge = chimera("grade", "--jsonl", str(path))
    assert needs_judge.returncode == 1 and "--no-judge" in needs_judge.stderr


def test_cli_single_pair_and_bad_input(tmp_path):
    single = chimera("grade", "--reference", "\\sqrt{2}", "--response", "so \\boxed{1.41}")
    assert json.loads(single.stdout) == {"correct": True, "method": "numeric", "extracted": "1.41",
                                         "detail": "decimal against the exact value, to the decimal's precision"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"reference": "1", "response": "1"}\n{"reference": 1}\n')
    result = chimera("grade", "--jsonl", str(bad))
    assert result.returncode == 1
    assert result.stderr.strip() == f'chimera: error: {bad}:2: needs string fields "reference" and "response"'
