"""Embeddings from an OpenAI-compatible `/v1/embeddings` endpoint (the simulator serves one)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import openai

from chimera.config import ModelSpec
from chimera.errors import CallFailed, EndpointError
from chimera.dispatch import Endpoints
from chimera.llm import CallLogger, api_key_for

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
            await self.budget.acquire()
            try:
                reply = await self.client.embeddings.create(model=self.model, input=texts)
            finally:
                await self.budget.release(ok=True)
            tokens = reply.usage.prompt_tokens if reply.usage else 0
            ordered = sorted(reply.data, key=lambda d: d.index)
            if len(ordered) != len(texts):
                raise CallFailed("embedder", self.base_url, f"{len(ordered)} embeddings for {len(texts)} inputs")
            return [d.embedding for d in ordered]
        except openai.APITimeoutError as error:
            outcome, error_text = "timeout", str(error)
            raise CallFailed("embedder", self.base_url, f"timed out after {self.spec.timeout_s:g}s") from error
        except openai.APIConnectionError as error:
            outcome, error_text = "connection_error", str(error)
            raise EndpointError("embedder", self.base_url, "cannot connect (is the server running?)") from error
        except openai.APIStatusError as error:
            outcome, error_text = f"http_{error.status_code}", str(error)
            raise CallFailed("embedder", self.base_url, f"HTTP {error.status_code}") from error
        finally:
            self.log({"run": context.get("run"), "role": "embedder", "model": self.model, "base_url": self.base_url,
                      "topic_id": None, "problem_id": None, "scope": "topic dedup", "tokens_in": tokens, "tokens_out": 0,
                      "reasoning_tokens": 0, "latency_s": round(time.perf_counter() - started, 4),
                      "finish_reason": None, "outcome": outcome, "error": error_text})
