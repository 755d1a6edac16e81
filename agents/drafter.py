"""Drafter: writes a problem with a reference answer, and revises one given critiques."""

from __future__ import annotations

from typing import Any

from chimera.agents.base import ask_structured, numbered, render
from chimera.models.llm import RoleClient
from chimera.models.reply_schemas import DraftedProblem


def draft_messages(subject: str, topic: str, earlier: list[str]):
    return render("drafter", subject=subject, topic=topic, earlier=numbered(earlier))


def revise_messages(subject: str, topic: str, problem: str, answer: str, critiques: list[str]):
    return render("drafter_revise", subject=subject, topic=topic, problem=problem, answer=answer,
                  critiques=numbered(critiques))


async def draft(client: RoleClient, *, subject: str, topic: str, earlier: list[str], retries: int,
                context: dict[str, Any] | None = None) -> DraftedProblem:
    reply, _ = await ask_structured(client, DraftedProblem, draft_messages(subject, topic, earlier),
                                    retries=retries, context=context)
    return reply


async def revise(client: RoleClient, *, subject: str, topic: str, problem: str, answer: str,
                 critiques: list[str], retries: int, context: dict[str, Any] | None = None) -> DraftedProblem:
    reply, _ = await ask_structured(client, DraftedProblem,
                                    revise_messages(subject, topic, problem, answer, critiques),
                                    retries=retries, context=context)
    return reply
