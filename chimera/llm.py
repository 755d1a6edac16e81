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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import openai
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI

from chimera.config import Config, ModelSpec
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


class InflightBudget:
    """The run's one budget of requests in flight, shared by every topic and role."""

    def __init__(self, limit: int):
        self.limit = limit
        self.in_flight = 0
        self._semaphore = asyncio.Semaphore(limit)

    async def __aenter__(self) -> "InflightBudget":
        await self._semaphore.acquire()
        self.in_flight += 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.in_flight -= 1
        self._semaphore.release()


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


@dataclass
class RoleClient:
    """Everything needed to call one role's endpoint."""

    role: str
    spec: ModelSpec
    base_url: str
    model: str
    chat: ChatOpenAI
    budget: InflightBudget
    log: CallLogger = field(default=lambda call: None)

    async def complete(
        self,
        messages: list[BaseMessage],
        *,
        response_format: dict[str, Any] | None = None,
        extra_body: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> Reply:
        kwargs: dict[str, Any] = dict(overrides)
        body = {**self.spec.extra_body, **(extra_body or {})}
        if response_format is not None:
            # Sent as a body field: the server sees the same JSON, and the openai client skips both its
            # per-key transform of the nested schema (~3 ms a call) and its refusal to return a cut reply.
            body["response_format"] = response_format
        if body != self.spec.extra_body:
            kwargs["extra_body"] = body
        started = time.perf_counter()
        async with self.budget:
            try:
                message = await self.chat.ainvoke(messages, **kwargs)
                reply = _reply_from_message(message, self.model)
            except openai.LengthFinishReasonError as error:
                # The openai client refuses to parse a structured reply cut at max_tokens; keep it as truncated.
                reply = _reply_from_completion(error.completion.model_dump(), self.model)
            except Exception as error:  # noqa: BLE001 - mapped to a typed error below, and logged first
                self._log(context, started, None, outcome=_outcome_of(error), error=_short(error))
                raise self._map_error(error) from error
        reply.latency_s = time.perf_counter() - started
        self._log(context, started, reply, outcome="truncated" if reply.truncated else "ok")
        return reply

    def _log(self, context: dict[str, Any] | None, started: float, reply: Reply | None, *,
             outcome: str, error: str | None = None) -> None:
        context = context or {}
        self.log({
            "run": context.get("run"), "role": self.role, "model": self.model, "base_url": self.base_url,
            "topic_id": context.get("topic_id"), "problem_id": context.get("problem_id"), "scope": context.get("scope"),
            "tokens_in": reply.tokens_in if reply else 0, "tokens_out": reply.tokens_out if reply else 0,
            "reasoning_tokens": reply.reasoning_tokens if reply else 0,
            "latency_s": round(time.perf_counter() - started, 4),
            "finish_reason": reply.finish_reason if reply else None, "outcome": outcome, "error": error,
        })

    def _map_error(self, error: Exception) -> Exception:
        if isinstance(error, openai.APITimeoutError):
            return CallFailed(self.role, self.base_url, f"timed out after {self.spec.timeout_s:g}s")
        if isinstance(error, openai.APIConnectionError):
            return EndpointError(self.role, self.base_url, "cannot connect (is the server running?)")
        if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
            return EndpointError(self.role, self.base_url, f"refused the API key (HTTP {error.status_code})")
        if isinstance(error, openai.NotFoundError):
            return EndpointError(self.role, self.base_url, f"model {self.model!r} or path not found (HTTP 404)")
        if isinstance(error, openai.APIStatusError):
            return CallFailed(self.role, self.base_url, f"HTTP {error.status_code}: {_short(error)}")
        return CallFailed(self.role, self.base_url, _short(error))


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


def build_client(role: str, spec: ModelSpec, *, budget: InflightBudget, sim_url: str | None,
                 log: CallLogger) -> RoleClient:
    if spec.provider == "sim":
        if sim_url is None:
            raise ConfigError(f"models.{role}: provider sim needs the simulator running")
        base_url, model = sim_url, spec.model or f"sim-{role}"
    else:
        base_url, model = spec.base_url, spec.model
    chat = ReasoningChatOpenAI(
        model=model,
        base_url=base_url,
        api_key=api_key_for(role, spec),
        temperature=spec.temperature,
        top_p=spec.top_p,
        max_tokens=spec.max_tokens,
        timeout=spec.timeout_s,
        max_retries=spec.max_retries,
        extra_body=spec.extra_body or None,
        stream_usage=True,
    )
    return RoleClient(role=role, spec=spec, base_url=base_url, model=model, chat=chat, budget=budget, log=log)


def build_clients(config: Config, *, budget: InflightBudget, sim_url: str | None,
                  log: CallLogger) -> dict[str, RoleClient]:
    """One client per role: expander, drafter, critic0, critic1, solver, labeler."""
    return {
        role: build_client(role, spec, budget=budget, sim_url=sim_url, log=log)
        for role, spec in config.models.all_roles().items()
    }


def uses_simulator(config: Config) -> bool:
    specs = [*config.models.all_roles().values(), config.models.embedder]
    return any(spec is not None and spec.provider == "sim" for spec in specs)
