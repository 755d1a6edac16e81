"""`chimera eval quality`: an evaluator model rates problems; synthetic and human-written side by side."""

from __future__ import annotations

import asyncio
import random
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from chimera.agents import evaluator
from chimera.errors import CallFailed, ReplyError
from chimera.models.llm import RoleClient
from chimera.store import Store

CRITERIA = ("clarity", "well_posedness", "self_containedness", "reasoning_depth")


async def rate_all(store: Store, client: RoleClient, items: list[tuple[str, str, str]], *, retries: int) -> dict[str, int]:
    """Rate each (source, item id, text) not yet rated; ratings are stored one by one, so a re-run resumes."""
    rated = {r["id"] for r in store.quality_ratings()}
    tally = {"rated": 0, "failed": 0, "reused": 0}

    async def one(source: str, item: str, text: str) -> None:
        key = f"{source}:{item}"
        if key in rated:
            tally["reused"] += 1
            return
        try:
            rating = await evaluator.rate(client, problem=text, retries=retries, context={"run": f"quality:{source}"})
        except (CallFailed, ReplyError):
            tally["failed"] += 1
            return
        store.save_eval_row("quality_ratings", {"id": key, "source": source, "item": item, "model": client.model,
                                                **rating.model_dump()})
        tally["rated"] += 1

    await asyncio.gather(*(one(*item) for item in items))
    return tally


def overall(row: Mapping[str, Any]) -> float:
    return statistics.fmean(row[c] for c in CRITERIA)


def bootstrap_difference(a: list[float], b: list[float], *, rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of mean(a) - mean(b), resampling each set with replacement."""
    rng = random.Random(seed)
    diffs = sorted(statistics.fmean(rng.choices(a, k=len(a))) - statistics.fmean(rng.choices(b, k=len(b)))
                   for _ in range(rounds))
    return diffs[int(0.025 * rounds)], diffs[int(0.975 * rounds) - 1]


def summarize(store: Store, sources: list[str]) -> dict[str, Any]:
    report: dict[str, Any] = {"criteria": list(CRITERIA), "by_source": {}}
    rows: dict[str, Sequence[Mapping[str, Any]]] = {s: store.quality_ratings(s) for s in sources}
    for source, items in rows.items():
        report["by_source"][source] = {
            "rated": len(items),
            **{c: round(statistics.fmean(r[c] for r in items), 3) if items else None for c in CRITERIA},
            "overall": round(statistics.fmean(overall(r) for r in items), 3) if items else None}
    if len(sources) == 2 and all(rows.values()):
        a, b = ([overall(r) for r in rows[s]] for s in sources)
        low, high = bootstrap_difference(a, b)
        report["difference"] = {"of": f"{sources[0]} - {sources[1]}",
                                "mean": round(statistics.fmean(a) - statistics.fmean(b), 3),
                                "ci95": [round(low, 3), round(high, 3)]}
    return report
