"""Labeler: an LLM judge for answers the grading rules cannot decide."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chimera.agents.base import ask_structured, render
from chimera.models.llm import RoleClient
from chimera.models.reply_schemas import LabelVerdict
from chimera.tools.grading import Grade, grade

SOLUTION_TAIL_CHARS = 4000  # the final answer sits at the end; the whole trajectory would waste the judge's context


def messages(problem: str, reference: str, solution: str):
    return render("labeler", problem=problem, reference=reference, solution=solution[-SOLUTION_TAIL_CHARS:])


async def label(client: RoleClient, *, problem: str, reference: str, solution: str, retries: int,
                context: dict[str, Any] | None = None) -> LabelVerdict:
    reply, _ = await ask_structured(client, LabelVerdict, messages(problem, reference, solution),
                                    retries=retries, context=context)
    return reply


@dataclass(frozen=True)
class Label:
    grade: Grade
    judges: dict[str, bool | None] = field(default_factory=dict)  # each judge asked: its verdict, by role


async def label_answer(judges: RoleClient | list[RoleClient] | None, *, problem: str, reference: str, response: str,
                       retries: int, context: dict[str, Any] | None = None, audit: bool = False) -> Label:
    """The rules decide what they can; only an undecided answer goes to the judge, or to both judges, who must
    agree: when they split, the label stays undecided (`judges-disagree`) and the sample is kept out of SFT.

    `audit`: a rule-decided answer is sent to the judges too, and their verdicts are returned beside the rules'
    label, which stands: that is how the judge's precision is measured against the rules during a run."""
    ruled = grade(reference, response, problem)
    panel = [judges] if isinstance(judges, RoleClient) else list(judges or [])
    decided = ruled.correct is not None or ruled.method != "undecided"
    if not panel or (decided and not (audit and ruled.method not in UNAUDITED)):
        return Label(ruled)
    verdicts = [await label(judge, problem=problem, reference=reference, solution=response, retries=retries,
                            context=context) for judge in panel]
    asked: dict[str, bool | None] = {judge.role: v.correct for judge, v in zip(panel, verdicts)}
    if decided:
        return Label(ruled, asked)
    extracted = verdicts[0].extracted_answer or ruled.extracted
    if len({v.correct for v in verdicts}) > 1:
        detail = " | ".join(f"{judge.role}: {'correct' if v.correct else 'wrong'} ({v.rationale})"
                            for judge, v in zip(panel, verdicts))
        return Label(Grade(None, "judges-disagree", extracted, detail), asked)
    return Label(Grade(verdicts[0].correct, "judge", extracted, " | ".join(v.rationale for v in verdicts)), asked)


# Verdicts that say nothing about a judge's precision: there is no answer to compare.
UNAUDITED = ("empty", "invalid-reference")
