"""The simulator's HTTP layer: an OpenAI-compatible peer (chat completions, embeddings, models, batches) whose
replies come from the oracle (chimera.sim.oracle). Faults, latency and capacity limits are drawn per attempt
and never change what a successful reply says."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from typing import Any

from aiohttp import web

from chimera.config import SimSettings
from chimera.sim.anthropic_batches import MessageBatchDesk
from chimera.sim.batches import BatchDesk
from chimera.sim.batches import error_reply as _error
from chimera.sim.gpu import PROMETHEUS_TEXT, Gpu, render_metrics
from chimera.sim.oracle import TASKS, Oracle, approx_tokens, embed, schema_name, seeded, truncate


class Simulator:
    def __init__(self, settings: SimSettings | None = None, seed: int = 0):
        self.settings = settings or SimSettings()
        self.seed = seed
        self.oracle = Oracle(self.settings, seed)
        self.latency_by_task: dict[str, float] = {str(task): s for task, s in self.settings.latency_by_task.items()}
        self.in_flight = 0
        self.attempts: Counter[str] = Counter()
        self._prefixes: set[str] = set()  # message prefixes seen: a prefix cache, as vLLM's or a provider's
        self.batches = BatchDesk(self.oracle, self.settings, seed, cached_tokens=self._cached_tokens)
        self.message_batches = MessageBatchDesk(self.batches)  # Anthropic's shape; shares the desk's counters
        self.gpu = (Gpu(self.settings.gpu_knee, self.settings.gpu_kv_tokens, self.settings.gpu_request_s,
                        self.settings.gpu_token_s) if self.settings.gpu_knee is not None else None)

    # -- HTTP -------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        self.batches.routes(app)
        self.message_batches.routes(app)
        return app

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def metrics(self, request: web.Request) -> web.Response:
        """vLLM's Prometheus gauges: the GPU's scheduler, or (no GPU played) every request in flight as running."""
        text = self.gpu.metrics_text() if self.gpu else render_metrics(Counter({"sim": self.in_flight}), Counter(), 0.0)
        return web.Response(text=text, headers={"Content-Type": PROMETHEUS_TEXT})

    async def models(self, request: web.Request) -> web.Response:
        names = ["sim-expander", "sim-drafter", "sim-critic0", "sim-critic1", "sim-solver", "sim-labeler"]
        return web.json_response({"object": "list", "data": [
            {"id": n, "object": "model", "created": 0, "owned_by": "chimera-sim"} for n in names]})

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        if isinstance(body, web.Response):
            return body
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            return _error(400, "input must be a string or a list of strings")
        data = [{"object": "embedding", "index": i, "embedding": embed(text)} for i, text in enumerate(inputs)]
        tokens = sum(approx_tokens(t) for t in inputs)
        return web.json_response({"object": "list", "data": data, "model": body.get("model", "sim-embedder"),
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._json(request)
        if isinstance(body, web.Response):
            return body
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return _error(400, "messages must be a non-empty list")
        if body.get("stream"):
            return _error(400, "the simulator does not stream; send stream=false")
        settings = self.settings
        key = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
        self.attempts[key] += 1
        fault = seeded(self.seed, "fault", key, self.attempts[key]).random
        if settings.capacity is not None and self.in_flight >= settings.capacity:
            return _error(429, "simulator at capacity", headers={"retry-after": "1"})
        self.in_flight += 1
        try:
            await self._latency(key, TASKS.get(schema_name(body) or "solve", "solve"))
            if fault() < settings.fault_429:
                return _error(429, "rate limited (injected)", headers={"retry-after": "1"})
            if fault() < settings.fault_5xx:
                return _error(500, "internal error (injected)")
            if fault() < settings.fault_hang:
                await asyncio.sleep(3600)
            reply = self.oracle.respond(body)
            if fault() < settings.fault_malformed and schema_name(body):
                reply["choices"][0]["message"]["content"] = reply["choices"][0]["message"]["content"][: -7] + '",,}'
            if fault() < settings.fault_truncate:
                truncate(reply, max(1, reply["usage"]["completion_tokens"] // 2))
            if self.gpu is not None:  # a GPU's timing: the reply is already decided
                await self.gpu.serve(str(body.get("model")), reply["usage"]["prompt_tokens"],
                                     reply["usage"]["completion_tokens"])
            cached = self._cached_tokens(str(body.get("model")), body["messages"])
            if cached:
                reply["usage"]["prompt_tokens_details"] = {"cached_tokens": min(cached, reply["usage"]["prompt_tokens"])}
            return web.json_response(reply)
        finally:
            self.in_flight -= 1

    def _cached_tokens(self, model: str, messages: list[Any]) -> int:
        """Tokens of the longest run of leading messages an earlier request to the same model began with (whole
        messages only)."""
        if len(self._prefixes) > 200_000:
            self._prefixes.clear()
        prefix, tokens, cached = hashlib.sha256(model.encode()), 0, 0
        for message in messages[:-1]:  # the last message is the request's own
            prefix.update(json.dumps(message, sort_keys=True, default=str).encode())
            tokens += approx_tokens(str(message.get("content") or "") if isinstance(message, dict) else "")
            seen = prefix.hexdigest()
            if seen in self._prefixes:
                cached = tokens
            self._prefixes.add(seen)
        return cached

    async def _json(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "request body is not valid JSON")
        return body if isinstance(body, dict) else _error(400, "request body must be a JSON object")

    async def _latency(self, key: str, task: str) -> None:
        base = self.latency_by_task.get(task, self.settings.latency_s)
        if base <= 0:
            return
        jitter = self.settings.latency_jitter
        factor = 1 + jitter * (2 * seeded(self.seed, "latency", key, self.attempts[key]).random() - 1)
        await asyncio.sleep(base * factor)


async def start(settings: SimSettings | None = None, seed: int = 0, host: str = "127.0.0.1",
                port: int = 0) -> tuple[web.AppRunner, str, Simulator]:
    """Start the simulator on the running loop; returns (runner, base_url, simulator). Port 0 picks a free one."""
    simulator = Simulator(settings, seed)
    runner = web.AppRunner(simulator.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, f"http://{host}:{bound}/v1", simulator
