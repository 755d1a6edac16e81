"""Keeping endpoints busy without overrunning them: one in-flight budget per endpoint, rate limits.

The budget is what sets throughput: an endpoint (vLLM above all) batches
whatever is in flight, so a run keeps `limit` requests open there across all
topics and problem slots. A 429 halves the budget (multiplicative decrease);
each success gives back one place (additive increase) up to the configured limit.
As in TCP, one overload is one halving: the 429s of requests sent before the last
halving tell of the same overload (they left under the larger budget), so they do
not halve it again. Otherwise a burst of 429s would drive the budget to one place,
and a server that refuses a steady few percent would keep it pinned near there.

When requests wait, the furthest-along graph thread goes first (its LangGraph step),
then the later pipeline stage (`STAGE_ORDER`), then the earliest arrival. A topic then
finishes as soon as the budget lets it: results reach the database from the first
seconds, and the topics in flight, each holding its state and its queued calls in
memory, are no more than the throughput needs. The opposite order (least advanced first,
which keeps topics in step) had every topic in flight draft before any solved: in the
paper-scale run (1,180 topics, budget 256, `chimera bench --scale paper`) the first
sample came after 35 s, topics went through in waves with most of the budget idle
between them, up to 3,800 calls waited at once, and the run took 206 s against 173 s
(peak RSS 459 MB against 391 MB).

A run whose topics all fit in flight at once (`run.topics_in_flight`) keeps them in step
instead (`keep_in_step`): the least advanced thread first, then the earlier stage. A
topic's next step starts only when every branch of its current step is done, so topics
left behind would walk their last serial steps alone while the budget drains; kept in
step, they end together on one wide wave. (`chimera bench`, 2,000 problems in 500 topics,
2 s latency, budget 256, back to back: 0.82 of the budget in flight furthest-along first,
0.94 kept in step.) Turning to that order once a longer run had started its last topic
cost it: the topics then in flight drafted together and queued their solves and labels,
and the paper-scale run's RSS rose by a fifth in its last minute.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from typing import Protocol

# Lower goes first: the stage nearer a topic's end. Roles not listed (an evaluator, say) wait behind the
# pipeline's own calls.
STAGE_ORDER = {"labeler": 0, "labeler2": 0, "solver": 1, "critic0": 2, "critic1": 2, "drafter": 3, "embedder": 3,
               "expander": 4}
LAST_STAGE = 5
QueuePlace = tuple[int, int]


def queue_place(role: str, step: int = 0) -> QueuePlace:
    """What a budget's queue ranks a call by: its graph step and its role's stage."""
    return step, STAGE_ORDER.get(role, LAST_STAGE)


def queue_rank(place: QueuePlace, *, in_step: bool) -> tuple[bool, int, int]:
    """Lower goes first: roles outside the pipeline last; then the furthest step and the latest stage, or, for
    topics kept in step, the least advanced step and the earliest stage."""
    step, stage = place
    return stage == LAST_STAGE, (step if in_step else -step), (-stage if in_step else stage)


class EndpointBudget:
    """Requests in flight to one endpoint, with a limit that backs off on 429 and recovers.

    Waiters queue by (queue place, arrival) and a released place is handed to the first of
    them: one wake-up per release, however many requests wait (a condition variable woke
    them all).
    """

    def __init__(self, url: str, limit: int):
        self.url = url
        self.limit = limit
        self.current = float(limit)
        self.steered = float(limit)  # a controller's limit (chimera.models.concurrency): current recovers up to it
        self.in_flight = 0
        self.completed = 0  # requests released with a reply
        self.closed = False  # stopping: no request gets a place any more; those in flight finish
        self.peak = 0
        # a heap of (rank, arrival, waiter, place); cancelled entries are skipped
        self._waiters: list[tuple[tuple[bool, int, int], int, asyncio.Future, QueuePlace]] = []
        self.in_step = False  # see keep_in_step
        self._arrivals = itertools.count()
        self._area = 0.0  # integral of in_flight over time, for time-averaged concurrency
        self._since = time.monotonic()
        self._started = self._since
        self._halved_at = float("-inf")

    def _account(self) -> None:
        now = time.monotonic()
        self._area += self.in_flight * (now - self._since)
        self._since = now

    def _room(self) -> bool:
        return not self.closed and self.in_flight < max(1, int(self.current))

    def _take(self) -> None:
        self._account()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)

    async def acquire(self, place: QueuePlace = (0, 0)) -> None:
        """Wait for a place; among waiters, the lowest `place` and then the earliest goes first."""
        self._drop_cancelled()
        if self._room() and not self._waiters:
            self._take()
            return
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (queue_rank(place, in_step=self.in_step), next(self._arrivals), waiter, place))
        try:
            await waiter  # resolved by release(), which has already counted this request in flight
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                await self.release(ok=False)  # handed a place just as we were cancelled: give it on
            raise

    def keep_in_step(self) -> None:
        """From now on the least advanced waiter goes first (a run whose topics are all in flight at once)."""
        self.in_step = True
        self._waiters = [(queue_rank(place, in_step=True), arrival, waiter, place)
                         for _, arrival, waiter, place in self._waiters]
        heapq.heapify(self._waiters)

    async def release(self, *, ok: bool) -> None:
        self._account()
        self.in_flight -= 1
        if ok:
            self.completed += 1
            self.current = min(self.limit, self.steered, self.current + 1)
        while self._waiters and self._room():
            waiter = heapq.heappop(self._waiters)[2]
            if not waiter.done():
                self._take()
                waiter.set_result(None)

    def _drop_cancelled(self) -> None:
        """A cancelled waiter stays in the heap until it reaches the top; no live waiter is ever behind
        room (release hands places out), so a cancelled top is all that could hide a free place."""
        while self._waiters and self._waiters[0][2].done():
            heapq.heappop(self._waiters)

    def back_off(self, sent_at: float) -> None:
        """A 429 for a request sent at `sent_at` (time.monotonic()): halve the places (at least one
        stays), unless the request left before the last halving."""
        if sent_at < self._halved_at:
            return
        self.current = max(1.0, self.current / 2)
        self._halved_at = time.monotonic()

    def steer(self, limit: float) -> None:
        """A controller's limit, held within [1, limit]: current falls to it at once and recovers only up to it
        (one place per success, so a 429's halving still holds under it)."""
        self.steered = min(float(self.limit), max(1.0, limit))
        self.current = min(self.current, self.steered)

    def busy_seconds(self) -> float:
        """Request-seconds spent in flight so far (the integral of in_flight): over an interval, its change
        divided by the requests completed is their mean latency (Little's law)."""
        self._account()
        return self._area

    def mean_in_flight(self, since: float | None = None) -> float:
        self._account()
        elapsed = self._since - (since or self._started)
        return self._area / elapsed if elapsed > 0 else 0.0


class RateLimiter:
    """Requests and tokens per minute, as a sliding one-minute window; no limit where None."""

    def __init__(self, rpm: int | None, tpm: int | None):
        self.rpm, self.tpm = rpm, tpm
        self._requests: deque[float] = deque()
        self._tokens: deque[tuple[float, int]] = deque()
        self._lock = asyncio.Lock()

    def _trim(self, now: float) -> None:
        while self._requests and now - self._requests[0] >= 60:
            self._requests.popleft()
        while self._tokens and now - self._tokens[0][0] >= 60:
            self._tokens.popleft()

    async def acquire(self, tokens: int) -> None:
        if self.rpm is None and self.tpm is None:
            return
        async with self._lock:  # one waiter at a time keeps the order fair
            while True:
                now = time.monotonic()
                self._trim(now)
                waits = []
                if self.rpm is not None and len(self._requests) >= self.rpm:
                    waits.append(60 - (now - self._requests[0]))
                used = sum(t for _, t in self._tokens)
                if self.tpm is not None and self._tokens and used + tokens > self.tpm:
                    waits.append(60 - (now - self._tokens[0][0]))
                if not waits:
                    self._requests.append(now)
                    if self.tpm is not None:
                        self._tokens.append((now, tokens))
                    return
                await asyncio.sleep(max(0.01, max(waits)))

    def settle(self, estimated: int, actual: int) -> None:
        """Replace a request's estimated token count with what the server reported."""
        if self.tpm is None or actual == estimated:
            return
        for i in range(len(self._tokens) - 1, -1, -1):
            when, tokens = self._tokens[i]
            if tokens == estimated:
                self._tokens[i] = (when, actual)
                return


class Steering(Protocol):
    """What steers a budget from the server's signals (chimera.models.concurrency); it runs until closed."""

    async def close(self) -> None: ...


class Endpoints:
    """One budget per endpoint URL, shared by every role and replica that points there."""

    def __init__(self, default_limit: int):
        self.default_limit = default_limit
        self.budgets: dict[str, EndpointBudget] = {}
        self.steering: dict[str, Steering] = {}  # url -> the controller steering its budget, if any
        self.totals: dict[str, int] = {}  # url -> max_in_flight_total, for a run shared by several workers
        self.own_limits: dict[str, int] = {}  # url -> this process's own budget, before any share

    def budget(self, url: str, limit: int | None = None, total: int | None = None) -> EndpointBudget:
        if total is not None:  # the strictest run-wide cap for a shared endpoint wins
            self.totals[url] = min(total, self.totals.get(url, total))
        if url not in self.budgets:
            self.budgets[url] = EndpointBudget(url, limit or self.default_limit)
            self.own_limits[url] = self.budgets[url].limit
        elif limit is not None and limit < self.budgets[url].limit:
            self.budgets[url].limit = limit  # the strictest setting for a shared endpoint wins
            self.budgets[url].current = min(self.budgets[url].current, float(limit))
            self.own_limits[url] = limit
        return self.budgets[url]

    def share_totals(self, workers: int) -> None:
        """Cap each endpoint that has a run-wide total at this worker's even share of it, `workers` being alive.
        Between one worker joining and the others' next heartbeat, the run may hold up to one share more."""
        for url, total in self.totals.items():
            budget = self.budgets[url]
            budget.limit = min(self.own_limits[url], max(1, total // max(1, workers)))
            budget.current = min(budget.current, float(budget.limit))

    async def stop_steering(self) -> None:
        """Close every controller (the run is over); budgets keep their last limits."""
        steering, self.steering = list(self.steering.values()), {}
        for controller in steering:
            await controller.close()

    def close(self) -> None:
        """Stop dispatching: every request not yet sent waits (until it is cancelled); those sent finish."""
        for budget in self.budgets.values():
            budget.closed = True

    def by_endpoint(self) -> list[tuple[str, int, int]]:
        """(url, in flight, budget) per endpoint: each one's requests against its own budget."""
        return [(url, b.in_flight, b.limit) for url, b in self.budgets.items()]

    @property
    def in_flight(self) -> int:
        return sum(b.in_flight for b in self.budgets.values())

    @property
    def waiting(self) -> int:
        """Requests queued for a place: more than the budgets can take right now."""
        return sum(1 for b in self.budgets.values() for _, _, waiter, _ in b._waiters if not waiter.done())

    @property
    def limit(self) -> int:
        return sum(b.limit for b in self.budgets.values())

    def keep_in_step(self) -> None:
        for budget in self.budgets.values():
            budget.keep_in_step()

    @property
    def places(self) -> int:
        """Places the budgets give now: under their limits after a 429 or while a controller steers them."""
        return sum(max(1, int(b.current)) for b in self.budgets.values())
