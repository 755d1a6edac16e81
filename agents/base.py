"""Shared pieces of every agent: prompt files and the structured-call loop."""

from __future__ import annotations

import logging
import re
from functools import cache
from importlib import resources
from string import Template
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from chimera.errors import ReplyError
from chimera.models.json_repair import mend_latex_escapes
from chimera.models.llm import Message, Reply, RoleClient
from chimera.models.prompt_markers import contained
from chimera.models.reply_schemas import request_shape

Parsed = TypeVar("Parsed", bound=BaseModel)
log = logging.getLogger("chimera.replies")  # retries of replies that could not be used
REPAIR_ECHO_CHARS = 4000  # how much of an unusable reply goes back to the model with the repair turn
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


@cache
def prompt_template(name: str) -> Template:
    """A prompt file from agents/prompts; `$name` placeholders, so LaTeX braces need no escaping."""
    text = resources.files("chimera.agents").joinpath("prompts", f"{name}.md").read_text(encoding="utf-8")
    return Template(text)


def render(name: str, **values: Any) -> list[Message]:
    """Messages from `<name>.system` and `<name>.user` prompt files."""
    values = {key: contained(value) if isinstance(value, str) else value for key, value in values.items()}
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
        return schema.model_validate_json(mend_latex_escapes(text))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "reply"
        if first["type"] == "json_invalid":
            raise ValueError(f"not valid JSON ({first['msg']})") from None
        raise ValueError(f"{where}: {first['msg']}") from None


def repair_turn(messages: list[Message], bad_reply: str, reason: str) -> list[Message]:
    """The request again, with the unusable reply and what was wrong with it, so the model can fix it."""
    echo = bad_reply if len(bad_reply) <= REPAIR_ECHO_CHARS else bad_reply[:REPAIR_ECHO_CHARS] + " ..."
    return [*messages, {"role": "assistant", "content": echo},
            {"role": "user", "content": prompt_template("repair.user").substitute(error=reason).strip()}]


def with_schema(messages: list[Message], name: str, schema_text: str) -> list[Message]:
    """The request with the reply schema spelled out in its last message, for endpoints that cannot take it
    as a response_format."""
    hint = prompt_template("schema.user").substitute(name=name, schema=schema_text).strip()
    last = messages[-1]
    return [*messages[:-1], {**last, "content": f"{last['content']}\n\n{hint}"}]


def grown_limit(current: int | None, used: int, cap: int) -> int | None:
    """The token limit for asking a cut reply again: twice the limit it hit, at most `cap`; None at the cap."""
    hit = current or used
    grown = min(cap, 2 * max(hit, 1))
    return grown if grown > hit else None


async def ask_structured(
    client: RoleClient,
    schema: type[Parsed],
    messages: list[Message],
    *,
    retries: int,
    context: dict[str, Any] | None = None,
    max_items: int | None = None,
) -> tuple[Parsed, Reply]:
    """One structured call, asked again up to `retries` times when the reply cannot be used.

    A reply cut at max_tokens is asked again with twice the limit (up to the role's cap), never resent
    as it was; a reply that does not parse is asked again with the parse error shown (a repair turn).
    `max_items`: the list in the reply holds at most this many names (sent as the schema's maxItems).
    """
    response_format, schema_text = request_shape(schema, max_items, client.spec.schema_limits,
                                                 client.spec.structured_output)
    if schema_text is not None:
        messages = with_schema(messages, schema.__name__, schema_text)
    turn, limit = messages, client.spec.max_tokens
    reason, raw = "no reply", None
    for attempt in range(retries + 1):
        reply = await client.complete(turn, response_format=response_format, context=context,
                                      **({"max_tokens": limit} if limit is not None else {}))
        try:
            return parse_reply(schema, reply), reply
        except ValueError as error:
            reason, raw = str(error), reply.content
            await client.mark_unusable(reply, reason)
        if attempt == retries:
            break
        if reply.truncated:
            grown = grown_limit(limit, reply.tokens_out, client.spec.token_cap())
            if grown is None:
                reason = f"{reason} (at max_tokens_cap {client.spec.token_cap()})"
                break
            log.warning("%s reply cut at %d tokens; asking again with max_tokens %d", client.role,
                        limit or reply.tokens_out, grown)
            limit = grown
        else:
            log.warning("%s reply unusable (%s); asking again with the error shown", client.role, reason)
            turn = repair_turn(messages, reply.content, reason)
    raise ReplyError(client.role, reason, raw)
