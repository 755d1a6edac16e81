"""The simulator as a GPU inference server (opt-in: `sim.gpu_knee`): replies take time as a batching server's do.

A request needs `gpu_request_s + gpu_token_s x completion tokens` seconds of service at full speed. The
requests running share the GPU: up to `gpu_knee` of them each run at full speed, past it they share a
throughput that no longer grows (each runs at knee / running), so latency climbs and nothing is gained.
A request holds its prompt and completion tokens of the KV cache while it runs; one that does not fit in
`gpu_kv_tokens` waits in a first-come queue (vLLM's `waiting`) until running ones finish. Only timing
changes: what a reply says is decided before it is served.

`/metrics` shows the scheduler as vLLM's Prometheus text does (gauges labelled with model_name), with the
time requests spent waiting and running as vLLM's queue-time and inference-time histograms (sum and count).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from dataclasses import dataclass

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
IDLE_MODEL = "chimera-sim"  # the label shown before any request named a model


@dataclass(eq=False)
class Job:
    model: str
    work: float  # seconds of service left at full speed
    tokens: int  # KV-cache tokens held while running
    done: asyncio.Future[None]
    arrived: float
    started: float | None = None


@dataclass
class GpuTotals:
    """What the GPU did: seconds waiting and running, summed over finished requests."""

    finished: int = 0
    wait_s: float = 0.0
    service_s: float = 0.0


class Gpu:
    def __init__(self, knee: int, kv_tokens: int | None, request_s: float, token_s: float):
        self.knee, self.kv_tokens, self.request_s, self.token_s = knee, kv_tokens, request_s, token_s
        self.running: list[Job] = []
        self.waiting: deque[Job] = deque()
        self.kv_used = 0
        self.totals = GpuTotals()
        self._advanced = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None

    async def serve(self, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        """Hold the request until the GPU has served it (queued first while the KV cache is full)."""
        work = self.request_s + self.token_s * completion_tokens
        job = Job(model, work, prompt_tokens + completion_tokens, asyncio.get_running_loop().create_future(),
                  time.monotonic())
        self._advance()
        self.waiting.append(job)
        self._schedule()
        try:
            await job.done
        finally:
            if not job.done.done():  # the client went away: its place and KV tokens are freed
                self._advance()
                if job in self.waiting:
                    self.waiting.remove(job)
                elif job in self.running:
                    self.running.remove(job)
                    self.kv_used -= job.tokens
                self._schedule()

    def _rate(self) -> float:
        """Full-speed seconds of work each running request gets per second."""
        return min(1.0, self.knee / len(self.running)) if self.running else 1.0

    def _advance(self) -> None:
        now = time.monotonic()
        progress = (now - self._advanced) * self._rate()
        self._advanced = now
        for job in self.running:
            job.work -= progress

    def _schedule(self) -> None:
        """Finish what is done, admit what fits, and set the timer for the next finish."""
        now = time.monotonic()
        for job in [j for j in self.running if j.work <= 1e-6]:
            self.running.remove(job)
            self.kv_used -= job.tokens
            self.totals.finished += 1
            self.totals.wait_s += (job.started or now) - job.arrived
            self.totals.service_s += now - (job.started or now)
            job.done.set_result(None)
        while self.waiting and (not self.running or self.kv_tokens is None
                                or self.kv_used + self.waiting[0].tokens <= self.kv_tokens):
            job = self.waiting.popleft()
            job.started = now
            self.kv_used += job.tokens
            self.running.append(job)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.running:
            delay = min(j.work for j in self.running) / self._rate()
            self._timer = asyncio.get_running_loop().call_later(max(0.0, delay), self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._advance()
        self._schedule()

    def kv_usage(self) -> float:
        return min(1.0, self.kv_used / self.kv_tokens) if self.kv_tokens else 0.0

    def metrics_text(self) -> str:
        running = Counter(j.model for j in self.running)
        waiting = Counter(j.model for j in self.waiting)
        return render_metrics(running, waiting, self.kv_usage(), self.totals)


def render_metrics(running: Counter[str], waiting: Counter[str], kv_usage: float,
                   totals: GpuTotals | None = None) -> str:
    """vLLM's scheduler gauges in Prometheus text format, one series per model (at least one)."""
    models = sorted(set(running) | set(waiting)) or [IDLE_MODEL]
    lines: list[str] = []

    def gauge(name: str, help_text: str, value_of: dict[str, float]) -> None:
        lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} gauge"])
        lines.extend(f'{name}{{model_name="{m}"}} {float(value_of.get(m, 0))}' for m in models)

    gauge("vllm:num_requests_running", "Number of requests in model execution batches.", dict(running))
    gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", dict(waiting))
    kv = {m: kv_usage for m in models}
    gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", kv)
    gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.", kv)
    if totals is not None:  # one series for the whole server: the totals are not kept per model
        label = f'model_name="{models[0]}"'
        for name, help_text, seconds in (
                ("vllm:request_queue_time_seconds", "Time spent in WAITING phase for request.", totals.wait_s),
                ("vllm:request_inference_time_seconds", "Time spent in RUNNING phase for request.",
                 totals.service_s)):
            lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} histogram",
                          f'{name}_bucket{{{label},le="+Inf"}} {float(totals.finished)}',
                          f"{name}_sum{{{label}}} {seconds}", f"{name}_count{{{label}}} {float(totals.finished)}"])
    return "\n".join(lines) + "\n"
