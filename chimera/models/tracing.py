"""Model calls as LangSmith runs and OpenTelemetry spans, when either is switched on.

Calls go through the openai client's low-level `post` (chimera/models/llm.py), so LangChain's callbacks never
see them. `record_call` is the one hook: `RoleClient._log` hands it every attempt it records as a row of
`llm_calls` (a retry is an attempt of its own: a run or span each, the failed ones carrying their error),
after the attempt has ended.

- LangSmith, when langsmith's own switch says tracing is on (LANGSMITH_TRACING=true, or a
  `tracing_context(enabled=True)`): an `llm` run (`embedding` for an embeddings request) under the run
  that is current where the call was made (in a LangGraph node, the node's run: LangGraph puts it in
  langsmith's context), a trace of its own outside any. Inputs: the request body as sent; outputs: the
  reply in the chat completion shape with the thinking split off as `reasoning_content`; token counts as
  `usage_metadata`; chimera's ids, the endpoint, latency and outcome in the metadata. A role on
  `provider: langchain` is left to LangChain, which traces its chat model's runs itself.
- OpenTelemetry, when a tracer provider is set (`opentelemetry.trace.set_tracer_provider`, or
  `use_tracer_provider` here): a CLIENT span per attempt after the GenAI semantic conventions
  (`chat {model}` / `embeddings {model}`), chimera's own attributes under `chimera.`; the messages only
  with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true, as the conventions keep them opt-in.

With both off, a call costs two checks of state already in memory. Neither package is needed: each is
imported when first wanted, and an absent one is a switch that stays off. The request's headers (where
keys go) are never read here; errors arrive already scrubbed of registered secrets.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from chimera.config import ModelSpec

log = logging.getLogger("chimera.models.tracing")
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
INSTRUMENTATION = "chimera"
CHIMERA_FIELDS = ("role", "run", "topic_id", "problem_id", "scope", "outcome", "request_key")

_modules: dict[str, ModuleType | None] = {}  # imported once; None: not installed
_provider: Any = None  # use_tracer_provider's; None: OpenTelemetry's global one
_tracer: tuple[Any, Any] = (None, None)  # (provider, its tracer), remade when the provider changes
_warned: set[str] = set()


class Reply(Protocol):
    """What is read of a reply (chimera.models.llm's Reply; its token counts are read from the call's row)."""

    content: str
    reasoning: str
    finish_reason: str | None
    model: str


def use_tracer_provider(provider: Any) -> None:
    """Send chimera's spans to `provider` (an OpenTelemetry TracerProvider) rather than the global one,
    for an application that keeps its own; None goes back to the global provider."""
    global _provider
    _provider = provider


def record_call(spec: ModelSpec, call: dict[str, Any], body: dict[str, Any] | None, reply: Reply | None) -> None:
    """Trace one attempt (`call`: its row of `llm_calls`, `body`: the request sent, `reply`: None for a
    failed attempt) where tracing is on. Never raises: a tracing backend in trouble costs its trace, not the
    call."""
    if spec.provider != "langchain" and _langsmith_on():
        _guarded("LangSmith", _post_run, spec, call, body, reply)
    tracer = _otel_tracer()
    if tracer is not None:
        _guarded("OpenTelemetry", _emit_span, tracer, spec, call, body, reply)


def _guarded(backend: str, record: Any, *args: Any) -> None:
    try:
        record(*args)
    except Exception as error:  # noqa: BLE001 - tracing never fails a model call
        if backend not in _warned:
            _warned.add(backend)
            log.warning("%s tracing of a model call failed (further failures are not reported): %s", backend, error)


def _module(name: str) -> ModuleType | None:
    if name not in _modules:
        try:
            _modules[name] = importlib.import_module(name)
        except ImportError:
            _modules[name] = None
    return _modules[name]


def _langsmith_on() -> bool:
    utils = _module("langsmith.utils")
    # "local" (runs kept in memory, for langsmith's own evaluations) is not sent anywhere: left out here
    return utils is not None and utils.tracing_is_enabled() is True


def _otel_tracer() -> Any:
    """The tracer for chimera's spans, or None while no tracer provider is set (or OpenTelemetry is absent)."""
    global _tracer
    trace = _module("opentelemetry.trace")
    if trace is None:
        return None
    provider = _provider if _provider is not None else trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    if _tracer[0] is not provider:
        from chimera import __version__

        _tracer = (provider, provider.get_tracer(INSTRUMENTATION, __version__))
    return _tracer[1]


# --- what a call is, in either backend's terms (pure) ---

def operation(body: dict[str, Any] | None) -> str:
    """The GenAI operation name: a chat completion sends messages, an embeddings request input."""
    return "embeddings" if body is not None and "messages" not in body and "input" in body else "chat"


def provider_name(spec: ModelSpec) -> str:
    """The provider as the conventions name it: the OpenAI API for every role chimera calls over HTTP (vLLM
    and the simulator speak it), the integration's name for a LangChain chat model (langchain_anthropic:
    anthropic)."""
    if spec.provider == "langchain" and spec.chat_class:
        return spec.chat_class.split(".", 1)[0].removeprefix("langchain_")
    return "openai"


def server_of(url: str) -> tuple[str | None, int | None]:
    """The host and port a base URL names (the scheme's port when it gives none); (None, None) for an endpoint
    that is no URL (a LangChain class)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None, None
    if not parts.hostname:
        return None, None
    return parts.hostname, port or {"https": 443, "http": 80}.get(parts.scheme)


def public_url(url: str) -> str:
    """A base URL without user:password@ (the only place a URL could carry a credential: the query is split
    off before the client is built)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


def max_tokens_of(body: dict[str, Any]) -> Any:
    return body.get("max_completion_tokens", body.get("max_tokens"))


def times(call: dict[str, Any]) -> tuple[datetime, datetime]:
    """When the attempt started and ended (wall clock), from its recorded latency; it has just ended."""
    end = datetime.now(UTC)
    return end - timedelta(seconds=call.get("latency_s") or 0.0), end


def usage_metadata(call: dict[str, Any]) -> dict[str, Any]:
    """Token counts in the shape LangSmith reads (input/output/total, reasoning as an output detail)."""
    tokens_in, tokens_out = call.get("tokens_in") or 0, call.get("tokens_out") or 0
    usage: dict[str, Any] = {"input_tokens": tokens_in, "output_tokens": tokens_out,
                             "total_tokens": tokens_in + tokens_out}
    if call.get("reasoning_tokens"):
        usage["output_token_details"] = {"reasoning": call["reasoning_tokens"]}
    if call.get("cached_tokens"):
        usage["input_token_details"] = {"cache_read": call["cached_tokens"]}
    return usage


def chimera_fields(call: dict[str, Any]) -> dict[str, Any]:
    """What chimera knows of the call beyond the model's API: its role, the ids it is for, its outcome, and
    the request key that finds its rows in `llm_calls` (a chat call's: one row per attempt)."""
    fields = {name: call.get(name) for name in CHIMERA_FIELDS}
    return {name: value for name, value in fields.items() if value is not None}


def run_fields(spec: ModelSpec, call: dict[str, Any], body: dict[str, Any] | None,
               reply: Reply | None) -> dict[str, Any]:
    """A LangSmith run's fields for one attempt (RunTree's keyword arguments)."""
    op, body = operation(body), body or {}
    start, end = times(call)
    metadata: dict[str, Any] = {
        "ls_provider": provider_name(spec), "ls_model_name": call.get("model"),
        "ls_model_type": "chat" if op == "chat" else "embedding",
        **{f"ls_{name}": value for name, value in (("temperature", body.get("temperature")),
                                                   ("max_tokens", max_tokens_of(body))) if value is not None},
        **chimera_fields(call),
        "base_url": public_url(call.get("base_url") or ""), "latency_s": call.get("latency_s"),
    }
    if reply is not None:
        metadata["usage_metadata"] = usage_metadata(call)
    outputs: dict[str, Any] | None = None
    if reply is not None and op == "chat":
        message = {"role": "assistant", "content": reply.content}
        if reply.reasoning:
            message["reasoning_content"] = reply.reasoning
        outputs = {"choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
                   "model": reply.model}
    elif reply is not None:
        outputs = {"model": reply.model}
    return {"name": call.get("role") or "model", "run_type": "llm" if op == "chat" else "embedding",
            "inputs": body, "outputs": outputs, "error": call.get("error") if reply is None else None,
            "start_time": start, "end_time": end, "extra": {"metadata": metadata}}


def span_attributes(spec: ModelSpec, call: dict[str, Any], body: dict[str, Any] | None, reply: Reply | None,
                    *, capture_content: bool) -> dict[str, Any]:
    """A span's attributes for one attempt, after the GenAI semantic conventions, chimera's under `chimera.`."""
    op, body = operation(body), body or {}
    provider = provider_name(spec)
    attributes: dict[str, Any] = {"gen_ai.operation.name": op, "gen_ai.provider.name": provider,
                                  "gen_ai.system": provider, "gen_ai.request.model": call.get("model")}
    host, port = server_of(call.get("base_url") or "")
    if host is not None:
        attributes["server.address"] = host
        if port is not None:
            attributes["server.port"] = port
    for name, value in (("temperature", body.get("temperature")), ("top_p", body.get("top_p")),
                        ("max_tokens", max_tokens_of(body)), ("seed", body.get("seed"))):
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[f"gen_ai.request.{name}"] = value
    if reply is not None:
        attributes["gen_ai.response.model"] = reply.model
        attributes["gen_ai.usage.input_tokens"] = call.get("tokens_in") or 0
        if call.get("cached_tokens"):
            attributes["gen_ai.usage.cache_read.input_tokens"] = call["cached_tokens"]
        if op == "chat":
            attributes["gen_ai.usage.output_tokens"] = call.get("tokens_out") or 0
            if call.get("reasoning_tokens"):
                attributes["gen_ai.usage.reasoning.output_tokens"] = call["reasoning_tokens"]
            if reply.finish_reason:
                attributes["gen_ai.response.finish_reasons"] = [reply.finish_reason]
    else:
        attributes["error.type"] = call.get("outcome") or "error"
    attributes.update({f"chimera.{name}": value for name, value in chimera_fields(call).items()})
    if capture_content and op == "chat":
        attributes["gen_ai.input.messages"] = json.dumps(input_messages(body.get("messages") or []),
                                                         ensure_ascii=False)
        if reply is not None:
            attributes["gen_ai.output.messages"] = json.dumps(output_messages(reply), ensure_ascii=False)
    return attributes


def input_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages in the conventions' shape: a role and its parts."""
    return [{"role": m.get("role"), "parts": [{"type": "text", "content": m.get("content")}]} for m in messages]


def output_messages(reply: Reply) -> list[dict[str, Any]]:
    parts = ([{"type": "reasoning", "content": reply.reasoning}] if reply.reasoning else []) + \
        [{"type": "text", "content": reply.content}]
    return [{"role": "assistant", "parts": parts, "finish_reason": reply.finish_reason or "unknown"}]


def capture_content() -> bool:
    return os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() == "true"


# --- the two backends (side effects) ---

def _post_run(spec: ModelSpec, call: dict[str, Any], body: dict[str, Any] | None, reply: Reply | None) -> None:
    from langsmith import run_helpers, run_trees

    fields = run_fields(spec, call, body, reply)
    parent = run_helpers.get_current_run_tree()
    if parent is not None:
        run = parent.create_child(**fields)
        children = parent.child_runs  # posted now and done with: the node's run need not hold every call
        if children and children[-1] is run:
            children.pop()
    else:
        context = run_helpers.get_tracing_context()
        extra = {"ls_client": context["client"]} if context["client"] is not None else {}
        if context["project_name"]:
            extra["project_name"] = context["project_name"]
        run = run_trees.RunTree(**fields, **extra)
    run.post()


def _emit_span(tracer: Any, spec: ModelSpec, call: dict[str, Any], body: dict[str, Any] | None,
               reply: Reply | None) -> None:
    from opentelemetry.trace import SpanKind, Status, StatusCode

    start, end = times(call)
    attributes = span_attributes(spec, call, body, reply, capture_content=capture_content())
    span = tracer.start_span(f"{attributes['gen_ai.operation.name']} {call.get('model')}", kind=SpanKind.CLIENT,
                             attributes=attributes, start_time=int(start.timestamp() * 1e9))
    if reply is None:
        span.set_status(Status(StatusCode.ERROR, call.get("error") or call.get("outcome")))
    span.end(end_time=int(end.timestamp() * 1e9))
