"""One model client for an eval command: a role of a config, or a bare OpenAI-compatible URL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from chimera.config import Config, ModelSpec
from chimera.engine.session import simulator_for
from chimera.errors import ConfigError
from chimera.models.dispatch import Endpoints
from chimera.models.llm import RoleClient, build_client


def spec_for(config: Config, model: str, model_name: str | None,
             api_key_env: str | None = None) -> tuple[str, ModelSpec]:
    """`model` is a role of the config (solver, critic0, evaluator, ...) or a base URL (then `model_name`,
    and `api_key_env` when the server wants a key)."""
    if model.startswith(("http://", "https://")):
        if not model_name:
            raise ConfigError("--model is a URL: name the served model with --model-name")
        return "bench", ModelSpec(base_url=model, model=model_name, api_key_env=api_key_env)
    if api_key_env:
        raise ConfigError("--api-key-env goes with --model URL; a role's key is its api_key_env in the config")
    try:
        spec = config.models.role(model)
    except (AttributeError, IndexError, ValueError):
        spec = None
    if spec is None:
        raise ConfigError(f"--model {model}: not a role of the config (solver, critic0, labeler, evaluator, ...) "
                          "nor a http(s) URL")
    return model, spec


@contextlib.asynccontextmanager
async def one_client(role: str, spec: ModelSpec, config: Config, *, concurrency: int | None = None,
                     log: Any) -> AsyncIterator[RoleClient]:
    """The client, with the simulator running for as long as it is used when the spec points at it."""
    async with simulator_for(config, [spec]) as sim_url:
        endpoints = Endpoints(concurrency or config.run.concurrency)
        client = build_client(role, spec, endpoints=endpoints, sim_url=sim_url, log=log)
        try:
            yield client
        finally:
            await client.close()
            await endpoints.stop_steering()
