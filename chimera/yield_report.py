"""Per-topic and per-subject yield: what each part of the taxonomy cost and produced."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal

from chimera.store import Store


def prices_by_role(config: dict[str, Any]) -> dict[str, tuple[float | None, float | None]]:
    """Role -> (price in, price out) per million tokens, from the config stored with the run."""
    models = config.get("models") or {}
    roles: dict[str, Any] = {r: models.get(r) for r in ("expander", "drafter", "solver", "embedder")}
    judges = models.get("labeler")
    roles.update(zip(("labeler", "labeler2"), judges if isinstance(judges, list) else [judges]))
    roles.update({f"critic{i}": spec for i, spec in enumerate(models.get("critics") or [])})
    return {role: ((spec or {}).get("price_per_mtok_in"), (spec or {}).get("price_per_mtok_out"))
            for role, spec in roles.items()}


def yield_by(store: Store, run: str, by: Literal["topic", "subject"]) -> list[dict[str, Any]]:
    """Rows per topic (`by="topic"`) or subject: problems by status and reason, revisions, correct rate,
    tokens, and the estimated cost per accepted sample (None where a role used has no price in the config)."""
    assert by in ("topic", "subject")
    prices = prices_by_role(store.run_config(run))
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
    for group, subject, role, tokens_in, tokens_out in store.tokens_by_group(run, by):
        item = row(group, subject)
        item["tokens_in"] += tokens_in
        item["tokens_out"] += tokens_out
        price_in, price_out = prices.get(role, (None, None))
        if price_in is None or price_out is None:
            item["priced"] = False
        else:
            item["cost"] += tokens_in * price_in / 1e6 + tokens_out * price_out / 1e6
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
