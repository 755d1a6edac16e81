"""Labeler: an LLM judge for answers the grading rules cannot decide."""

from __future__ import annotations

from typing import Any

from chimera.agents.base import ask_structured, render
from chimera.llm import RoleClient
from chimera.records import LabelVerdict
from chimera.tools.grading import Grade, grade

SOLUTION_TAIL_CHARS = 4000  # the final answer sits at the end; the whole trajectory would waste the judge's context


def messages(problem: str, reference: str, solution: str):
    return render("labeler", problem=problem, reference=reference, solution=solution[-SOLUTION_TAIL_CHARS:])


async def label(client: RoleClient, *, problem: str, reference: str, solution: str, retries: int,
                context: dict[str, Any] | None = None) -> LabelVerdict:
    reply, _ = await ask_structured(client, LabelVerdict, messages(problem, reference, solution),
                                    retries=retries, context=context)
    return reply


async def label_answer(judges: RoleClient | list[RoleClient] | None, *, problem: str, reference: str, response: str,
                       retries: int, context: dict[str, Any] | None = None) -> Grade:
    """The rules decide what they can; only an undecided answer goes to the judge, or to both judges, who must
    agree: when they split, the label stays undecided (`judges-disagree`) and the sample is kept out of SFT."""
    ruled = grade(reference, response, problem)
    panel = [judges] if isinstance(judges, RoleClient) else list(judges or [])
    if ruled.correct is not None or ruled.method != "undecided" or not panel:
        return ruled
    verdicts = [await label(judge, problem=problem, reference=reference, solution=response, retries=retries,
                            context=context) for judge in panel]
    extracted = verdicts[0].extracted_answer or ruled.extracted
    if len({v.correct for v in verdicts}) > 1:
        detail = " | ".join(f"{judge.role}: {'correct' if v.correct else 'wrong'} ({v.rationale})"
                            for judge, v in zip(panel, verdicts))
        return Grade(None, "judges-disagree", extracted, detail)
    return Grade(verdicts[0].correct, "judge", extracted, " | ".join(v.rationale for v in verdicts))
