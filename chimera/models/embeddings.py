"""Embeddings from an OpenAI-compatible `/v1/embeddings` endpoint (the simulator serves one), in batches,
through the same client as every chat role: budget, rate limits, retries with back-off, replicas, and a row
of `llm_calls` per attempt."""

from __future__ import annotations

from typing import Any

import numpy as np

from chimera.config import ModelSpec
from chimera.errors import ConfigError
from chimera.models.dispatch import Endpoints
from chimera.models.llm import CallLogger, RoleClient, build_client

BATCH = 256


class Embedder:
    def __init__(self, spec: ModelSpec, *, endpoints: Endpoints, sim_url: str | None, log: CallLogger):
        if spec.provider == "langchain":
            raise ConfigError("models.embedder: provider langchain serves chat roles; give the embedder an "
                              "OpenAI-compatible base_url")
        self.client: RoleClient = build_client("embedder", spec, endpoints=endpoints, sim_url=sim_url, log=log)

    @property
    def model(self) -> str:
        return self.client.model

    async def embed(self, texts: list[str], context: dict[str, Any] | None = None) -> np.ndarray:
        rows: list[list[float]] = []
        scoped = {"scope": "topic dedup", **(context or {})}
        for start in range(0, len(texts), BATCH):
            rows += await self.client.embed(texts[start : start + BATCH], scoped)
        return np.asarray(rows, dtype=np.float64)

    async def close(self) -> None:
        await self.client.close()
