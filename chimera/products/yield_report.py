"""Per-topic and per-subject yield: what each part of the taxonomy cost and produced."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal

from chimera.models.costs import prices_of, usage_cost
from chimera.store import Store


def yield_by(store: Store, run: str, by: Literal["topic", "subject"]) -> list[dict[str, Any]]:
    """Rows per topic (`by="topic"`) or subject: problems by status and reason, revisions, correct rate,
    tokens, and the estimated cost per accepted sample (None where a role used has no price in the config)."""
    assert by in ("topic", "subject")
    prices = prices_of(store.config_of(run))
    rows: dict[str, dict[str, Any]] = {}
    topics = {t["id"]: t for t in store.topics(run)}

    def row(group: str, subject: str) -> dict[str, Any]:
        label = topics[group]["name"] if by == "topic" and group in topics else group
        return rows.setdefault(group, {
            by: label, "subject": subject, "drafted": 0, "accepted": 0, "rejected": 0, "failed": 0,
            "rejected_by_reason": defaultdict(int), "revisions": 0, "samples": 0, "correct": 0, "labeled": 0,
            "tokens_in": 0, "tokens_out": 0, "cost": 0.0, "priced": True})

    for group, subject, status, reason, revisions in store.problem_outcomes(run, by):
        item = row(group, subject)
        item["drafted"] += 1
        item["revisions"] += revisions or 0
        if status in ("accepted", "rejected", "failed"):
            item[status] += 1
        if status in ("rejected", "failed"):
            item["rejected_by_reason"][reason or "(none)"] += 1
    for group, subject, correct in store.sample_labels(run, by):
        item = row(group, subject)
        item["samples"] += 1
        if correct is not None:
            item["labeled"] += 1
            item["correct"] += correct
    for group, subject, usage in store.usage_by_group(run, by):
        item = row(group, subject)
        item["tokens_in"] += usage["tokens_in"]
        item["tokens_out"] += usage["tokens_out"]
        cost = usage_cost([usage], prices)
        if cost is None:
            item["priced"] = False
        else:
            item["cost"] += cost
    report = []
    for item in rows.values():
        item["rejected_by_reason"] = dict(item["rejected_by_reason"])
        item["correct_rate"] = item["correct"] / item["labeled"] if item["labeled"] else None
        priced = item.pop("priced")
        item["cost"] = round(item["cost"], 6) if priced else None
        item["cost_per_accepted_sample"] = (
            round(item["cost"] / item["samples"], 6) if priced and item["samples"] else None)
        report.append(item)
    return sorted(report, key=lambda r: (r["subject"], r[by]))
