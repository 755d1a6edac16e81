"""Critic: an independent verdict on one problem and its reference answer."""

from __future__ import annotations

from typing import Any

from chimera.agents.base import ask_structured, render
from chimera.models.llm import RoleClient
from chimera.models.reply_schemas import CriticVerdict
from chimera.tools.grading import grade


def messages(subject: str, topic: str, problem: str, answer: str):
    return render("critic", subject=subject, topic=topic, problem=problem, answer=answer)


async def critique(client: RoleClient, *, subject: str, topic: str, problem: str, answer: str,
                   retries: int, context: dict[str, Any] | None = None) -> CriticVerdict:
    reply, _ = await ask_structured(client, CriticVerdict, messages(subject, topic, problem, answer),
                                    retries=retries, context=context)
    return reply


def answer_matches(reference: str, own_answer: str | None, claimed: bool,
                   problem: str | None = None) -> tuple[bool, str]:
    """Does a critic's own answer match the reference? The grader decides (the same one that labels
    trajectories, so another unit or notation agrees and right digits in a wrong unit do not); the critic's
    word only when no rule is certain."""
    if not own_answer:
        return False, "no answer"
    result = grade(reference, own_answer, problem)
    if result.correct is None:
        return claimed, "critic's claim"
    if result.method in ("placeholder", "empty"):
        return False, result.method
    return result.correct, result.method
