"""Expander: subject -> subfields, and subject + subfield -> fine-grained topics."""

from __future__ import annotations

from typing import Any

from chimera.agents.base import ask_structured, numbered, render
from chimera.models.llm import RoleClient
from chimera.models.reply_schemas import SubfieldList, TopicList


def subfield_messages(subject: str, count: int, existing: list[str]):
    return render("expander_subfields", subject=subject, count=count, existing=numbered(existing))


def topic_messages(subject: str, subfield: str, count: int, existing: list[str]):
    return render("expander", subject=subject, subfield=subfield, count=count, existing=numbered(existing))


async def expand_subfields(client: RoleClient, *, subject: str, count: int, existing: list[str], retries: int,
                           context: dict[str, Any] | None = None) -> list[str]:
    reply, _ = await ask_structured(client, SubfieldList, subfield_messages(subject, count, existing),
                                    retries=retries, context=context, max_items=count)
    return [name.strip() for name in reply.subfields if name.strip()]


async def expand(client: RoleClient, *, subject: str, subfield: str, count: int, existing: list[str],
                 retries: int, context: dict[str, Any] | None = None) -> list[str]:
    reply, _ = await ask_structured(client, TopicList, topic_messages(subject, subfield, count, existing),
                                    retries=retries, context=context, max_items=count)
    return [topic.strip() for topic in reply.topics if topic.strip()]
