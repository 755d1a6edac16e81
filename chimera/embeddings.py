"""Embeddings from an OpenAI-compatible `/v1/embeddings` endpoint (the simulator serves one)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from typing import Any

import numpy as np
import openai

from chimera.config import ModelSpec
from chimera.dispatch import Endpoints, queue_place
from chimera.errors import ConfigError
from chimera.llm import HTTP, CallLogger, api_key_for, map_error, outcome_of, read_capped, short, token_count

BATCH = 256
calls_log = logging.getLogger("chimera.calls")


class Embedder:
    def __init__(self, spec: ModelSpec, *, endpoints: Endpoints, sim_url: str | None, log: CallLogger):
        url = sim_url if spec.provider == "sim" else spec.base_url
        if not isinstance(url, str):
            raise ConfigError("models.embedder: give one base_url (a list of replicas is for chat roles)")
        self.base_url = url
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

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """The server's JSON, read with the role's size cap (as chat replies are)."""
        response = await self.client.post("/embeddings", body=body, cast_to=HTTP.Response, stream=True)
        try:
            raw = await read_capped(response, int(self.spec.max_reply_mb * 2**20))
        finally:
            await response.aclose()
        reply = json.loads(raw)
        if not isinstance(reply, dict):
            raise ValueError("the reply is not a JSON object")
        return reply

    async def _batch(self, texts: list[str], context: dict[str, Any]) -> list[list[float]]:
        started = time.perf_counter()
        outcome, error_text, tokens = "ok", None, 0
        try:
            await self.budget.acquire(queue_place("embedder", context.get("step", 0)))
            try:
                reply = await asyncio.wait_for(self._post({"model": self.model, "input": texts}),
                                               self.spec.timeout_s)
            finally:
                await self.budget.release(ok=True)
            raw_usage = reply.get("usage")
            usage = raw_usage if isinstance(raw_usage, dict) else {}
            tokens = token_count(usage.get("prompt_tokens"))
            data = reply.get("data")
            if not isinstance(data, list) or not all(isinstance(d, dict) and isinstance(d.get("index"), int)
                                                     for d in data):
                raise ValueError("the reply has no list of indexed embeddings")
            ordered = sorted(data, key=lambda d: d["index"])
            if len(ordered) != len(texts):
                raise ValueError(f"{len(ordered)} embeddings for {len(texts)} inputs")
            vectors = [d.get("embedding") for d in ordered]
            widths = {len(v) if isinstance(v, list) else -1 for v in vectors}
            if len(widths) != 1 or min(widths) < 1 or not all(
                    isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
                    for v in vectors for x in v):
                raise ValueError(f"embeddings of different or no lengths, or not finite numbers: widths {sorted(widths)[:4]}")
            return vectors
        except Exception as error:  # noqa: BLE001 - logged, then mapped as for every other model call
            outcome, error_text = outcome_of(error), short(error)
            raise map_error(error, role="embedder", url=self.base_url, model=self.model,
                            timeout_s=self.spec.timeout_s) from error
        finally:
            calls_log.debug("embedder %s %s tokens %d/0 %.2fs%s", self.base_url, outcome, tokens,
                            time.perf_counter() - started, f" ({error_text})" if error_text else "")
            self.log({"run": context.get("run"), "role": "embedder", "model": self.model, "base_url": self.base_url,
                      "topic_id": None, "problem_id": None, "scope": "topic dedup", "tokens_in": tokens, "tokens_out": 0,
                      "reasoning_tokens": 0, "latency_s": round(time.perf_counter() - started, 4),
                      "finish_reason": None, "outcome": outcome, "error": error_text})
