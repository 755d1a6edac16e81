"""Shared pieces of every agent: prompt files and the structured-call loop."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from string import Template
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from chimera.errors import ReplyError
from chimera.llm import Message, Reply, RoleClient
from chimera.records import response_format_for

Parsed = TypeVar("Parsed", bound=BaseModel)
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


@cache
def prompt_template(name: str) -> Template:
    """A prompt file from agents/prompts; `$name` placeholders, so LaTeX braces need no escaping."""
    text = resources.files("chimera.agents").joinpath("prompts", f"{name}.md").read_text(encoding="utf-8")
    return Template(text)


def render(name: str, **values: Any) -> list[Message]:
    """Messages from `<name>.system` and `<name>.user` prompt files."""
    system = prompt_template(f"{name}.system").substitute(values).strip()
    user = prompt_template(f"{name}.user").substitute(values).strip()
    # An empty system file means none is sent (Qwen's thinking models are tuned without one).
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]


def numbered(items: list[str], empty: str = "(none)") -> str:
    return "\n\n".join(f"{i}. {item}" for i, item in enumerate(items, 1)) if items else empty


def parse_reply(schema: type[Parsed], reply: Reply) -> Parsed:
    """Parse a structured reply; raises ValueError with a one-line reason."""
    if reply.truncated:
        raise ValueError("reply cut at max_tokens before the JSON was complete")
    text = reply.content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    if not text:
        raise ValueError("empty reply")
    try:
        return schema.model_validate_json(text)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "reply"
        if first["type"] == "json_invalid":
            raise ValueError(f"not valid JSON ({first['msg']})") from None
        raise ValueError(f"{where}: {first['msg']}") from None


async def ask_structured(
    client: RoleClient,
    schema: type[Parsed],
    messages: list[Message],
    *,
    retries: int,
    context: dict[str, Any] | None = None,
) -> tuple[Parsed, Reply]:
    """One structured call, re-asked up to `retries` times when the reply does not parse."""
    reason, raw = "no reply", None
    for _ in range(retries + 1):
        reply = await client.complete(messages, response_format=response_format_for(schema), context=context)
        try:
            return parse_reply(schema, reply), reply
        except ValueError as error:
            reason, raw = str(error), reply.content
            client.mark_unusable(reply, reason)
    raise ReplyError(client.role, reason, raw)
