"""Anthropic's Message Batches API as a role's batch backend (`batch: true, batch_api: anthropic`), through the
official `anthropic` SDK (the `anthropic` extra).

The role's online calls go to Anthropic's OpenAI-compatible endpoint (its `base_url`, such as
https://api.anthropic.com/v1); its batches go to the same host's `/v1/messages/batches`. The queue
(chimera.models.batching.BatchQueue) speaks chat completions, so each request is turned into Messages API parameters
on the way in (`messages_params`) and each result back into a chat completion on the way out
(`completion_from_message`); both are pure functions.

What differs from OpenAI's batch API:
- a batch is made in one request that carries its items: there is no input file, and no metadata either, so a
  batch cannot be told by our local id (`find` answers None). A process killed after Anthropic made a batch and
  before the run's database recorded its id (a window of one HTTP reply), or a create whose reply was lost on
  the way back, leaves that batch running at Anthropic unrecorded: its items are sent again in a new batch, and
  both are billed.
- items are answered `succeeded`, `errored`, `canceled` or `expired`; an error of Anthropic's (api_error,
  overloaded_error, rate_limit_error, timeout_error) is retried in the next batch, a refused request
  (invalid_request_error and the like) is not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

from chimera.errors import ConfigError
from chimera.models.batching import BATCH_ID_FIELD, BatchItemFailed, Outcome, ProviderBatch

DEFAULT_MAX_TOKENS = 4096  # Messages requires max_tokens; sent when the role sets none
CUSTOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # Anthropic's rule; a request key is 64 hex digits
# The reply schema of a json_schema request, spelled out at the end of the system prompt (Messages has no
# response_format). The sentence is the one chimera's JSON mode writes (agents/prompts/schema.user.md), which
# chimera.models.prompt_markers.SCHEMA_IN_PROMPT reads back.
SCHEMA_HINT = "Reply with only a JSON object that matches this JSON Schema ({name}):\n{schema}"
SYSTEM_JOINER = "\n\n"
FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
                  "model_context_window_exceeded": "length", "tool_use": "tool_calls", "refusal": "content_filter"}
ERROR_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
                "permission_error": 403, "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429,
                "api_error": 500, "timeout_error": 504, "overloaded_error": 529}
RETRYABLE_ERRORS = ("api_error", "overloaded_error", "rate_limit_error", "timeout_error")
MISSING_SDK = "batch_api: anthropic needs the anthropic package: pip install 'chimera-engine[anthropic]'"


def schema_hint(name: str, schema: dict[str, Any]) -> str:
    return SCHEMA_HINT.format(name=name, schema=json.dumps(schema, ensure_ascii=False))


def messages_params(body: dict[str, Any]) -> dict[str, Any]:
    """A chat-completions request body as Messages API parameters.

    - system (and developer) messages become `system`, joined by a blank line; user and assistant turns stay
      as they are, their content as text;
    - `max_tokens` from max_completion_tokens or max_tokens, else DEFAULT_MAX_TOKENS (Messages requires one);
    - temperature (capped at 1, Anthropic's range, as its OpenAI-compatible endpoint caps it), top_p, and
      `stop` as stop_sequences (whitespace-only ones left out, which Anthropic refuses);
    - a json_schema response_format: Messages takes none, so its schema is spelled out at the end of the system
      prompt (SCHEMA_HINT); chimera checks every reply against the schema anyway. json_object and TGI's form
      are left out: their schema is in the prompt already (structured_output json_object or tgi);
    - fields Messages takes under the same name (thinking, top_k), as a role's extra_body sets them, are passed;
      the rest (reasoning_effort, seed, penalties, logprobs, n, user, ...) are left out, as Anthropic's
      OpenAI-compatible endpoint ignores them.
    """
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in body.get("messages") or []:
        role, text = message.get("role"), _text(message.get("content"))
        if role in ("system", "developer"):
            system.append(text)
        elif role in ("user", "assistant"):
            turns.append({"role": role, "content": text})
        else:
            raise ValueError(f"a message of role {role!r} cannot go in an Anthropic batch request")
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        wanted = fmt.get("json_schema") or {}
        system.append(schema_hint(str(wanted.get("name") or "Reply"), wanted.get("schema") or {}))
    limit = next((body[name] for name in ("max_completion_tokens", "max_tokens")
                  if isinstance(body.get(name), int) and body[name] > 0), DEFAULT_MAX_TOKENS)
    params: dict[str, Any] = {"model": body.get("model"), "max_tokens": limit, "messages": turns}
    if any(system):
        params["system"] = SYSTEM_JOINER.join(part for part in system if part)
    if isinstance(body.get("temperature"), int | float):
        params["temperature"] = min(body["temperature"], 1.0)
    for name in ("top_p", "top_k", "thinking"):
        if body.get(name) is not None:
            params[name] = body[name]
    stop = body.get("stop")
    stops = [s for s in ([stop] if isinstance(stop, str) else stop or []) if isinstance(s, str) and s.strip()]
    if stops:
        params["stop_sequences"] = stops
    return params


def _text(content: Any) -> str:
    """A message's content as text: a string, or the text of its content parts."""
    if isinstance(content, list):
        return "".join(str(part.get("text") or "") for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def completion_from_message(message: dict[str, Any], batch_id: str) -> dict[str, Any]:
    """A Messages API reply as a chat completion: its text blocks as the content, its thinking blocks as
    reasoning_content, stop_reason as finish_reason, and usage counted as OpenAI counts it (prompt tokens
    include those read from or written to the cache)."""
    blocks = [b for b in message.get("content") or [] if isinstance(b, dict)]
    text = "".join(str(b.get("text") or "") for b in blocks if b.get("type") == "text")
    thinking = "\n\n".join(str(b["thinking"]) for b in blocks if b.get("type") == "thinking" and b.get("thinking"))
    usage = message.get("usage") or {}
    read = _count(usage.get("cache_read_input_tokens"))
    prompt = _count(usage.get("input_tokens")) + read + _count(usage.get("cache_creation_input_tokens"))
    completion = _count(usage.get("output_tokens"))
    counted: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                               "total_tokens": prompt + completion, "prompt_tokens_details": {"cached_tokens": read}}
    details = usage.get("output_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("thinking_tokens"), int):
        counted["completion_tokens_details"] = {"reasoning_tokens": details["thinking_tokens"]}
    reply: dict[str, Any] = {"role": "assistant", "content": text}
    if thinking:
        reply["reasoning_content"] = thinking
    stop = message.get("stop_reason")
    return {"id": message.get("id"), "object": "chat.completion", "model": message.get("model"),
            "choices": [{"index": 0, "message": reply, "logprobs": None,
                         "finish_reason": FINISH_REASONS.get(stop, stop) if isinstance(stop, str) else None}],
            "usage": counted, BATCH_ID_FIELD: batch_id}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def item_outcome(line: dict[str, Any], batch_id: str) -> tuple[str, Outcome]:
    """One line of a batch's results, as the item's completion or its failure."""
    key, result = str(line.get("custom_id")), line.get("result") or {}
    kind = result.get("type")
    if kind == "succeeded" and isinstance(result.get("message"), dict):
        return key, completion_from_message(result["message"], batch_id)
    if kind == "errored":
        error: dict[str, Any] = result.get("error") or {}
        inner: dict[str, Any] = error["error"] if isinstance(error.get("error"), dict) else error  # {type: error, error}
        error_type = str(inner.get("type") or "api_error")
        return key, BatchItemFailed(batch_id, ERROR_STATUS.get(error_type), f"{error_type}: {inner.get('message')}",
                                    retryable=error_type in RETRYABLE_ERRORS)
    if kind in ("canceled", "expired"):
        return key, BatchItemFailed(batch_id, None, f"the batch ended with this request {kind}", retryable=True)
    return key, BatchItemFailed(batch_id, None, f"a result of type {kind!r}", retryable=True)


def _load_sdk() -> ModuleType:
    try:
        import anthropic
    except ImportError:
        raise ConfigError(MISSING_SDK) from None
    return anthropic


class AnthropicBatches:
    """Anthropic's Message Batches (`/v1/messages/batches`) through the anthropic SDK. `base_url` is the role's
    (the OpenAI-compatible endpoint, ending in /v1); the SDK is given its host. The SDK does not retry: a call
    that fails is retried by the role's own rules, as any call."""

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float):
        self.sdk = _load_sdk()
        self.root = base_url.rstrip("/").removesuffix("/v1")
        self.api_key, self.timeout_s = api_key, timeout_s

    def _client(self) -> Any:
        """A client for one exchange, closed after it (the queue has no hook to close a long-lived one)."""
        return self.sdk.AsyncAnthropic(api_key=self.api_key, base_url=self.root, max_retries=0, timeout=self.timeout_s)

    def line(self, key: str, body: dict[str, Any]) -> bytes:
        if not CUSTOM_ID.fullmatch(key):
            raise ValueError(f"request key {key[:80]!r} is no Anthropic custom_id (1 to 64 of A-Z a-z 0-9 _ -)")
        return json.dumps({"custom_id": key, "params": messages_params(body)}, ensure_ascii=False).encode() + b"\n"

    async def send(self, local_id: str, lines: list[bytes], on_uploaded: Callable[[str], Awaitable[None]]
                   ) -> ProviderBatch:
        """One create request with every item (no file: `on_uploaded` is never told of one). A create Anthropic
        refused or never answered fails each item's call as a failed batch item (retried by its status)."""
        requests = [json.loads(line) for line in lines]
        try:
            async with self._client() as client:
                batch = await client.messages.batches.create(requests=requests)
        except self.sdk.APIStatusError as error:
            status = int(error.status_code)
            retryable = status in (408, 409, 429) or status >= 500
            raise BatchItemFailed(local_id, status, _message(error), retryable=retryable) from error
        except self.sdk.APIError as error:  # no reply: a connection refused or lost, or a timeout
            raise BatchItemFailed(local_id, None, _message(error), retryable=True) from error
        return _provider_batch(batch)

    async def find(self, local_id: str, recorded_at: float) -> ProviderBatch | None:
        """None: a Message Batch carries no metadata, so nothing tells which batch, if any, this one became."""
        return None

    async def poll(self, provider_id: str) -> ProviderBatch:
        async with self._client() as client:
            return _provider_batch(await client.messages.batches.retrieve(provider_id))

    async def results(self, batch: ProviderBatch, max_bytes: int) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        async with self._client() as client:
            lines = await client.messages.batches.results(batch.id)
            try:
                async for line in lines:
                    if lines.http_response.num_bytes_downloaded > max_bytes:
                        raise ValueError(f"the results of batch {batch.id} are larger than {max_bytes} bytes")
                    key, outcome = item_outcome(line.to_dict(), batch.id)
                    outcomes[key] = outcome
            finally:
                await lines.close()
        return outcomes


def _provider_batch(batch: Any) -> ProviderBatch:
    return ProviderBatch(batch.id, batch.processing_status, batch.processing_status == "ended",
                         batch.created_at.timestamp())


def _message(error: Exception) -> str:
    body = getattr(error, "body", None)
    inner = body.get("error") if isinstance(body, dict) else None
    if isinstance(inner, dict) and inner.get("message"):
        return f"{inner.get('type')}: {inner['message']}"
    return " ".join(str(error).split())[:300]
