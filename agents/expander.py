"""Expander: subject -> fine-grained topics."""

from __future__ import annotations

from typing import Any

from chimera.agents.base import ask_structured, numbered, render
from chimera.llm import RoleClient
from chimera.records import TopicList


def messages(subject: str, count: int, existing: list[str]):
    return render("expander", subject=subject, count=count, existing=numbered(existing))


async def expand(client: RoleClient, *, subject: str, count: int, existing: list[str],
                 retries: int, context: dict[str, Any] | None = None) -> list[str]:
    reply, _ = await ask_structured(client, TopicList, messages(subject, count, existing),
                                    retries=retries, context=context)
    return [topic.strip() for topic in reply.topics if topic.strip()]
