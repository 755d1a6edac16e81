"""What a run will cost before it runs: a projection, per role and in total, from a pilot's calls (a few
topics of the run itself, which the run then reuses) or from an earlier run's database.

The unit of projection is the problem slot: each subject's calls per slot in the sample, times the slots the
run has in that subject. Calls outside any topic (Stage 1, embeddings) are counted as they are (a pilot ran
Stage 1 whole) or scaled by the topic count (an earlier run of another size). Costs follow the config: its
prices (or the price table's), its batch mode and batch discount, cached input at the cached price.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from chimera.config import Config
from chimera.models.costs import Prices
from chimera.store.rows import RoleUsage, TopicRow

MIN_SPREAD = 0.05  # the narrowest range shown: call counts and lengths vary from topic to topic
ONE_TOPIC_SPREAD = 0.25  # the range when a single topic is all there is to go by


def pilot_topics(topics: list[TopicRow], share: float) -> list[TopicRow]:
    """A pilot's topics: in every subject, `share` of its topics (at least one), picked by a hash of their ids,
    so the pick is spread across the taxonomy and the same on every invocation."""
    by_subject: dict[str, list[TopicRow]] = defaultdict(list)
    for topic in topics:
        by_subject[topic["subject"]].append(topic)
    picked: list[TopicRow] = []
    for members in by_subject.values():
        ranked = sorted(members, key=lambda t: hashlib.sha256(t["id"].encode()).hexdigest())
        picked += ranked[:max(1, round(share * len(members)))]
    return picked


def config_shape(config: Config) -> dict[str, tuple[int, int]]:
    """Subject -> (topics, problem slots) the config asks for, before Stage 1 has made the topics."""
    topics = {s.name: s.topics if isinstance(s.topics, int) else len(s.topics) for s in config.subjects}
    if config.problems_total is None:
        return {name: (count, count * config.problems_per_topic) for name, count in topics.items()}
    weights = {s.name: s.weight * topics[s.name] for s in config.subjects}
    whole = sum(weights.values()) or 1.0
    return {name: (topics[name], round(config.problems_total * weights[name] / whole)) for name in topics}


@dataclass
class RoleFigures:
    calls: float = 0.0
    tokens_in: float = 0.0
    tokens_out: float = 0.0
    cached_tokens: float = 0.0
    cost_usd: float | None = 0.0
    call_seconds: float = 0.0  # calls x their mean latency: what the role's endpoint must serve

    def add(self, usage: RoleUsage, scale: float) -> None:
        self.calls += usage["calls"] * scale
        self.tokens_in += usage["tokens_in"] * scale
        self.tokens_out += usage["tokens_out"] * scale
        self.cached_tokens += usage["cached_tokens"] * scale


@dataclass
class Plan:
    basis: str
    topics: int
    slots: int
    sample_topics: int
    roles: dict[str, RoleFigures]
    spread: float  # the range is the projection times 1 -/+ this
    price_sources: dict[str, str]
    hours: float | None  # at the configured budgets, online roles only
    batched_roles: list[str] = field(default_factory=list)

    @property
    def cost_usd(self) -> float | None:
        costs = [figures.cost_usd for figures in self.roles.values()]
        return None if any(c is None for c in costs) else sum(c for c in costs if c is not None)

    @property
    def tokens(self) -> float:
        return sum(f.tokens_in + f.tokens_out for f in self.roles.values())

    def range_of(self, value: float) -> tuple[float, float]:
        return value * (1 - self.spread), value * (1 + self.spread)

    def as_json(self) -> dict[str, object]:
        cost = self.cost_usd
        return {
            "basis": self.basis, "topics": self.topics, "slots": self.slots, "sample_topics": self.sample_topics,
            "spread": round(self.spread, 4), "hours": None if self.hours is None else round(self.hours, 3),
            "cost_usd": None if cost is None else round(cost, 4),
            "cost_usd_range": None if cost is None else [round(v, 4) for v in self.range_of(cost)],
            "tokens": round(self.tokens), "tokens_range": [round(v) for v in self.range_of(self.tokens)],
            "price_sources": self.price_sources, "batched_roles": self.batched_roles,
            "roles": {role: {"calls": round(f.calls), "tokens_in": round(f.tokens_in), "tokens_out": round(f.tokens_out),
                             "cached_tokens": round(f.cached_tokens),
                             "cost_usd": None if f.cost_usd is None else round(f.cost_usd, 4)}
                      for role, f in sorted(self.roles.items())},
        }


def project(*, basis: str, config: Config, topic_usage: list[tuple[str, str, RoleUsage]],
            sample_slots: Mapping[str, tuple[str, int]], outside: list[RoleUsage], outside_scale: float,
            shape: Mapping[str, tuple[int, int]], prices: Mapping[str, tuple[Prices | None, str]],
            latency: Mapping[str, float]) -> Plan:
    """The run's projected calls, tokens, cost and time.

    `topic_usage`: (topic id, subject, a role's usage) for the sampled topics; `sample_slots`: topic id ->
    (subject, its slots); `outside`: calls made outside any topic, counted times `outside_scale`; `shape`:
    subject -> (topics, slots) of the run projected; `prices`: role -> (prices or None, where they come from);
    `latency`: role -> mean seconds of a call.
    """
    sampled_slots: dict[str, int] = defaultdict(int)
    for subject, slots in sample_slots.values():
        sampled_slots[subject] += slots
    by_subject: dict[str, dict[str, list[RoleUsage]]] = defaultdict(lambda: defaultdict(list))
    per_topic: dict[str, float] = defaultdict(float)  # topic -> tokens (or dollars) per slot, for the range
    for topic_id, subject, usage in topic_usage:
        by_subject[subject][usage["role"]].append(usage)
        price = prices.get(usage["role"], (None, ""))[0]
        amount = price.cost(tokens_in=usage["tokens_in"], tokens_out=usage["tokens_out"],
                            cached_tokens=usage["cached_tokens"]) if price else usage["tokens_in"] + usage["tokens_out"]
        per_topic[topic_id] += amount / max(1, sample_slots.get(topic_id, (subject, 1))[1])
    pooled: dict[str, list[RoleUsage]] = defaultdict(list)
    for roles in by_subject.values():
        for role, rows in roles.items():
            pooled[role] += rows
    all_sampled = sum(sampled_slots.values())
    figures: dict[str, RoleFigures] = defaultdict(RoleFigures)
    for subject, (_, slots) in shape.items():
        sample, sample_size = (by_subject[subject], sampled_slots[subject]) if sampled_slots.get(subject) \
            else (pooled, all_sampled)  # a subject the sample missed goes by all the others
        for role, rows in sample.items():
            for usage in rows:
                figures[role].add(usage, slots / max(1, sample_size))
    for usage in outside:
        figures[usage["role"]].add(usage, outside_scale)
    roles_spec = config.models.run_roles()
    figures = defaultdict(RoleFigures, {role: f for role, f in figures.items() if role in roles_spec})  # the config's
    batched = sorted(role for role, spec in roles_spec.items() if spec is not None and spec.batch)
    endpoint_seconds: dict[str, float] = defaultdict(float)
    budgets: dict[str, int] = {}
    for role, item in figures.items():
        price = prices.get(role, (None, ""))[0]
        item.cost_usd = price.cost(tokens_in=round(item.tokens_in), tokens_out=round(item.tokens_out),
                                   cached_tokens=round(item.cached_tokens), batched=role in batched) if price else None
        item.call_seconds = item.calls * latency.get(role, 0.0)
        spec = roles_spec.get(role)
        if spec is not None and role not in batched:
            url = spec.base_url if isinstance(spec.base_url, str) else role
            endpoint_seconds[url] += item.call_seconds
            budgets[url] = spec.max_in_flight or config.run.concurrency
    values = list(per_topic.values())
    if len(values) < 2 or not statistics.fmean(values):
        spread = ONE_TOPIC_SPREAD
    else:
        spread = max(MIN_SPREAD, 2 * statistics.stdev(values) / statistics.fmean(values) / math.sqrt(len(values)))
    hours = max((seconds / budgets[url] for url, seconds in endpoint_seconds.items()), default=0.0) / 3600
    return Plan(basis=basis, topics=sum(t for t, _ in shape.values()), slots=sum(s for _, s in shape.values()),
                sample_topics=len(sample_slots), roles=dict(figures), spread=spread,
                price_sources={role: source for role, (_, source) in prices.items() if role in figures},
                hours=hours if latency else None, batched_roles=batched)
