"""Steering an endpoint's budget from the server's own signals (a model's `adaptive`), for servers that queue
instead of refusing: vLLM sends no 429 when overloaded, its requests wait and latency grows.

`metrics` reads the server's Prometheus text (vLLM's /metrics) about once a second: requests waiting there
shrink the budget (multiplicative decrease); a full budget with nothing waiting and KV cache to spare grows,
doubling per look until the first sign of overload (as TCP's slow start), then by a tenth at a time.
`latency` is for servers without metrics: the mean latency of the requests completed since the last look
(Little's law over the budget's in-flight time) is compared with its minimum over a long window, the no-load
baseline; well above it the budget shrinks, otherwise a full budget grows as above. Either way the
controller starts low and sets the budget's `steered` limit, which `max_in_flight` (or run.concurrency)
caps and which never goes below one place; a 429 still halves the budget under it. A decrease waits until
the requests sent under the larger limit have drained (their queueing was already answered), as the
budget's own 429 halving does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from chimera.config import ModelSpec
from chimera.models.dispatch import EndpointBudget, Endpoints

log = logging.getLogger(__name__)

START = 8  # places a steered budget starts with (or max_in_flight, when lower)
GROWTH = 0.1  # a growing budget gains this share of its limit (at least one place) per look
DECREASE = 0.8  # a shrinking budget keeps this share per look
KV_FULL = 0.9  # KV-cache use at which the budget stops growing: a larger batch would have to wait
LATENCY_TOLERANCE = 1.5  # latency above this multiple of the baseline shrinks the budget
BASELINE_LOOKS = 300  # the baseline is the minimum latency over this many looks
MIN_COMPLETED = 4  # a latency look needs this many completed requests, and as many as the limit
MAX_METRICS_BYTES = 4 << 20


@dataclass(frozen=True)
class ServerLoad:
    """A server's scheduler at one moment: requests running, waiting, and the KV cache's use (0 to 1)."""

    running: float
    waiting: float
    kv_usage: float | None


def samples(text: str) -> list[tuple[str, float]]:
    """(metric name, value) of every sample line of Prometheus text, labels dropped; lines that are not
    samples are skipped."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name, _, rest = line.partition("{")
            rest = rest.rpartition("}")[2]
        else:
            name, _, rest = line.partition(" ")
        fields = rest.split()
        try:
            found.append((name.strip(), float(fields[0])))
        except (IndexError, ValueError):
            continue
    return found


def parse_metrics(text: str) -> ServerLoad | None:
    """vLLM's gauges from Prometheus text, summed over their series (every model on the server); None when
    the text has neither a running nor a waiting gauge. KV use is the highest series of
    vllm:kv_cache_usage_perc, or of the older vllm:gpu_cache_usage_perc."""
    sums: dict[str, float] = {}
    highest: dict[str, float] = {}
    for name, value in samples(text):
        sums[name] = sums.get(name, 0.0) + value
        highest[name] = max(highest.get(name, value), value)
    if "vllm:num_requests_running" not in sums and "vllm:num_requests_waiting" not in sums:
        return None
    kv = highest.get("vllm:kv_cache_usage_perc", highest.get("vllm:gpu_cache_usage_perc"))
    return ServerLoad(sums.get("vllm:num_requests_running", 0.0), sums.get("vllm:num_requests_waiting", 0.0), kv)


def default_metrics_url(base_url: str) -> str:
    """Where a server behind `base_url` shows its metrics: the URL without its /v1, plus /metrics."""
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/")
    path = path[: -len("/v1")] if path.endswith("/v1") else path
    return urlunsplit((parts.scheme, parts.netloc, f"{path}/metrics", "", ""))


def grown(limit: float, probing: bool) -> float:
    """One step up: double while probing (no sign of overload seen yet), else a tenth (one place at least)."""
    return limit * 2 if probing else limit + max(1.0, limit * GROWTH)


def after_metrics(limit: float, load: ServerLoad, *, full: bool, draining: bool, probing: bool) -> float:
    """The next limit from the server's scheduler: shrink while requests wait there (not again while the
    requests sent under a larger limit drain), grow while the budget is full and the KV cache has room."""
    if load.waiting > 0:
        return limit if draining else limit * DECREASE
    if full and (load.kv_usage is None or load.kv_usage < KV_FULL):
        return grown(limit, probing)
    return limit


def after_latency(limit: float, latency: float, baseline: float, *, full: bool, draining: bool,
                  probing: bool) -> float:
    """The next limit from latency: shrink when it is well above the no-load baseline, grow a full budget
    otherwise."""
    if latency > baseline * LATENCY_TOLERANCE:
        return limit if draining else limit * DECREASE
    return grown(limit, probing) if full else limit


class Controller:
    """Looks at the server every `interval_s` and sets its budget's steered limit, until closed."""

    def __init__(self, budget: EndpointBudget, interval_s: float):
        self.budget, self.interval_s = budget, interval_s
        self.looks = 0
        self.probing = True  # until the first sign of overload, the budget doubles per look (slow start)
        budget.steer(min(budget.limit, START))
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.look()

    async def look(self) -> None:
        raise NotImplementedError

    def _set(self, decide: float) -> None:
        before = self.budget.steered
        self.budget.steer(decide)
        self.looks += 1
        if int(self.budget.steered) != int(before):
            log.debug("%s: steered budget %d -> %d", self.budget.url, int(before), int(self.budget.steered))

    def _state(self) -> tuple[float, bool, bool]:
        """(the limit in force, whether the budget is full, whether it still drains a larger limit)."""
        budget = self.budget
        limit = min(budget.steered, budget.current)
        return limit, budget.in_flight >= max(1, int(limit)), budget.in_flight > max(1, int(limit))

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class MetricsController(Controller):
    """`adaptive: metrics`: the server's /metrics (vLLM's scheduler gauges)."""

    def __init__(self, budget: EndpointBudget, url: str, interval_s: float):
        self.url = url
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=max(0.5, min(5.0, 2 * interval_s))))
        self.missing = 0  # looks in a row that found no metrics
        super().__init__(budget, interval_s)

    async def fetch(self) -> ServerLoad | None:
        try:
            async with self.session.get(self.url) as response:
                if response.status != 200:
                    return None
                raw = await response.content.read(MAX_METRICS_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None
        if len(raw) > MAX_METRICS_BYTES:
            return None
        return parse_metrics(raw.decode("utf-8", "replace"))

    async def look(self) -> None:
        load = await self.fetch()
        if load is None:  # the limit holds until the metrics come back
            self.missing += 1
            if self.missing == 3:
                log.warning("%s shows no vLLM metrics (num_requests_running/waiting); the budget of %s holds at %d",
                            self.url, self.budget.url, int(self.budget.steered))
            return
        self.missing = 0
        self.probing = self.probing and load.waiting == 0
        limit, full, draining = self._state()
        self._set(after_metrics(limit, load, full=full, draining=draining, probing=self.probing))

    async def close(self) -> None:
        await super().close()
        await self.session.close()


class LatencyController(Controller):
    """`adaptive: latency`: the mean latency of the requests completed between two looks."""

    def __init__(self, budget: EndpointBudget, interval_s: float):
        self.latencies: deque[float] = deque(maxlen=BASELINE_LOOKS)
        self._busy, self._completed = budget.busy_seconds(), budget.completed
        super().__init__(budget, interval_s)

    async def look(self) -> None:
        busy, completed = self.budget.busy_seconds(), self.budget.completed
        if completed - self._completed < max(MIN_COMPLETED, self.budget.steered):
            return  # too few for a mean: a look spans about one latency at least
        latency = (busy - self._busy) / (completed - self._completed)
        self._busy, self._completed = busy, completed
        self.latencies.append(latency)
        self.probing = self.probing and latency <= min(self.latencies) * LATENCY_TOLERANCE
        limit, full, draining = self._state()
        self._set(after_latency(limit, latency, min(self.latencies), full=full, draining=draining,
                                probing=self.probing))


def steer(endpoints: Endpoints, url: str, spec: ModelSpec) -> None:
    """Start the controller `spec.adaptive` names for the budget of `url` (the first role that asks for one
    on an endpoint sets it; the run closes it with `Endpoints.stop_steering`)."""
    if spec.adaptive == "off" or url in endpoints.steering:
        return
    budget = endpoints.budgets[url]
    endpoints.steering[url] = (
        MetricsController(budget, spec.metrics_url or default_metrics_url(url), spec.adaptive_interval_s)
        if spec.adaptive == "metrics" else LatencyController(budget, spec.adaptive_interval_s))
