"""Evaluator: rates a problem's quality on four criteria (for `chimera eval quality`)."""

from __future__ import annotations

from typing import Any

from chimera.agents.base import ask_structured, render
from chimera.models.llm import Message, RoleClient
from chimera.models.reply_schemas import QualityRating


def messages(problem: str) -> list[Message]:
    return render("evaluator", problem=problem)


async def rate(client: RoleClient, *, problem: str, retries: int,
               context: dict[str, Any] | None = None) -> QualityRating:
    rating, _ = await ask_structured(client, QualityRating, messages(problem),
                                     retries=retries, context=context)
    return rating
