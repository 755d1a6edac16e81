"""Every prompt, rendered exactly (tests/data/prompts/ holds what each must read), and read back by the
markers the simulator uses (chimera.models.prompt_markers): a prompt file and its reader cannot drift apart."""

import os
from pathlib import Path

import pytest

from chimera.agents import critic, drafter, evaluator, expander, judge, labeler, solver
from chimera.agents.base import repair_turn, with_schema
from chimera.models import prompt_markers as markers

EXPECTED = Path(__file__).parent / "data" / "prompts"
PROBLEM = "A 2 kg cart moves at 3 m/s. What is its kinetic energy in joules?"

CASES = {
    "expander_subfields": expander.subfield_messages("Physics", 4, ["Mechanics", "Optics"]),
    "expander": expander.topic_messages("Physics", "Mechanics", 3, ["Projectile motion"]),
    "drafter": drafter.draft_messages("Physics", "Kinetic energy", ["An earlier problem."]),
    "drafter_revise": drafter.revise_messages("Physics", "Kinetic energy", PROBLEM, "9", ["Reviewer 1 (revise): units"]),
    "critic": critic.messages("Physics", "Kinetic energy", PROBLEM, "9"),
    "solver": solver.messages(PROBLEM),
    "labeler": labeler.messages(PROBLEM, "9", "So the energy is \\boxed{9} J."),
    "judge": judge.messages(PROBLEM, "9", "9 J"),
    "evaluator": evaluator.messages(PROBLEM),
    "repair": repair_turn(critic.messages("Physics", "Kinetic energy", PROBLEM, "9"), "{oops", "not JSON"),
    "schema": with_schema(solver.messages(PROBLEM), "CriticVerdict", '{"type": "object"}'),
}


def rendered(messages) -> str:
    return "\n".join(f"--- {m['role']}\n{m['content']}" for m in messages) + "\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_prompt_renders_exactly_as_written(name):
    path = EXPECTED / f"{name}.txt"
    if os.environ.get("CHIMERA_WRITE_PROMPTS"):  # after changing a prompt on purpose: rewrite, then review the diff
        path.write_text(rendered(CASES[name]))
    assert rendered(CASES[name]) == path.read_text()


def user(name: str) -> str:
    return "\n".join(m["content"] for m in CASES[name] if m["role"] == "user")


def test_the_simulator_reads_back_every_value_a_prompt_carries():
    assert markers.field(user("expander_subfields"), markers.SUBJECT) == "Physics"
    assert markers.field(user("expander_subfields"), markers.SUBFIELD_COUNT) == "4"
    assert markers.listed(user("expander_subfields"), markers.SUBFIELDS_LISTED) == ["Mechanics", "Optics"]
    assert markers.field(user("expander"), markers.SUBFIELD) == "Mechanics"
    assert markers.field(user("expander"), markers.TOPIC_COUNT) == "3"
    assert markers.listed(user("expander"), markers.TOPICS_LISTED) == ["Projectile motion"]
    assert markers.field(user("drafter"), markers.SUBJECT) == "Physics"
    for name in ("drafter_revise", "critic"):
        assert markers.between(user(name), markers.PROBLEM) == PROBLEM
        assert markers.field(user(name), markers.REFERENCE_ANSWER) == "9"
    assert f"<{markers.PROBLEM}>" not in user("drafter"), "a first draft is told apart from a revision by this tag"
    assert markers.between(user("labeler"), markers.PROBLEM) == PROBLEM
    assert markers.field(user("labeler"), markers.REFERENCE_ANSWER) == "9"
    assert markers.between(user("labeler"), markers.SOLUTION) == "So the energy is \\boxed{9} J."
    assert markers.between(user("judge"), markers.ANSWER) == "9 J"
    assert markers.field(user("judge"), markers.REFERENCE_ANSWER) == "9"
    assert markers.between(user("evaluator"), markers.PROBLEM) == PROBLEM
    found = markers.SCHEMA_IN_PROMPT.search(CASES["schema"][-1]["content"])
    assert found is not None and found.group(1) == "CriticVerdict" and found.group(2) == '{"type": "object"}'


def test_every_prompt_file_is_rendered_by_a_case():
    files = {p.name.split(".")[0] for p in (Path(critic.__file__).parent / "prompts").glob("*.md")}
    assert files == set(CASES)
