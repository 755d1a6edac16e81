"""Embeddings from an OpenAI-compatible `/v1/embeddings` endpoint (the simulator serves one)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import openai

from chimera.config import ModelSpec
from chimera.dispatch import Endpoints, queue_place
from chimera.llm import CallLogger, api_key_for, map_error, outcome_of, short

BATCH = 256


class Embedder:
    def __init__(self, spec: ModelSpec, *, endpoints: Endpoints, sim_url: str | None, log: CallLogger):
        self.base_url = sim_url if spec.provider == "sim" else spec.base_url
        self.model = spec.model or "sim-embedder"
        self.spec, self.log = spec, log
        self.budget = endpoints.budget(self.base_url, spec.max_in_flight)
        self.client = openai.AsyncOpenAI(base_url=self.base_url, api_key=api_key_for("embedder", spec),
                                         timeout=spec.timeout_s, max_retries=spec.max_retries)

    async def embed(self, texts: list[str], context: dict[str, Any] | None = None) -> np.ndarray:
        rows: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            rows += await self._batch(texts[start : start + BATCH], context or {})
        return np.asarray(rows, dtype=np.float64)

    async def _batch(self, texts: list[str], context: dict[str, Any]) -> list[list[float]]:
        started = time.perf_counter()
        outcome, error_text, tokens = "ok", None, 0
        try:
            await self.budget.acquire(queue_place("embedder", context.get("step", 0)))
            try:
                reply = await self.client.embeddings.create(model=self.model, input=texts)
            finally:
                await self.budget.release(ok=True)
            tokens = reply.usage.prompt_tokens if reply.usage else 0
            ordered = sorted(reply.data, key=lambda d: d.index)
            if len(ordered) != len(texts):
                raise ValueError(f"{len(ordered)} embeddings for {len(texts)} inputs")
            return [d.embedding for d in ordered]
        except Exception as error:  # noqa: BLE001 - logged, then mapped as for every other model call
            outcome, error_text = outcome_of(error), short(error)
            raise map_error(error, role="embedder", url=self.base_url, model=self.model,
                            timeout_s=self.spec.timeout_s) from error
        finally:
            self.log({"run": context.get("run"), "role": "embedder", "model": self.model, "base_url": self.base_url,
                      "topic_id": None, "problem_id": None, "scope": "topic dedup", "tokens_in": tokens, "tokens_out": 0,
                      "reasoning_tokens": 0, "latency_s": round(time.perf_counter() - started, 4),
                      "finish_reason": None, "outcome": outcome, "error": error_text})
