"""Keeping endpoints busy without overrunning them: one in-flight budget per endpoint, rate limits.

The budget is what sets throughput: an endpoint (vLLM above all) batches
whatever is in flight, so a run keeps `limit` requests open there across all
topics and problem slots. A 429 halves the budget (multiplicative decrease);
each success gives back one place (additive increase) up to the configured limit.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque


class EndpointBudget:
    """Requests in flight to one endpoint, with a limit that backs off on 429 and recovers.

    Waiters queue in order and a released place is handed to the first of them: one
    wake-up per release, however many requests wait (a condition variable woke them all).
    """

    def __init__(self, url: str, limit: int):
        self.url = url
        self.limit = limit
        self.current = float(limit)
        self.in_flight = 0
        self.peak = 0
        self._waiters: deque[asyncio.Future] = deque()
        self._area = 0.0  # integral of in_flight over time, for time-averaged concurrency
        self._since = time.monotonic()
        self._started = self._since

    def _account(self) -> None:
        now = time.monotonic()
        self._area += self.in_flight * (now - self._since)
        self._since = now

    def _room(self) -> bool:
        return self.in_flight < max(1, int(self.current))

    def _take(self) -> None:
        self._account()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)

    async def acquire(self) -> None:
        if self._room() and not self._waiters:
            self._take()
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # resolved by release(), which has already counted this request in flight
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                await self.release(ok=False)  # handed a place just as we were cancelled: give it on
            elif waiter in self._waiters:  # release() may have dropped it already
                self._waiters.remove(waiter)
            raise

    async def release(self, *, ok: bool) -> None:
        self._account()
        self.in_flight -= 1
        if ok:
            self.current = min(self.limit, self.current + 1)
        while self._waiters and self._room():
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._take()
                waiter.set_result(None)

    def back_off(self) -> None:
        """A 429: halve the places (at least one stays)."""
        self.current = max(1.0, self.current / 2)

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


class Endpoints:
    """One budget per endpoint URL, shared by every role and replica that points there."""

    def __init__(self, default_limit: int):
        self.default_limit = default_limit
        self.budgets: dict[str, EndpointBudget] = {}

    def budget(self, url: str, limit: int | None = None) -> EndpointBudget:
        if url not in self.budgets:
            self.budgets[url] = EndpointBudget(url, limit or self.default_limit)
        elif limit is not None and limit < self.budgets[url].limit:
            self.budgets[url].limit = limit  # the strictest setting for a shared endpoint wins
            self.budgets[url].current = min(self.budgets[url].current, float(limit))
        return self.budgets[url]

    @property
    def in_flight(self) -> int:
        return sum(b.in_flight for b in self.budgets.values())

    @property
    def limit(self) -> int:
        return sum(b.limit for b in self.budgets.values())
