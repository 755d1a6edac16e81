"""Scripted chat models injected as role clients: replies in order, and every prompt they saw."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage

from chimera.config import ModelSpec
from chimera.dispatch import EndpointBudget
from chimera.llm import Replica, RoleClient


class ScriptedChat(FakeMessagesListChatModel):
    seen: list[str] = []

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen = [*self.seen, messages[-1].content]
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


def reply(value: Any, finish_reason: str = "stop") -> AIMessage:
    if isinstance(value, AIMessage):
        return value
    text = value if isinstance(value, str) else json.dumps(value)
    return AIMessage(content=text, response_metadata={"finish_reason": finish_reason})


def cut(text: str) -> AIMessage:
    """A reply the server cut at max_tokens."""
    return reply(text, finish_reason="length")


def scripted(role: str, *replies: Any) -> RoleClient:
    chat = ScriptedChat(responses=[reply(r) for r in replies] or [reply("")])
    replica = Replica(url="scripted://", chat=chat, budget=EndpointBudget("scripted://", 8))
    return RoleClient(role=role, spec=ModelSpec(provider="sim"), model=f"scripted-{role}", replicas=[replica])


def vote(verdict: str, own: str = "7", agrees: bool = True) -> dict[str, Any]:
    return {"verdict": verdict, "reasons": f"{verdict} because", "own_answer": own, "agrees_with_reference": agrees}


def seen(client: RoleClient) -> list[str]:
    """The last message of every prompt a scripted client was sent, in order."""
    return client.replicas[0].chat.seen
