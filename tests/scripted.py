"""Scripted model endpoints injected as role clients: replies in order, each once, and every prompt they were sent;
and the graph `Deps` of a run answered by them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chimera.config import ModelSpec, parse_config
from chimera.graphs.deps import Deps
from chimera.models.dispatch import EndpointBudget
from chimera.models.llm import Replica, RoleClient
from chimera.store import Store
from chimera.store.nonblocking import AsyncStore
from chimera.tools.dedup import ProblemIndex


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


class ScriptSpent(BaseException):
    """A scripted endpoint was called once more than its script has replies: the test under-scripted it, or the
    code under test asks more often than the test says it should. A BaseException so that no `except Exception`
    in the code under test (a call's retries, a failed problem slot) turns it into an ordinary failed call: it
    ends the test, with its message."""


class ScriptedTransport:
    """Answers from a list, in order, once each; records every request body."""

    def __init__(self, replies: list[dict[str, Any]], name: str = "scripted"):
        self.replies = replies
        self.name = name
        self.bodies: list[dict[str, Any]] = []

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        if len(self.bodies) >= len(self.replies):
            raise ScriptSpent(f"{self.name}: call {len(self.bodies) + 1} arrived, but the script has only "
                              f"{len(self.replies)} repl{'y' if len(self.replies) == 1 else 'ies'}; its prompt: "
                              f"{_last_message(body)[:200]!r}")
        self.bodies.append(body)
        return self.replies[len(self.bodies) - 1]

    async def close(self) -> None:
        return None


def _last_message(body: dict[str, Any]) -> str:
    return str(body["messages"][-1]["content"])


def scripted(role: str, *replies: Any) -> RoleClient:
    transport = ScriptedTransport([reply(r) for r in replies], name=f"scripted {role}")
    replica = Replica(url="scripted://", transport=transport, budget=EndpointBudget("scripted://", 8))
    return RoleClient(role=role, spec=ModelSpec(provider="sim"), model=f"scripted-{role}", replicas=[replica])


def vote(verdict: str, own: str = "7", agrees: bool = True) -> dict[str, Any]:
    return {"verdict": verdict, "reasons": f"{verdict} because", "own_answer": own, "agrees_with_reference": agrees}


def seen(client: RoleClient) -> list[str]:
    """The last message of every request a scripted client was sent, in order."""
    return [_last_message(body) for body in client.replicas[0].transport.bodies]


def scripted_deps(tmp_path: Path, clients: dict[str, RoleClient], *, index: ProblemIndex | None = None,
                  **settings: Any) -> Deps:
    """The graph context of run "r" in `tmp_path`/r.db whose roles are `clients`; `settings` are the config's
    sections beside `run` (subjects, max_revisions, ...). The store thread runs the database, as in a real run;
    tests read and seed it through `deps.store.sync`."""
    db = tmp_path / "r.db"
    config = parse_config({"run": {"name": "r", "db": str(db)}, **settings})
    return Deps(config=config, store=AsyncStore(Store(db)).for_graphs, clients=clients, index=index)
