"""Critic: an independent verdict on one problem and its reference answer."""

from __future__ import annotations

from typing import Any

from chimera.agents.base import ask_structured, render
from chimera.llm import RoleClient
from chimera.records import CriticVerdict


def messages(subject: str, topic: str, problem: str, answer: str):
    return render("critic", subject=subject, topic=topic, problem=problem, answer=answer)


async def critique(client: RoleClient, *, subject: str, topic: str, problem: str, answer: str,
                   retries: int, context: dict[str, Any] | None = None) -> CriticVerdict:
    reply, _ = await ask_structured(client, CriticVerdict, messages(subject, topic, problem, answer),
                                    retries=retries, context=context)
    return reply
