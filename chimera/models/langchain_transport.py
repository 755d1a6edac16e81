"""Any LangChain chat model as a role's endpoint (`provider: langchain`), for providers that only LangChain
speaks (Anthropic, Gemini, Bedrock natively).

It is a transport: it takes the request body chimera built and gives back a chat completion, so the call
goes through the same door as every other (budget, rate limits, retries, logging, kept replies, the
reasoning split). Structured roles use the model's own `with_structured_output`; thinking is read from
content blocks (`thinking`, `reasoning`) or `reasoning_content`, wherever the integration puts it.
"""

from __future__ import annotations

import importlib
import json
import os
from typing import Any

from chimera.errors import ConfigError

SAMPLING = {"temperature": "temperature", "top_p": "top_p", "max_completion_tokens": "max_tokens",
            "max_tokens": "max_tokens", "stop": "stop"}
CUT = {"length", "max_tokens", "MAX_TOKENS"}  # finish / stop reasons that mean the reply was cut


ALLOWED_MODULES_ENV = "CHIMERA_LANGCHAIN_MODULES"


def allowed_module(module_name: str, environ: dict[str, str] | None = None) -> bool:
    """LangChain's integration packages (langchain_*), plus packages the user names in CHIMERA_LANGCHAIN_MODULES
    (comma-separated). A config cannot widen this itself: a stored config handed over with a database would
    otherwise name any importable module."""
    top = module_name.split(".", 1)[0]
    extra = (environ if environ is not None else os.environ).get(ALLOWED_MODULES_ENV, "")
    return top == "langchain" or top.startswith("langchain_") or top in {m.strip() for m in extra.split(",") if m.strip()}


def load_chat_class(path: str) -> type:
    module_name, _, class_name = path.rpartition(".")
    if not allowed_module(module_name):
        raise ConfigError(f"class {path}: {module_name} is not a LangChain integration package (langchain_*); "
                          f"to allow another package, name it in {ALLOWED_MODULES_ENV}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"class {path}: cannot import {module_name} ({error}); install its package "
                          "(pip install 'chimera-engine[langchain]' for langchain-openai)") from None
    chat_class = getattr(module, class_name, None)
    if not isinstance(chat_class, type):
        raise ConfigError(f"class {path}: {module_name} has no class {class_name}")
    from langchain_core.language_models import BaseChatModel

    if not issubclass(chat_class, BaseChatModel):
        raise ConfigError(f"class {path}: not a LangChain chat model (a subclass of BaseChatModel); only chat models "
                          "are built from a config")
    return chat_class


class LangChainTransport:
    def __init__(self, chat_class: str, kwargs: dict[str, Any]):
        self.model = load_chat_class(chat_class)(**kwargs)

    def configured(self, body: dict[str, Any]) -> Any:
        """The model with this request's sampling set as its fields (a binding would not reach through
        `with_structured_output`); settings the class has no field for are left to its defaults."""
        fields = getattr(type(self.model), "model_fields", {})
        update = {SAMPLING[k]: v for k, v in body.items() if k in SAMPLING and v is not None and SAMPLING[k] in fields}
        return self.model.model_copy(update=update) if update else self.model

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        model = self.configured(body)
        schema = _schema(body.get("response_format"))
        if schema is not None:
            result = await model.with_structured_output(schema, include_raw=True).ainvoke(body["messages"])
            message, parsed = result["raw"], result.get("parsed")
            content = json.dumps(parsed) if parsed is not None else _text(message)
        else:
            message = await model.ainvoke(body["messages"])
            content = _text(message)
        return completion(message, content, body.get("model"))

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("provider langchain serves chat roles, not embeddings")

    async def close(self) -> None:
        client = getattr(self.model, "async_client", None)
        close = getattr(getattr(client, "_client", None), "close", None)
        if callable(close):
            result = close()
            if hasattr(result, "__await__"):
                await result


def _schema(response_format: Any) -> dict[str, Any] | None:
    """The JSON schema a request asks for (titled with its name, which LangChain sends as the schema's name)."""
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema") or {}
        return {"title": spec.get("name", "Reply"), **(spec.get("schema") or {})}
    if isinstance(response_format.get("value"), dict):
        return response_format["value"]
    return None


def _text(message: Any) -> str:
    content = getattr(message, "content", "")
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if isinstance(block, dict) and block.get("type") == "text")


def _reasoning(message: Any) -> str:
    parts = []
    content = getattr(message, "content", "")
    if isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and block.get("type") in ("thinking", "reasoning"):
                parts.append(block.get("thinking") or block.get("reasoning") or block.get("text") or "")
    extra = getattr(message, "additional_kwargs", {}) or {}
    if not parts and isinstance(extra.get("reasoning_content"), str):
        parts.append(extra["reasoning_content"])
    return "\n".join(p for p in parts if p)


def completion(message: Any, content: str, model: str | None) -> dict[str, Any]:
    """A LangChain AI message as the chat completion chimera reads."""
    meta = getattr(message, "response_metadata", {}) or {}
    finish = meta.get("finish_reason") or meta.get("stop_reason") or "stop"
    usage = getattr(message, "usage_metadata", None) or {}
    details = usage.get("output_token_details") or {}
    reasoning = _reasoning(message)
    reply: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning:
        reply["reasoning_content"] = reasoning
    return {
        "model": meta.get("model_name") or meta.get("model") or model,
        "choices": [{"index": 0, "message": reply, "finish_reason": "length" if finish in CUT else "stop"}],
        "usage": {"prompt_tokens": int(usage.get("input_tokens") or 0),
                  "completion_tokens": int(usage.get("output_tokens") or 0),
                  "completion_tokens_details": {"reasoning_tokens": int(details.get("reasoning") or 0)}},
    }
