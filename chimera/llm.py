"""One factory that builds a chat client per role, and the single door every model call goes through.

Each call: waits for a place in the run's in-flight budget, goes over real HTTP
through langchain-openai, is logged as a row of `llm_calls` (tokens, latency,
outcome; never the key), and comes back as a `Reply` with the thinking split
from the answer. Errors are mapped once, here: an endpoint that cannot be
reached at all stops the run (`EndpointError`); a call that fails after its
retries fails only its problem slot (`CallFailed`).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import openai
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI

from chimera.config import Config, ModelSpec
from chimera.dispatch import EndpointBudget, Endpoints, RateLimiter
from chimera.errors import CallFailed, ConfigError, EndpointError
from chimera.tools.reasoning import split_reasoning

REASONING_FIELDS = ("reasoning_content", "reasoning")


def _reasoning_of(message: dict[str, Any] | None) -> str | None:
    for name in REASONING_FIELDS:
        value = (message or {}).get(name)
        if value:
            return value
    return None


class ReasoningChatOpenAI(ChatOpenAI):
    """ChatOpenAI that keeps the server's separate thinking field.

    The stock client drops vLLM's `reasoning_content` / `reasoning` message
    fields; this copies whichever is present into `additional_kwargs["reasoning_content"]`.
    """

    def _create_chat_result(self, response: Any, generation_info: dict | None = None) -> ChatResult:
        result = super()._create_chat_result(response, generation_info)
        raw = response if isinstance(response, dict) else response.model_dump()
        for generation, choice in zip(result.generations, raw.get("choices") or []):
            reasoning = _reasoning_of(choice.get("message"))
            if reasoning:
                generation.message.additional_kwargs["reasoning_content"] = reasoning
        return result

    def _convert_chunk_to_generation_chunk(
        self, chunk: dict, default_chunk_class: type, base_generation_info: dict | None
    ) -> ChatGenerationChunk | None:
        generation = super()._convert_chunk_to_generation_chunk(chunk, default_chunk_class, base_generation_info)
        choices = chunk.get("choices") or []
        if generation is not None and choices:
            reasoning = _reasoning_of(choices[0].get("delta"))
            if reasoning:
                generation.message.additional_kwargs["reasoning_content"] = reasoning
        return generation


@dataclass
class Reply:
    content: str
    reasoning: str
    finish_reason: str | None
    model: str
    tokens_in: int = 0
    tokens_out: int = 0
    reasoning_tokens: int = 0
    latency_s: float = 0.0

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


CallLogger = Callable[[dict[str, Any]], None]
RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}
MAX_BACKOFF_S = 30.0


@dataclass
class Replica:
    """One endpoint serving a role's model, with the budget of that endpoint."""

    url: str
    chat: ChatOpenAI
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

    @property
    def base_url(self) -> str:
        return ", ".join(r.url for r in self.replicas)

    def _pick(self, avoid: str | None) -> Replica:
        """The replica with the most free room, leaving out one that just failed when there is a choice."""
        choices = [r for r in self.replicas if r.url != avoid] or self.replicas
        return min(choices, key=lambda r: (r.budget.in_flight / max(1.0, r.budget.current), r.url))

    async def complete(
        self,
        messages: list[BaseMessage],
        *,
        response_format: dict[str, Any] | None = None,
        extra_body: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> Reply:
        """One model call, retried on 429 (after its retry-after), 5xx, timeouts and lost connections.

        Every attempt is a row of `llm_calls`. A 429 also halves the endpoint's budget for a while.
        """
        kwargs: dict[str, Any] = dict(overrides)
        body = {**self.spec.extra_body, **(extra_body or {})}
        if response_format is not None:
            # Sent as a body field: the server sees the same JSON, and the openai client skips both its
            # per-key transform of the nested schema (~3 ms a call) and its refusal to return a cut reply.
            body["response_format"] = response_format
        if body != self.spec.extra_body:
            kwargs["extra_body"] = body
        estimate = sum(len(str(m.content)) for m in messages) // 4 + (overrides.get("max_tokens") or self.spec.max_tokens or 1024)
        avoid: str | None = None
        for attempt in range(self.spec.max_retries + 1):
            replica = self._pick(avoid)
            await self.limiter.acquire(estimate)
            await replica.budget.acquire()
            started = time.perf_counter()
            ok = False
            try:
                try:
                    message = await replica.chat.ainvoke(messages, **kwargs)
                    reply = _reply_from_message(message, self.model)
                except openai.LengthFinishReasonError as error:
                    reply = _reply_from_completion(error.completion.model_dump(), self.model)
                ok = True
            except Exception as error:  # noqa: BLE001 - classified, logged, and retried or mapped below
                self._log(replica.url, context, started, None, outcome=_outcome_of(error), error=_short(error))
                last_attempt = attempt == self.spec.max_retries
                if not _retryable(error) or last_attempt:
                    raise self._map_error(error, replica.url) from error
                if isinstance(error, openai.RateLimitError):
                    replica.budget.back_off()
                if isinstance(error, openai.APIConnectionError) and not isinstance(error, openai.APITimeoutError):
                    avoid = replica.url
                wait = _retry_after(error) or min(MAX_BACKOFF_S, 0.5 * 2**attempt) * random.uniform(0.5, 1.0)
            finally:
                await replica.budget.release(ok=ok)
            if ok:
                reply.latency_s = time.perf_counter() - started
                self.limiter.settle(estimate, reply.tokens_in + reply.tokens_out)
                self._log(replica.url, context, started, reply, outcome="truncated" if reply.truncated else "ok")
                return reply
            await asyncio.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _log(self, url: str, context: dict[str, Any] | None, started: float, reply: Reply | None, *,
             outcome: str, error: str | None = None) -> None:
        context = context or {}
        self.log({
            "run": context.get("run"), "role": self.role, "model": self.model, "base_url": url,
            "topic_id": context.get("topic_id"), "problem_id": context.get("problem_id"), "scope": context.get("scope"),
            "tokens_in": reply.tokens_in if reply else 0, "tokens_out": reply.tokens_out if reply else 0,
            "reasoning_tokens": reply.reasoning_tokens if reply else 0,
            "latency_s": round(time.perf_counter() - started, 4),
            "finish_reason": reply.finish_reason if reply else None, "outcome": outcome, "error": error,
        })

    def _map_error(self, error: Exception, url: str) -> Exception:
        if isinstance(error, openai.APITimeoutError):
            return CallFailed(self.role, url, f"timed out after {self.spec.timeout_s:g}s")
        if isinstance(error, openai.APIConnectionError):
            return EndpointError(self.role, url, "cannot connect (is the server running?)")
        if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
            return EndpointError(self.role, url, f"refused the API key (HTTP {error.status_code})")
        if isinstance(error, openai.NotFoundError):
            return EndpointError(self.role, url, f"model {self.model!r} or path not found (HTTP 404)")
        if isinstance(error, openai.APIStatusError):
            return CallFailed(self.role, url, f"HTTP {error.status_code}: {_short(error)}")
        return CallFailed(self.role, url, _short(error))


def _retryable(error: Exception) -> bool:
    if isinstance(error, openai.APIConnectionError):  # timeouts included
        return True
    return isinstance(error, openai.APIStatusError) and error.status_code in RETRYABLE_STATUS


def _retry_after(error: Exception) -> float | None:
    response = getattr(error, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return min(MAX_BACKOFF_S, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None


def _outcome_of(error: Exception) -> str:
    if isinstance(error, openai.APITimeoutError):
        return "timeout"
    if isinstance(error, openai.APIConnectionError):
        return "connection_error"
    if isinstance(error, openai.APIStatusError):
        return f"http_{error.status_code}"
    return "error"


def _short(error: Exception, limit: int = 300) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reply_from_message(message: AIMessage, model: str) -> Reply:
    content = message.content if isinstance(message.content, str) else "".join(
        part.get("text", "") for part in message.content if isinstance(part, dict)
    )
    reasoning, solution = split_reasoning(content, message.additional_kwargs.get("reasoning_content"))
    usage = message.usage_metadata or {}
    details = usage.get("output_token_details") or {}
    return Reply(
        content=solution, reasoning=reasoning,
        finish_reason=message.response_metadata.get("finish_reason"),
        model=message.response_metadata.get("model_name") or model,
        tokens_in=usage.get("input_tokens", 0), tokens_out=usage.get("output_tokens", 0),
        reasoning_tokens=details.get("reasoning", 0) or 0,
    )


def _reply_from_completion(completion: dict[str, Any], model: str) -> Reply:
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    reasoning, solution = split_reasoning(message.get("content"), _reasoning_of(message))
    usage = completion.get("usage") or {}
    details = usage.get("completion_tokens_details") or {}
    return Reply(
        content=solution, reasoning=reasoning, finish_reason=choice.get("finish_reason"),
        model=completion.get("model") or model,
        tokens_in=usage.get("prompt_tokens", 0) or 0, tokens_out=usage.get("completion_tokens", 0) or 0,
        reasoning_tokens=details.get("reasoning_tokens", 0) or 0,
    )


def api_key_for(role: str, spec: ModelSpec) -> str:
    if spec.provider == "sim":
        return "sim"
    if not spec.api_key_env:
        return "EMPTY"  # vLLM and other self-hosted servers accept any key
    key = os.environ.get(spec.api_key_env)
    if not key:
        raise ConfigError(f"models.{role}.api_key_env: environment variable {spec.api_key_env} is not set")
    return key


def build_client(role: str, spec: ModelSpec, *, endpoints: Endpoints, sim_url: str | None,
                 log: CallLogger) -> RoleClient:
    if spec.provider == "sim":
        if sim_url is None:
            raise ConfigError(f"models.{role}: provider sim needs the simulator running")
        urls, model = [sim_url], spec.model or f"sim-{role}"
    else:
        urls = spec.base_url if isinstance(spec.base_url, list) else [spec.base_url]
        model = spec.model
    key = api_key_for(role, spec)
    replicas = [
        Replica(url=url, budget=endpoints.budget(url, spec.max_in_flight), chat=ReasoningChatOpenAI(
            model=model,
            base_url=url,
            api_key=key,
            temperature=spec.temperature,
            top_p=spec.top_p,
            max_tokens=spec.max_tokens,
            timeout=spec.timeout_s,
            max_retries=0,  # retries are ours: each attempt is logged, and a 429 backs the budget off
            extra_body=spec.extra_body or None,
            stream_usage=True,
        ))
        for url in urls
    ]
    return RoleClient(role=role, spec=spec, model=model, replicas=replicas, limiter=RateLimiter(spec.rpm, spec.tpm),
                      log=log)


def build_clients(config: Config, *, endpoints: Endpoints, sim_url: str | None,
                  log: CallLogger) -> dict[str, RoleClient]:
    """One client per role: expander, drafter, critic0, critic1, solver, labeler."""
    return {
        role: build_client(role, spec, endpoints=endpoints, sim_url=sim_url, log=log)
        for role, spec in config.models.all_roles().items()
    }


def uses_simulator(config: Config) -> bool:
    specs = [*config.models.all_roles().values(), config.models.embedder]
    return any(spec is not None and spec.provider == "sim" for spec in specs)
