"""The simulator's Message Batches API, in the shape of Anthropic's (`/v1/messages/batches`), beside its
OpenAI-shaped one (chimera.sim.batches). Each request's Messages parameters are turned back into the chat body
chimera would have sent online (`chat_body`) and answered by the same oracle, so a batched item gets the
reply its online request gets; the completion then goes out as an Anthropic message (`anthropic_message`).

The round trip is exact for what chimera sends by default: system and user/assistant messages, temperature
(up to 1), top_p, a token limit (read back as max_completion_tokens, chimera's default field) and a
json_schema response_format (read back from the system prompt, where chimera.models.batch_anthropic writes it).
What Messages has no place for cannot come back, so those requests are answered as other requests: no token
limit (the batch carries chimera.models.batch_anthropic's default), json_object or TGI's response_format, the
max_tokens field name, temperature above 1, seed and reasoning_effort (a solver's samples differ only in seed).

The settings, the counter of items received per custom_id (`GET /sim/batch-items`) and the prefix cache are
the OpenAI desk's, shared."""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from chimera.models.batch_anthropic import SCHEMA_HINT, SYSTEM_JOINER
from chimera.models.prompt_markers import SCHEMA_IN_PROMPT
from chimera.sim.batches import BatchDesk
from chimera.sim.oracle import seeded

CUSTOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_REQUESTS = 100_000
HINT_START = SCHEMA_HINT.split("{name}")[0]  # "Reply with only a JSON object that matches this JSON Schema ("
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}


@dataclass
class MessageBatch:
    id: str
    created_at: float
    requests: list[dict[str, Any]]
    status: str = "in_progress"
    ended_at: float | None = None
    cancel_initiated_at: float | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def public(self, host: str) -> dict[str, Any]:
        ended = self.status == "ended"
        counts = self.counts if ended else {"processing": len(self.requests), "succeeded": 0, "errored": 0,
                                            "canceled": 0, "expired": 0}
        return {
            "id": self.id, "type": "message_batch", "processing_status": self.status, "request_counts": counts,
            "created_at": rfc3339(self.created_at), "expires_at": rfc3339(self.created_at + 86400),
            "ended_at": rfc3339(self.ended_at), "cancel_initiated_at": rfc3339(self.cancel_initiated_at),
            "archived_at": None,
            "results_url": f"{host}/v1/messages/batches/{self.id}/results" if ended else None,
        }


class MessageBatchDesk:
    """Message Batches, held in memory for the simulator's life; the oracle and the rest are `desk`'s."""

    def __init__(self, desk: BatchDesk):
        self.desk = desk
        self.batches: dict[str, MessageBatch] = {}
        self._ids = itertools.count(1)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages/batches", self.create)
        app.router.add_get("/v1/messages/batches", self.listing)
        app.router.add_get("/v1/messages/batches/{batch_id}", self.retrieve)
        app.router.add_get("/v1/messages/batches/{batch_id}/results", self.results)
        app.router.add_post("/v1/messages/batches/{batch_id}/cancel", self.cancel)

    async def create(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return error_reply(400, "invalid_request_error", "request body is not valid JSON")
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not 1 <= len(requests) <= MAX_REQUESTS \
                or not all(isinstance(r, dict) and isinstance(r.get("params"), dict) for r in requests):
            return error_reply(400, "invalid_request_error",
                               f"requests: a list of 1 to {MAX_REQUESTS} objects, each with custom_id and params")
        ids = [r.get("custom_id") for r in requests]
        if not all(isinstance(i, str) and CUSTOM_ID.fullmatch(i) for i in ids) or len(set(ids)) != len(ids):
            return error_reply(400, "invalid_request_error",
                               "requests.custom_id: 1 to 64 of [a-zA-Z0-9_-], unique within the batch")
        for custom_id in ids:
            self.desk.items_received[str(custom_id)] += 1
        batch = MessageBatch(id=f"msgbatch_sim{next(self._ids):06d}", created_at=time.time(), requests=requests)
        self.batches[batch.id] = batch
        return web.json_response(batch.public(_host(request)))

    async def retrieve(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is None:
            return error_reply(404, "not_found_error", "no such message batch")
        self._advance(batch)
        return web.json_response(batch.public(_host(request)))

    async def listing(self, request: web.Request) -> web.Response:
        newest_first = sorted(self.batches.values(), key=lambda b: b.id, reverse=True)
        if request.query.get("after_id"):  # the page after this one: older batches
            newest_first = [b for b in newest_first if b.id < request.query["after_id"]]
        if request.query.get("before_id"):
            newest_first = [b for b in newest_first if b.id > request.query["before_id"]]
        try:
            limit = max(1, min(1000, int(request.query.get("limit", "20"))))
        except ValueError:
            return error_reply(400, "invalid_request_error", "limit: an integer from 1 to 1000")
        page = newest_first[:limit]
        for batch in page:
            self._advance(batch)
        return web.json_response({"data": [b.public(_host(request)) for b in page], "has_more": len(newest_first) > limit,
                                  "first_id": page[0].id if page else None, "last_id": page[-1].id if page else None})

    async def cancel(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is None:
            return error_reply(404, "not_found_error", "no such message batch")
        self._advance(batch)
        if batch.status == "in_progress":  # what has not run yet is canceled at the next look
            batch.status, batch.cancel_initiated_at = "canceling", time.time()
        return web.json_response(batch.public(_host(request)))

    async def results(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is None:
            return error_reply(404, "not_found_error", "no such message batch")
        self._advance(batch)
        if batch.status != "ended":
            return error_reply(400, "invalid_request_error", "the batch is still processing: no results yet")
        text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in batch.results)
        return web.Response(body=text.encode(), content_type="application/x-jsonl")

    def _advance(self, batch: MessageBatch) -> None:
        """A batch ends once its delay has passed; some expire with half their requests answered, and a
        canceled one ends with none answered."""
        if batch.status == "ended":
            return
        if batch.status == "canceling":
            self._finish(batch, answered=0, left="canceled")
        elif time.time() - batch.created_at >= self.desk.settings.batch_delay_s:
            expires = seeded(self.desk.seed, "batch-expiry", batch.id).random() < self.desk.settings.batch_expire_rate
            self._finish(batch, answered=len(batch.requests) // 2 if expires else len(batch.requests), left="expired")

    def _finish(self, batch: MessageBatch, *, answered: int, left: str) -> None:
        for index, item in enumerate(batch.requests):
            custom_id = str(item["custom_id"])
            draw = seeded(self.desk.seed, "batch-item", custom_id, self.desk.items_received[custom_id]).random()
            if index >= answered:
                result: dict[str, Any] = {"type": left}
            elif draw < self.desk.settings.batch_item_error_rate:
                result = errored("api_error", "internal error (injected)")
            elif problem := invalid(item["params"]):
                result = errored("invalid_request_error", problem)
            else:
                result = {"type": "succeeded", "message": self._answer(item["params"])}
            batch.results.append({"custom_id": custom_id, "result": result})
        kinds = [line["result"]["type"] for line in batch.results]
        batch.counts = {"processing": 0, **{kind: kinds.count(kind) for kind in
                                            ("succeeded", "errored", "canceled", "expired")}}
        batch.status, batch.ended_at = "ended", time.time()

    def _answer(self, params: dict[str, Any]) -> dict[str, Any]:
        body = chat_body(params)
        reply = self.desk.oracle.respond(body)
        return anthropic_message(reply, self.desk.cached_tokens(str(body.get("model")), body["messages"]))


def invalid(params: dict[str, Any]) -> str | None:
    """Why Anthropic would refuse these Messages parameters (the checks the simulator makes), or None."""
    if not isinstance(params.get("model"), str):
        return "params.model: a model name is required"
    if not isinstance(params.get("max_tokens"), int) or params["max_tokens"] < 1:
        return "params.max_tokens: an integer of at least 1 is required"
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and m.get("role") in ("user", "assistant") for m in messages):
        return "params.messages: a non-empty list of user and assistant messages is required"
    temperature = params.get("temperature")
    if temperature is not None and not (isinstance(temperature, int | float) and 0 <= temperature <= 1):
        return "params.temperature: a number from 0 to 1"
    return None


def chat_body(params: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions body these Messages parameters were made from, as far as they tell it."""
    system = _text(params.get("system"))
    name, schema = None, None
    start = system.rfind(HINT_START)
    found = SCHEMA_IN_PROMPT.search(system[start:]) if start >= 0 else None
    if found:
        try:
            name, schema = found.group(1), json.loads(found.group(2))
            system = system[:start].removesuffix(SYSTEM_JOINER)
        except ValueError:
            name = None
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": m.get("role"), "content": _text(m.get("content"))} for m in params.get("messages") or []]
    body: dict[str, Any] = {"model": params.get("model"), "messages": messages,
                            "max_completion_tokens": params.get("max_tokens")}
    for name_in_both in ("temperature", "top_p"):
        if name_in_both in params:
            body[name_in_both] = params[name_in_both]
    if params.get("stop_sequences"):
        body["stop"] = params["stop_sequences"]
    if name is not None:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
    return body


def anthropic_message(completion: dict[str, Any], cached: int) -> dict[str, Any]:
    """A chat completion as the Messages API's reply: its reasoning as a thinking block before the text, and
    the prompt's tokens split into those read from the cache and the rest."""
    choice = completion["choices"][0]
    message = choice["message"]
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    blocks: list[dict[str, Any]] = [{"type": "thinking", "thinking": reasoning, "signature": "sim"}] if reasoning else []
    blocks.append({"type": "text", "text": message.get("content") or ""})
    usage = completion["usage"]
    read = min(cached, usage["prompt_tokens"])
    counted: dict[str, Any] = {"input_tokens": usage["prompt_tokens"] - read, "cache_read_input_tokens": read,
                               "cache_creation_input_tokens": 0, "output_tokens": usage["completion_tokens"]}
    thinking_tokens = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
    if thinking_tokens:
        counted["output_tokens_details"] = {"thinking_tokens": thinking_tokens}
    return {"id": "msg_" + str(completion["id"]).removeprefix("chatcmpl-"), "type": "message", "role": "assistant",
            "model": completion["model"], "content": blocks,
            "stop_reason": STOP_REASONS.get(choice.get("finish_reason"), "end_turn"), "stop_sequence": None,
            "usage": counted}


def errored(kind: str, message: str) -> dict[str, Any]:
    return {"type": "errored", "error": {"type": "error", "error": {"type": kind, "message": message}}}


def error_reply(status: int, kind: str, message: str) -> web.Response:
    """An error in Anthropic's shape, as its SDK reads it."""
    return web.json_response({"type": "error", "error": {"type": kind, "message": message}}, status=status)


def rfc3339(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


def _host(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(b.get("text") or "") for b in content if isinstance(b, dict))
    return "" if content is None else str(content)
