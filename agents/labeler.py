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


async def label_answer(client: RoleClient | None, *, problem: str, reference: str, response: str, retries: int,
                       context: dict[str, Any] | None = None) -> Grade:
    """The rules decide what they can; only an undecided answer goes to the judge (when one is given)."""
    ruled = grade(reference, response)
    if ruled.correct is not None or client is None:
        return ruled
    verdict = await label(client, problem=problem, reference=reference, solution=response, retries=retries,
                          context=context)
    return Grade(verdict.correct, "judge", verdict.extracted_answer or ruled.extracted, verdict.rationale)
