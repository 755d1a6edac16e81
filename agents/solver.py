"""Solver: a long reasoning trajectory and a final answer, from the strong reasoning model."""

from __future__ import annotations

from typing import Any

from chimera.agents.base import render
from chimera.models.llm import Reply, RoleClient


def messages(problem: str):
    return render("solver", problem=problem)


async def solve(client: RoleClient, *, problem: str, context: dict[str, Any] | None = None,
                **overrides: Any) -> Reply:
    """The reply's `reasoning` holds the thinking and `content` the text after it, whatever the server's shape.

    `overrides` are request fields for this call only (`seed`, `max_tokens`).
    """
    return await client.complete(messages(problem), context=context, **overrides)
