"""What model calls cost, and the cap that stops a run before it spends past its budget.

Prices are the config's (`price_per_mtok_in`, `price_per_mtok_out`, `price_per_mtok_cached` per role); a
call that came in a batch costs `1 - batch_discount` of that, and input tokens served from the provider's
prompt cache cost the cached price. Every figure is computed from the `llm_calls` rows, so a resumed run
counts what the runs before it spent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chimera.config import Config, ModelSpec
from chimera.store.rows import RoleUsage

log = logging.getLogger("chimera.models.costs")


@dataclass(frozen=True)
class Prices:
    """Dollars per million tokens for one role, and the share a batched call saves."""

    per_mtok_in: float
    per_mtok_out: float
    per_mtok_cached: float
    batch_discount: float = 0.5

    @classmethod
    def of(cls, spec: ModelSpec | None) -> Prices | None:
        """A role's prices from its spec; None when it has none."""
        if spec is None or spec.price_per_mtok_in is None or spec.price_per_mtok_out is None:
            return None
        cached = spec.price_per_mtok_cached
        return cls(spec.price_per_mtok_in, spec.price_per_mtok_out,
                   spec.price_per_mtok_in if cached is None else cached, spec.batch_discount)

    def cost(self, *, tokens_in: int, tokens_out: int, cached_tokens: int = 0, batched: bool = False) -> float:
        cached = min(cached_tokens, tokens_in)
        full = ((tokens_in - cached) * self.per_mtok_in + cached * self.per_mtok_cached
                + tokens_out * self.per_mtok_out) / 1e6
        return full * (1 - self.batch_discount) if batched else full


def usage_cost(rows: list[RoleUsage], prices: Mapping[str, Prices | None]) -> float | None:
    """Dollars for these usage rows; None when a role that spent tokens has no price."""
    total = 0.0
    for row in rows:
        price = prices.get(row["role"])
        if price is None:
            if row["tokens_in"] or row["tokens_out"]:
                return None
            continue
        total += price.cost(tokens_in=row["tokens_in"], tokens_out=row["tokens_out"],
                           cached_tokens=row["cached_tokens"], batched=row["batched"])
    return total


def usage_report(rows: list[RoleUsage], prices: Mapping[str, Prices | None]) -> dict[str, dict[str, Any]]:
    """Per role: calls, batched calls, tokens, the share of input tokens served from cache, and dollars (None
    without a price)."""
    report: dict[str, dict[str, Any]] = {}
    for row in rows:
        item = report.setdefault(row["role"], {"calls": 0, "batched_calls": 0, "tokens_in": 0, "tokens_out": 0,
                                               "cached_tokens": 0, "cost_usd": 0.0})
        item["calls"] += row["calls"]
        item["batched_calls"] += row["calls"] if row["batched"] else 0
        for name in ("tokens_in", "tokens_out", "cached_tokens"):
            item[name] += row[name]
        cost = usage_cost([row], prices)
        item["cost_usd"] = None if cost is None or item["cost_usd"] is None else item["cost_usd"] + cost
    for item in report.values():
        item["cached_share"] = round(item["cached_tokens"] / item["tokens_in"], 4) if item["tokens_in"] else 0.0
        item["cost_usd"] = round(item["cost_usd"], 6) if item["cost_usd"] is not None else None
    return report


def prices_of(config: Config | None) -> dict[str, Prices | None]:
    """Role -> its prices, for every role a run calls; none for a run with no stored config
    (`Store.config_of`)."""
    return {role: Prices.of(spec) for role, spec in config.models.run_roles().items()} if config else {}


@dataclass
class SpendCap:
    """The run's caps (dollars, tokens over all roles, tokens per role) against what was spent so far plus what
    is in flight (each call reserved at its input and its role's mean output so far). A call that would pass a
    cap waits while other calls are in flight (they may cost less than reserved); once none is, the cap is
    reached: `on_reached` is told (it stops the run as SIGTERM does), and the call waits to be cancelled."""

    max_cost_usd: float | None
    max_total_tokens: int | None
    role_tokens: dict[str, int]
    prices: dict[str, Prices | None]
    on_reached: Callable[[], None] = lambda: None
    spent_usd: float = 0.0
    spent_tokens: int = 0
    role_spent: dict[str, int] = field(default_factory=dict)
    reserved_usd: float = 0.0
    reserved_tokens: int = 0
    role_reserved: dict[str, int] = field(default_factory=dict)
    role_out: dict[str, tuple[int, int]] = field(default_factory=dict)  # role -> (calls, tokens out) so far
    reached: str | None = None
    _settled: asyncio.Event = field(default_factory=asyncio.Event)  # set, then cleared, as each call settles

    @classmethod
    def of(cls, config: Config, spent: list[RoleUsage], on_reached: Callable[[], None]) -> SpendCap | None:
        """The run's cap, with the spend of its earlier invocations; None when the config sets no cap."""
        role_tokens = {role: spec.max_total_tokens for role, spec in config.models.all_roles().items()
                       if spec.max_total_tokens is not None}
        if config.run.max_cost_usd is None and config.run.max_total_tokens is None and not role_tokens:
            return None
        prices = prices_of(config)
        cap = cls(config.run.max_cost_usd, config.run.max_total_tokens, role_tokens, prices, on_reached)
        cap.spent_usd = usage_cost(spent, prices) or 0.0
        for row in spent:
            tokens = row["tokens_in"] + row["tokens_out"]
            cap.spent_tokens += tokens
            cap.role_spent[row["role"]] = cap.role_spent.get(row["role"], 0) + tokens
            calls, out = cap.role_out.get(row["role"], (0, 0))
            cap.role_out[row["role"]] = (calls + row["calls"], out + row["tokens_out"])
        return cap

    def expected_out(self, role: str, at_most: int) -> int:
        """A call's output tokens as the role's calls so far averaged them (its max_tokens before any)."""
        calls, out = self.role_out.get(role, (0, 0))
        return min(at_most, -(-out // calls)) if calls else at_most

    def _cost(self, role: str, tokens_in: int, tokens_out: int, cached: int = 0, batched: bool = False) -> float:
        price = self.prices.get(role)
        return price.cost(tokens_in=tokens_in, tokens_out=tokens_out, cached_tokens=cached, batched=batched) \
            if price else 0.0

    def passed_by(self, role: str, tokens_in: int, tokens_out: int, batched: bool) -> str | None:
        """Which cap a call of this size would pass, counting what is spent and what is in flight; None if none."""
        tokens = tokens_in + tokens_out
        if self.max_cost_usd is not None:
            if self.prices.get(role) is None:
                return f"run.max_cost_usd is set but models.{role} has no price_per_mtok_in/out"
            if self.spent_usd + self.reserved_usd + self._cost(role, tokens_in, tokens_out, batched=batched) \
                    > self.max_cost_usd:
                return f"run.max_cost_usd: ${self.spent_usd:.4f} spent of ${self.max_cost_usd:g}"
        if self.max_total_tokens is not None and self.spent_tokens + self.reserved_tokens + tokens \
                > self.max_total_tokens:
            return f"run.max_total_tokens: {self.spent_tokens:,} tokens spent of {self.max_total_tokens:,}"
        role_cap = self.role_tokens.get(role)
        if role_cap is not None and self.role_spent.get(role, 0) + self.role_reserved.get(role, 0) + tokens > role_cap:
            return f"models.{role}.max_total_tokens: {self.role_spent.get(role, 0):,} tokens spent of {role_cap:,}"
        return None

    def exhausted(self) -> str | None:
        """The cap that what is spent already meets, before anything more is sent; None if none."""
        if self.max_cost_usd is not None and self.spent_usd >= self.max_cost_usd:
            return f"run.max_cost_usd: ${self.spent_usd:.4f} spent of ${self.max_cost_usd:g}"
        if self.max_total_tokens is not None and self.spent_tokens >= self.max_total_tokens:
            return f"run.max_total_tokens: {self.spent_tokens:,} tokens spent of {self.max_total_tokens:,}"
        return None

    async def admit(self, role: str, tokens_in: int, tokens_out: int, batched: bool) -> tuple[str, int, int, bool]:
        """Reserve room for a call about to be sent, its output counted at the role's mean so far; a call that
        would pass a cap never returns (the run is stopping, and cancels it)."""
        while self.reached is None:
            expected = self.expected_out(role, tokens_out)
            passes = self.passed_by(role, tokens_in, expected, batched)
            if passes is None:
                break
            if self.reserved_tokens == 0:  # nothing in flight whose real cost could leave room
                self.reached = passes
                log.warning("budget reached (%s): nothing new is sent", passes)
                self.on_reached()
            else:  # the calls in flight may cost less than reserved: wait for them, and look again
                await self._settled.wait()
        if self.reached is not None:
            await asyncio.Event().wait()
        tokens_out = self.expected_out(role, tokens_out)
        self.reserved_usd += self._cost(role, tokens_in, tokens_out, batched=batched)
        self.reserved_tokens += tokens_in + tokens_out
        self.role_reserved[role] = self.role_reserved.get(role, 0) + tokens_in + tokens_out
        return role, tokens_in, tokens_out, batched

    def settle(self, reservation: tuple[str, int, int, bool], *, tokens_in: int = 0, tokens_out: int = 0,
               cached_tokens: int = 0) -> None:
        """A call reserved by `admit` ended: free its reservation, count what it really spent (0 if it failed)."""
        role, est_in, est_out, batched = reservation
        self.reserved_usd -= self._cost(role, est_in, est_out, batched=batched)
        self.reserved_tokens -= est_in + est_out
        self.role_reserved[role] -= est_in + est_out
        self.spent_usd += self._cost(role, tokens_in, tokens_out, cached_tokens, batched)
        self.spent_tokens += tokens_in + tokens_out
        self.role_spent[role] = self.role_spent.get(role, 0) + tokens_in + tokens_out
        if tokens_in or tokens_out:
            calls, out = self.role_out.get(role, (0, 0))
            self.role_out[role] = (calls + 1, out + tokens_out)
        self._settled.set()  # wakes every waiting call to look again
        self._settled = asyncio.Event()
