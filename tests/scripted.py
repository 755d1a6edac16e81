"""Scripted model endpoints injected as role clients: replies in order, and every prompt they were sent."""

from __future__ import annotations

import json
from typing import Any

from chimera.config import ModelSpec
from chimera.models.dispatch import EndpointBudget
from chimera.models.llm import Replica, RoleClient


def completion(text: str, finish_reason: str = "stop") -> dict[str, Any]:
    """A chat completion as a server would send it."""
    return {"model": "scripted", "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                              "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 10, "completion_tokens": max(1, len(text) // 4)}}


def reply(value: Any, finish_reason: str = "stop") -> dict[str, Any]:
    if isinstance(value, dict) and "choices" in value:
        return value
    return completion(value if isinstance(value, str) else json.dumps(value), finish_reason)


def cut(text: str) -> dict[str, Any]:
    """A reply the server cut at max_tokens."""
    return reply(text, finish_reason="length")


class ScriptedTransport:
    """Answers from a list, cycling; records the last message of each request body."""

    def __init__(self, replies: list[dict[str, Any]]):
        self.replies = replies
        self.bodies: list[dict[str, Any]] = []

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        return self.replies[(len(self.bodies) - 1) % len(self.replies)]

    async def close(self) -> None:
        return None


def scripted(role: str, *replies: Any) -> RoleClient:
    transport = ScriptedTransport([reply(r) for r in replies] or [reply("")])
    replica = Replica(url="scripted://", transport=transport, budget=EndpointBudget("scripted://", 8))
    return RoleClient(role=role, spec=ModelSpec(provider="sim"), model=f"scripted-{role}", replicas=[replica])


def vote(verdict: str, own: str = "7", agrees: bool = True) -> dict[str, Any]:
    return {"verdict": verdict, "reasons": f"{verdict} because", "own_answer": own, "agrees_with_reference": agrees}


def seen(client: RoleClient) -> list[str]:
    """The last message of every request a scripted client was sent, in order."""
    return [body["messages"][-1]["content"] for body in client.replicas[0].transport.bodies]
