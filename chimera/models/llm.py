"""One factory that builds a client per role, and the single door every model call goes through.

Each call: waits for a place in its endpoint's budget (and rate limits), goes
over real HTTP through the openai client, is logged as a row of `llm_calls`
(tokens, latency, outcome; never the key), and comes back as a `Reply` with the
thinking split from the answer, whatever shape the server gave it.

Why the openai client's low-level `post` and not LangChain's ChatOpenAI: the
request body goes out exactly as built (vLLM fields such as `top_k` or
`chat_template_kwargs` at the top level, `response_format` untouched), the
reply comes back as the server's JSON (so `reasoning_content` / `reasoning`
are never dropped), and it costs about 0.7 ms of client CPU a call with the
openai client's aiohttp transport against 3.5 ms through ChatOpenAI; on a
2-core machine that is what decides whether the run keeps hundreds of
requests in flight.

Errors are mapped once, here: an endpoint that cannot be reached at all stops
the run (`EndpointError`); a call that fails after its retries fails only its
problem slot (`CallFailed`). A refused or dropped connection, or a 502/503/504,
is retried for the role's `retry_window_s`, so a run waits out a server restart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import importlib
import inspect
import itertools
import json
import logging
import math
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import aiohttp
import openai

from chimera.config import Config, ModelSpec
from chimera.errors import CallFailed, ConfigError, EndpointError
from chimera.models.batching import (
    BATCH_ID_FIELD,
    BatchBackend,
    BatchItemFailed,
    BatchLedger,
    BatchQueue,
    OpenAIBatches,
)
from chimera.models.capped_read import read_capped
from chimera.models.concurrency import steer
from chimera.models.costs import SpendCap
from chimera.models.dispatch import EndpointBudget, Endpoints, RateLimiter, queue_place
from chimera.models.reasoning import split_reasoning
from chimera.models.secrets import redact, register_secret
from chimera.models.tracing import record_call
from chimera.store.storable import storable

T = TypeVar("T")
log = logging.getLogger("chimera.calls")
REASONING_FIELDS = ("reasoning_content", "reasoning")
RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}
OUTAGE_STATUS = {502, 503, 504}  # what a proxy in front of a restarting server answers
MAX_BACKOFF_S = 10.0  # our own back-off's ceiling: a restarted server is found within this
MAX_RETRY_AFTER_S = 30.0  # the most of a server's retry-after that is honoured
CLIENT_CONNECTIONS = openai.DEFAULT_CONNECTION_LIMITS.max_connections or 1000  # the client's default pool
# The HTTP library under the openai client (httpx in openai 2, httpx2 in openai 3): its Response type asks
# the client for an unread body, which is then read with a size cap.
HTTP = importlib.import_module(type(openai.DEFAULT_CONNECTION_LIMITS).__module__.split(".")[0])
MAX_TOKENS_FIELD = 10 ** 9  # a usage count beyond this is not a count


class ReplyTooLarge(ValueError):
    """A reply body over the role's max_reply_mb: the call fails as malformed, the run goes on."""
Message = dict[str, str]
# Where calls are recorded. Each may be a plain function or a coroutine function (an AsyncStore's methods).
CallLogger = Callable[[dict[str, Any]], Any]  # may return the row's id
CallRelabeler = Callable[[int, str, str], Any]  # (row id, outcome, error): a reply found unusable after the call
ReplyLookup = Callable[[str], Any]  # request key -> (row id, kept reply) or None
KEPT_FIELDS = ("content", "reasoning", "finish_reason", "model", "tokens_in", "tokens_out", "reasoning_tokens")


def request_key(role: str, body: dict[str, Any], context: dict[str, Any] | None) -> str:
    """What identifies a call across a restart: the role, the ids it is for, and the exact body sent."""
    context = context or {}
    identity = [role, context.get("run"), context.get("topic_id"), context.get("problem_id"), context.get("scope"),
                body] + ([context["attempt"]] if context.get("attempt") else [])  # a retry's: see Deps.context
    blob = json.dumps(identity, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def reasoning_of(message: dict[str, Any] | None) -> str | None:
    """The separate thinking field of a reply message, under either name vLLM uses."""
    for name in REASONING_FIELDS:
        value = (message or {}).get(name)
        if value:
            return value
    return None


@dataclass
class Reply:
    content: str
    reasoning: str
    finish_reason: str | None
    model: str
    tokens_in: int = 0
    tokens_out: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0  # input tokens the provider's prompt cache (or vLLM's prefix cache) served
    latency_s: float = 0.0
    call_id: int | None = None  # its row in llm_calls, when the logger gives one
    batch_id: str | None = None  # the provider's batch it came in, for a role in batch mode

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


def reply_from_completion(completion: dict[str, Any], model: str) -> Reply:
    """A chat completion (the server's JSON) as a Reply; a reply without choices is a ValueError."""
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ValueError("the reply has no choices")
    choice = choices[0]
    message = choice.get("message") or {}
    content = message.get("content")
    if isinstance(content, list):  # content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if content is not None and not isinstance(content, str):
        raise ValueError("the reply's content is not text")
    reasoning, solution = split_reasoning(storable(content), storable(reasoning_of(message)))
    usage = completion.get("usage") or {}
    if not isinstance(usage, dict):
        raise ValueError("the reply's usage is not an object")
    details = usage.get("completion_tokens_details") or {}
    prompt_details = usage.get("prompt_tokens_details") or {}
    finish = choice.get("finish_reason")
    served = completion.get("model")
    return Reply(
        content=solution, reasoning=reasoning, finish_reason=finish if isinstance(finish, str) else None,
        model=served if isinstance(served, str) and len(served) < 300 else model,
        tokens_in=token_count(usage.get("prompt_tokens")), tokens_out=token_count(usage.get("completion_tokens")),
        reasoning_tokens=token_count(details.get("reasoning_tokens") if isinstance(details, dict) else None),
        cached_tokens=token_count(prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else None),
        batch_id=batch if isinstance(batch := completion.get(BATCH_ID_FIELD), str) else None,
    )


def embeddings_from_reply(reply: dict[str, Any], count: int, model: str) -> tuple[Reply, list[list[float]]]:
    """An embeddings reply's vectors, in input order: `count` of them, all one width, all finite numbers."""
    data = reply.get("data")
    if not isinstance(data, list) or not all(isinstance(d, dict) and isinstance(d.get("index"), int) for d in data):
        raise ValueError("the reply has no list of indexed embeddings")
    ordered = sorted(data, key=lambda d: d["index"])
    if len(ordered) != count:
        raise ValueError(f"{len(ordered)} embeddings for {count} inputs")
    vectors = [d.get("embedding") for d in ordered]
    widths = {len(v) if isinstance(v, list) else -1 for v in vectors}
    if len(widths) != 1 or min(widths) < 1 or not all(
            isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
            for v in vectors for x in v):  # every v is a list here: a non-list makes a width of -1
        raise ValueError(f"embeddings of different or no lengths, or not finite numbers: widths {sorted(widths)[:4]}")
    usage = reply.get("usage")
    tokens = token_count(usage.get("prompt_tokens")) if isinstance(usage, dict) else 0
    return Reply(content="", reasoning="", finish_reason=None, model=model, tokens_in=tokens), vectors


def token_count(value: Any) -> int:
    """A usage field as a count; anything else (a string, a float, 10**30, a negative) is a malformed reply."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS_FIELD:
        raise ValueError(f"the reply's usage has an impossible token count: {str(value)[:40]}")
    return value


class Transport(Protocol):
    """Sends one request body (chat completions or embeddings) and returns the server's JSON reply."""

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class OpenAITransport:
    """The openai client (aiohttp transport, no retries of its own: ours log every attempt).

    Its connection pool is at least as large as the endpoint's budget: the client's own cap
    (1,000) would otherwise hold a larger budget back without a word. (The limits type is
    taken from the client's own default: httpx's in openai 2, httpx2's in openai 3.)"""

    def __init__(self, url: str, api_key: str, timeout_s: float, connections: int, max_reply_bytes: int = 64 << 20,
                 headers: dict[str, str] | None = None, query: dict[str, str] | None = None):
        self.max_reply_bytes = max_reply_bytes
        pool = max(CLIENT_CONNECTIONS, connections)
        http_client = openai.DefaultAioHttpClient(
            timeout=timeout_s,
            limits=type(openai.DEFAULT_CONNECTION_LIMITS)(max_connections=pool, max_keepalive_connections=pool))
        self.client = openai.AsyncOpenAI(base_url=url, api_key=api_key, timeout=timeout_s, max_retries=0,
                                         http_client=http_client, default_headers=headers or None,
                                         default_query=query or None)

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._post("/chat/completions", body)

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._post("/embeddings", body)

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.client.post(path, body=body, cast_to=HTTP.Response, stream=True)
        try:
            raw = await read_capped(response.aiter_bytes(), self.max_reply_bytes, lambda: ReplyTooLarge(
                f"reply larger than {self.max_reply_bytes / 2**20:g} MB (max_reply_mb)"))
        finally:
            await response.aclose()
        try:
            reply = json.loads(raw)
        except ValueError:
            raise ValueError(f"the reply is not JSON: {raw[:120]!r}") from None
        if not isinstance(reply, dict):
            raise ValueError(f"the reply is not a JSON object: {str(reply)[:120]!r}")
        return reply

    async def close(self) -> None:
        await self.client.close()


@dataclass
class Replica:
    """One endpoint serving a role's model, with the budget of that endpoint."""

    url: str
    transport: Transport
    budget: EndpointBudget


@dataclass
class RoleClient:
    """Everything needed to call one role's model, on one endpoint or several replicas."""

    role: str
    spec: ModelSpec
    model: str
    replicas: list[Replica]
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(None, None))
    log: CallLogger = field(default=lambda call: None)
    relabel: CallRelabeler = field(default=lambda call_id, outcome, error: None)
    # Where replies kept from before a restart are looked up: a resumed run never asks a finished call
    # again (a sampled model would answer differently). None: every call is asked.
    replay: ReplyLookup | None = None
    reused: int = 0  # calls answered from kept replies or from an identical request in flight
    batches: BatchQueue | None = None  # batch mode: calls go through the provider's batch API
    cap: SpendCap | None = None  # the run's budget: a call that would pass it is not sent
    _in_flight: dict[str, asyncio.Future] = field(default_factory=dict, repr=False)

    @property
    def base_url(self) -> str:
        return ", ".join(r.url for r in self.replicas)

    def _pick(self, avoid: str | None) -> Replica:
        """The replica with the most free room, leaving out one that just failed when there is a choice."""
        choices = [r for r in self.replicas if r.url != avoid] or self.replicas
        return min(choices, key=lambda r: (r.budget.in_flight / max(1.0, r.budget.current), r.url))

    def request_body(self, messages: list[Message], *, response_format: dict[str, Any] | None = None,
                     **overrides: Any) -> dict[str, Any]:
        """The exact JSON sent: the role's sampling, its `extra_body` fields, then per-call overrides."""
        spec = self.spec
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        for name, value in (("temperature", spec.temperature), ("top_p", spec.top_p),
                            (spec.max_tokens_field, spec.max_tokens), ("reasoning_effort", spec.reasoning_effort)):
            if value is not None:
                body[name] = value
        body.update(spec.extra_body)
        if response_format is not None:
            body["response_format"] = response_format
        if "max_tokens" in overrides:
            body[spec.max_tokens_field] = overrides.pop("max_tokens")
        body.update(overrides)
        return body

    async def complete(self, messages: list[Message], *, response_format: dict[str, Any] | None = None,
                       context: dict[str, Any] | None = None, **overrides: Any) -> Reply:
        """One model call, retried on 429 (after its retry-after), 5xx, timeouts and lost connections.

        Every attempt is a row of `llm_calls`. A 429 also halves the endpoint's budget for a while.
        `overrides` are request fields for this call only (`seed`, `max_tokens`, ...).
        """
        body = self.request_body(messages, response_format=response_format, **overrides)
        key = request_key(self.role, body, context)
        if self.replay is not None:
            kept = await _settled(self.replay(key))
            if kept is not None:
                self.reused += 1
                call_id, fields = kept
                return Reply(**{name: fields[name] for name in KEPT_FIELDS}, call_id=call_id)
        # The same request already in flight (two samples whose answers read alike, say): share its reply,
        # so one request is asked once whether its twin comes before, during or after a restart.
        twin = self._in_flight.get(key)
        if twin is not None:
            shared = await asyncio.shield(twin)
            if shared is not None:
                self.reused += 1
                return dataclasses.replace(shared)
        future: asyncio.Future[Reply | None] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        reply: Reply | None = None
        try:
            reply = await self._ask(body, context, key)
            return reply
        finally:
            if self._in_flight.get(key) is future:
                del self._in_flight[key]
            future.set_result(dataclasses.replace(reply) if reply is not None else None)  # None: ask yourself

    async def _ask(self, body: dict[str, Any], context: dict[str, Any] | None, key: str) -> Reply:
        estimate = sum(len(m["content"]) for m in body["messages"]) // 4 + (body.get(self.spec.max_tokens_field) or 1024)
        batches = self.batches
        send: Callable[[Replica], Awaitable[dict[str, Any]]] = (
            (lambda replica: replica.transport.chat(body)) if batches is None
            else (lambda replica: batches.chat(key, body)))
        reply, _ = await self._attempts(send,
                                        lambda completion: (reply_from_completion(completion, self.model), None),
                                        estimate=estimate, context=context, key=key, body=body)
        return reply

    async def embed(self, texts: list[str], context: dict[str, Any] | None = None) -> list[list[float]]:
        """One embeddings request, through the same attempts as a chat call (budget, rate limits, retries with
        back-off, replicas, a row of `llm_calls` per attempt); a malformed reply fails the call."""
        body = {"model": self.model, "input": texts}
        _, vectors = await self._attempts(lambda replica: replica.transport.embeddings(body),
                                          lambda reply: embeddings_from_reply(reply, len(texts), self.model),
                                          estimate=sum(len(t) for t in texts) // 4 + 1, context=context, key=None,
                                          body=body)
        return vectors

    async def _attempts(self, send: Callable[[Replica], Awaitable[dict[str, Any]]],
                        read: Callable[[dict[str, Any]], tuple[Reply, T]], *, estimate: int,
                        context: dict[str, Any] | None, key: str | None,
                        body: dict[str, Any] | None = None) -> tuple[Reply, T]:
        avoid: str | None = None
        first_failure: float | None = None
        for retries in itertools.count():
            replica = self._pick(avoid)
            await self.limiter.acquire(estimate)
            reservation = await self.cap.admit(self.role, *self._in_and_out(estimate, body), self.batches is not None) \
                if self.cap is not None else None
            await replica.budget.acquire(queue_place(self.role, (context or {}).get("step", 0)))
            started, sent_at = time.perf_counter(), time.monotonic()
            reply: Reply | None = None
            pause = 0.0
            try:
                # timeout_s bounds the whole call, connect to last byte: a server that drips a byte
                # a second cannot hold a call or a budget place past it.
                # (a batched call waits for its batch, up to the completion window)
                async with asyncio.timeout(self.spec.batch_wait_s() if self.batches else self.spec.timeout_s):
                    answer = await send(replica)
                reply, payload = read(answer)
            except Exception as error:  # noqa: BLE001 - classified, logged, and retried or mapped below
                await self._log(replica.url, context, started, None, outcome=outcome_of(error),
                                error=error_text(error), key=key, body=body)
                now = time.monotonic()
                first_failure = now if first_failure is None else first_failure
                wait = retry_wait(error, retries=retries, failing_s=now - first_failure, spec=self.spec,
                                  jitter=random.uniform(0.5, 1.0))
                if wait is None:
                    raise map_error(error, role=self.role, url=replica.url, model=self.model,
                                    timeout_s=self.spec.timeout_s) from error
                if isinstance(error, openai.RateLimitError):
                    replica.budget.back_off(sent_at)
                if _unreachable(error) or _lost(error):
                    avoid = replica.url
                log.info("%s call to %s: %s (%s); retry %d in %.1fs", self.role, replica.url,
                         outcome_of(error), error_text(error, 160), retries + 1, wait)
                pause = wait
            finally:
                await replica.budget.release(ok=reply is not None)
                if self.cap is not None and reservation is not None:
                    self.cap.settle(reservation, tokens_in=reply.tokens_in if reply else 0,
                                    tokens_out=reply.tokens_out if reply else 0,
                                    cached_tokens=reply.cached_tokens if reply else 0)
            if reply is not None:
                reply.latency_s = time.perf_counter() - started
                self.limiter.settle(estimate, reply.tokens_in + reply.tokens_out)
                reply.call_id = await self._log(replica.url, context, started, reply,
                                          outcome="truncated" if reply.truncated else "ok", key=key, body=body)
                return reply, payload
            await asyncio.sleep(pause)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _in_and_out(self, estimate: int, body: dict[str, Any] | None) -> tuple[int, int]:
        """A call's estimated tokens, as (in, out): out is at most its max_tokens (1024 when unset)."""
        if body is None or "messages" not in body:
            return estimate, 0
        out = min(estimate, body.get(self.spec.max_tokens_field) or 1024)
        return estimate - out, out

    async def mark_unusable(self, reply: Reply, reason: str) -> None:
        """Record on the call's row that its reply could not be used (malformed JSON, say)."""
        if reply.call_id is not None and not reply.truncated:  # a cut reply is already recorded as truncated
            await _settled(self.relabel(reply.call_id, "malformed_reply", reason))

    async def close(self) -> None:
        if self.batches is not None:
            await self.batches.close()
        for replica in self.replicas:
            await replica.transport.close()

    async def _log(self, url: str, context: dict[str, Any] | None, started: float, reply: Reply | None, *,
                   outcome: str, error: str | None = None, key: str | None = None,
                   body: dict[str, Any] | None = None) -> Any:
        context = context or {}
        log.debug("%s %s %s tokens %d/%d %.2fs%s", self.role, url, outcome, reply.tokens_in if reply else 0,
                  reply.tokens_out if reply else 0, time.perf_counter() - started, f" ({error})" if error else "")
        row = {
            "run": context.get("run"), "role": self.role, "model": self.model, "base_url": url,
            "topic_id": context.get("topic_id"), "problem_id": context.get("problem_id"), "scope": context.get("scope"),
            "tokens_in": reply.tokens_in if reply else 0, "tokens_out": reply.tokens_out if reply else 0,
            "reasoning_tokens": reply.reasoning_tokens if reply else 0,
            **({"cached_tokens": reply.cached_tokens} if reply and reply.cached_tokens else {}),
            **({"batch_id": reply.batch_id} if reply and reply.batch_id else {}),
            "latency_s": round(time.perf_counter() - started, 4),
            "finish_reason": reply.finish_reason if reply else None, "outcome": outcome, "error": error,
            **({"request_key": key} if key else {}),
            **({"reply": json.dumps({name: getattr(reply, name) for name in KEPT_FIELDS}, ensure_ascii=False)}
               if key and reply and self.replay is not None else {}),
        }
        record_call(self.spec, row, body, reply)  # a LangSmith run, an OpenTelemetry span: where switched on
        return await _settled(self.log(row))


async def _settled(value: Any) -> Any:
    """What a recording function gave: awaited when it is a coroutine function's."""
    return await value if inspect.isawaitable(value) else value

def map_error(error: Exception, *, role: str, url: str, model: str, timeout_s: float) -> Exception:
    """The typed error a failed call becomes: the run stops on an unreachable or refusing endpoint,
    only the problem slot fails otherwise."""
    if _unreachable(error):
        return EndpointError(role, url, "cannot connect (is the server running?)")
    if _lost(error):
        return CallFailed(role, url, error_text(error))
    if isinstance(error, openai.APITimeoutError | TimeoutError):
        return CallFailed(role, url, f"timed out after {timeout_s:g}s")
    if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
        return EndpointError(role, url, f"refused the API key (HTTP {error.status_code})")
    if isinstance(error, openai.NotFoundError):
        return EndpointError(role, url, f"model {model!r} or path not found (HTTP 404)")
    if isinstance(error, openai.APIStatusError):
        return CallFailed(role, url, f"HTTP {error.status_code}: {short(error)}")
    return CallFailed(role, url, short(error))


def connection_trouble(error: BaseException) -> tuple[str, BaseException] | None:
    """("refused", cause) for a connection that could not be made (refused, unresolvable), ("lost", cause) for
    one dropped or reset under a request, None for anything else, a real timeout included.

    The causes are read because the openai client's aiohttp transport reports every connection error as
    "Request timed out" (an APITimeoutError over httpx's ConnectTimeout). aiohttp's own timeouts are
    connection errors and TimeoutErrors at once: the TimeoutError decides."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, TimeoutError):
            return None
        if isinstance(seen, ConnectionRefusedError | socket.gaierror | aiohttp.ClientConnectorError):
            return "refused", seen
        if isinstance(seen, ConnectionError | aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
            return "lost", seen
        seen = seen.__cause__ or seen.__context__
    return None


def _is_connection_error(error: BaseException) -> bool:
    """The client's connection error that is no timeout and whose cause says nothing more."""
    return isinstance(error, openai.APIConnectionError) and not isinstance(error, openai.APITimeoutError)


def _unreachable(error: BaseException) -> bool:
    trouble = connection_trouble(error)
    return trouble[0] == "refused" if trouble else _is_connection_error(error)


def _lost(error: BaseException) -> bool:
    trouble = connection_trouble(error)
    return trouble is not None and trouble[0] == "lost"


def _outage(error: BaseException) -> bool:
    """What a server gives while it restarts: no connection, a dropped one, or its proxy's 502/503/504."""
    return _unreachable(error) or _lost(error) or (
        isinstance(error, openai.APIStatusError) and error.status_code in OUTAGE_STATUS)


def _retryable(error: Exception) -> bool:
    if isinstance(error, BatchItemFailed):
        return error.retryable
    if isinstance(error, openai.APIConnectionError | TimeoutError) or connection_trouble(error):  # timeouts included
        return True
    return isinstance(error, openai.APIStatusError) and error.status_code in RETRYABLE_STATUS


def _retry_after(error: Exception) -> float | None:
    response = getattr(error, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None


def backoff_s(retries: int) -> float:
    """The wait before retry number `retries` + 1: doubling from half a second, up to MAX_BACKOFF_S."""
    return min(MAX_BACKOFF_S, 0.5 * 2 ** min(retries, 16))


def retry_wait(error: Exception, *, retries: int, failing_s: float, spec: ModelSpec, jitter: float) -> float | None:
    """Seconds to wait before a call's next attempt, or None: the call has failed.

    Every retryable failure is tried again `max_retries` times. An outage (a refused or lost connection,
    a 502/503/504) goes on being tried until `retry_window_s` have passed since the call's first failure,
    the last attempt at the window's end. `jitter` (0.5 to 1) spreads the retries of calls that failed
    together; a server's retry-after is taken as it is."""
    if not _retryable(error):
        return None
    wait = _retry_after(error) or backoff_s(retries) * jitter
    if retries < spec.max_retries:
        return wait
    left = spec.retry_window_s - failing_s
    return min(wait, left) if _outage(error) and left > 0 else None


def outcome_of(error: Exception) -> str:
    if connection_trouble(error) or _is_connection_error(error):
        return "connection_error"
    if isinstance(error, openai.APITimeoutError | TimeoutError):
        return "timeout"
    if isinstance(error, openai.APIStatusError):
        return f"http_{error.status_code}"
    if isinstance(error, BatchItemFailed):
        return f"batch_http_{error.status}" if error.status else "batch_unanswered"
    if isinstance(error, ValueError):
        return "malformed_reply"
    return "error"


def short(error: Exception | str, limit: int = 300) -> str:
    """One line of an error, secrets scrubbed: servers echo keys in error bodies."""
    text = redact(" ".join(str(error).split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_text(error: Exception, limit: int = 300) -> str:
    """What a failed attempt is logged as: a refused or lost connection says so and names its cause, where
    the client's own message would call it a timeout."""
    trouble = connection_trouble(error)
    if trouble is None:
        return short(error, limit)
    kind, cause = trouble
    return short(f"connection {kind}: {str(cause) or type(cause).__name__}", limit)


# endpoint, key, timeout, headers, query: roles that agree on all five share one connection pool
TransportKey = tuple[str, str, float, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]


def api_key_for(role: str, spec: ModelSpec) -> str:
    if spec.provider == "sim":
        return "sim"
    if not spec.api_key_env:
        return "EMPTY"  # vLLM and other self-hosted servers accept any key
    key = os.environ.get(spec.api_key_env)
    if not key:
        raise ConfigError(f"models.{role}.api_key_env: environment variable {spec.api_key_env} is not set")
    register_secret(key)
    return key


def header_values(role: str, spec: ModelSpec) -> dict[str, str]:
    """Headers whose values come from the environment (keys, mostly): read now, scrubbed from every log."""
    values = {}
    for header, variable in spec.headers_env.items():
        value = os.environ.get(variable)
        if not value:
            raise ConfigError(f"models.{role}.headers_env: environment variable {variable} (for the {header} header) "
                              "is not set")
        register_secret(value)
        values[header] = value
    return values


def split_query(url: str, query: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A base URL with `?api-version=...` (as Azure shows it) as the URL and its query; `query` wins."""
    parts = urlsplit(url)
    given = dict(parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit(parts._replace(query="", fragment="")), {**given, **query}


def build_client(role: str, spec: ModelSpec, *, endpoints: Endpoints, sim_url: str | None,
                 log: CallLogger, relabel: CallRelabeler | None = None,
                 transports: dict[TransportKey, OpenAITransport] | None = None,
                 batch_ledger: BatchLedger | None = None, run: str = "") -> RoleClient:
    """`transports` shares one client (one connection pool) among roles on the same endpoint and key.
    A role in batch mode records its batches in `batch_ledger` (the run's store)."""
    if spec.provider == "langchain":
        return _langchain_client(role, spec, endpoints=endpoints, log=log, relabel=relabel)
    if spec.provider == "sim":
        if sim_url is None:
            raise ConfigError(f"models.{role}: provider sim needs the simulator running")
        urls, model = [sim_url], spec.model or f"sim-{role}"
    else:
        if not spec.base_url or not spec.model:
            raise ConfigError(f"models.{role}: needs base_url and model")
        urls = spec.base_url if isinstance(spec.base_url, list) else [spec.base_url]
        model = spec.model
    key = api_key_for(role, spec)
    headers = {**spec.headers, **header_values(role, spec)}
    pool = transports if transports is not None else {}
    replicas = []
    batched = spec.batch and batch_ledger is not None
    batch_transport: TransportKey | None = None  # the first replica's: batches go to one provider
    for given in urls:
        url, query = split_query(given, spec.query)
        # A batched request holds no place on the server while it waits: its budget is its own.
        budget = (endpoints.budget(f"{url} (batch)", spec.max_in_flight or 50000, None) if batched
                  else endpoints.budget(url, spec.max_in_flight, spec.max_in_flight_total))
        if not batched:
            steer(endpoints, url, spec)  # adaptive: the server's own signals steer the budget under its limit
        shared = (url, key, spec.timeout_s, tuple(sorted(headers.items())), tuple(sorted(query.items())))
        if shared not in pool:
            pool[shared] = OpenAITransport(url, key, spec.timeout_s, connections=budget.limit,
                                           max_reply_bytes=int(spec.max_reply_mb * 2**20), headers=headers,
                                           query=query)
        replicas.append(Replica(url=url, transport=pool[shared], budget=budget))
        batch_transport = batch_transport or shared
    client = RoleClient(role=role, spec=spec, model=model, replicas=replicas,
                        limiter=RateLimiter(spec.rpm, spec.tpm), log=log)
    if batched and batch_ledger is not None and batch_transport is not None:
        first, transport = replicas[0], pool[batch_transport]
        backend: BatchBackend = OpenAIBatches(transport.client, run=run, role=role, window=spec.batch_window)
        if spec.batch_api == "anthropic":
            from chimera.models.batch_anthropic import AnthropicBatches

            backend = AnthropicBatches(first.url, api_key_for(role, spec), timeout_s=spec.timeout_s)
        client.batches = BatchQueue(role=role, run=run, base_url=first.url, spec=spec,
                                    backend=backend, ledger=batch_ledger, online=transport.chat,
                                    max_result_bytes=int(spec.max_reply_mb * 2**20) * spec.batch_max_requests)
    if relabel is not None:
        client.relabel = relabel
    return client


def _langchain_client(role: str, spec: ModelSpec, *, endpoints: Endpoints, log: CallLogger,
                      relabel: CallRelabeler | None) -> RoleClient:
    """A role on a LangChain chat model: one transport, whose budget is keyed by its base_url (or class)."""
    from chimera.models.langchain_transport import LangChainTransport

    kwargs = dict(spec.kwargs)
    if spec.api_key_env:
        kwargs["api_key"] = api_key_for(role, spec)
    url = spec.base_url if isinstance(spec.base_url, str) else f"langchain:{spec.chat_class}"
    model = spec.model or str(kwargs.get("model") or kwargs.get("model_name") or spec.chat_class)
    replica = Replica(url=url, transport=LangChainTransport(spec.chat_class or "", kwargs),
                      budget=endpoints.budget(url, spec.max_in_flight, spec.max_in_flight_total))
    client = RoleClient(role=role, spec=spec, model=model, replicas=[replica],
                        limiter=RateLimiter(spec.rpm, spec.tpm), log=log)
    if relabel is not None:
        client.relabel = relabel
    return client


def build_clients(config: Config, *, endpoints: Endpoints, sim_url: str | None,
                  log: CallLogger, relabel: CallRelabeler | None = None,
                  replay: ReplyLookup | None = None, batch_ledger: BatchLedger | None = None) -> dict[str, RoleClient]:
    """One client per role: expander, drafter, critic0, critic1, solver, labeler. Roles with `batch: true`
    send through the batch API when a `batch_ledger` records their batches (online otherwise)."""
    transports: dict[TransportKey, OpenAITransport] = {}
    clients = {
        role: build_client(role, spec, endpoints=endpoints, sim_url=sim_url, log=log, relabel=relabel,
                           transports=transports, batch_ledger=batch_ledger, run=config.run.name)
        for role, spec in config.models.all_roles().items()
    }
    for client in clients.values():
        client.replay = replay
    return clients


async def close_clients(clients: dict[str, RoleClient]) -> None:
    closed: set[int] = set()
    for client in clients.values():
        if client.batches is not None:
            await client.batches.close()
        for replica in client.replicas:
            if id(replica.transport) not in closed:  # roles may share one transport
                closed.add(id(replica.transport))
                await replica.transport.close()
