"""How often structured replies are cut at max_tokens, and what that costs, with and without the fixes.

    python -m chimera.evals.structured_bench [--topics 12] [--verbose-rate 0.3] [--max-tokens 384]

Runs the real pipeline on the simulator four ways: no schema limits and no larger limit on a
retry (what chimera did before), schema limits alone, larger limits alone, and both. Two reply
shapes: the simulator as it is (brief), and a model that ignores brevity on a share of its
structured replies (long reasons, more names than asked), held to maxItems/maxLength only when
the request's schema carries them, as guided decoding holds a real server's reply.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from chimera.config import parse_config
from chimera.engine.runner import run_pipeline
from chimera.store import Store

STRUCTURED_ROLES = ("expander", "drafter", "critic0", "critic1", "labeler")
VARIANTS = {  # name -> (schema_limits, grow the limit on a cut reply)
    "before (no limits, same limit again)": ("none", False),
    "schema limits only": ("all", False),
    "larger limit on a cut only": ("none", True),
    "both (default)": ("all", True),
}


def config_for(db: Path, *, topics: int, verbose_rate: float, max_tokens: int, limits: str, grow: bool) -> Any:
    structured = {"provider": "sim", "max_tokens": max_tokens, "schema_limits": limits,
                  **({} if grow else {"max_tokens_cap": max_tokens})}
    return parse_config({
        "run": {"name": "structured", "db": str(db), "seed": 3, "concurrency": 32},
        "subjects": [{"name": name, "topics": topics} for name in ("Mathematics", "Physics", "Chemistry")],
        "problems_per_topic": 2, "max_revisions": 1,
        "sim": {"verbose_rate": verbose_rate},
        "models": {"default": structured, "solver": {"provider": "sim"},
                   "critics": [structured, structured]},
    })


def measure(db: Path) -> dict[str, Any]:
    store = Store(db, read_only=True)
    figures = store.structured_call_figures(STRUCTURED_ROLES)
    total, cut, tokens = figures["calls"], figures["cut"], figures["tokens_out"]
    by_status = dict(store.counts()["by_status"])
    topics = store.live_topic_count()
    store.close()
    return {"structured_calls": total, "cut": cut or 0, "cut_share": round((cut or 0) / total, 4) if total else 0.0,
            "topics": topics, "problems_failed": by_status.get("failed", 0),
            "problems_accepted": by_status.get("accepted", 0), "structured_tokens_out": tokens or 0}


def run_all(*, topics: int, verbose_rate: float, max_tokens: int) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for shape, rate in (("brief (simulator)", 0.0), (f"verbose {verbose_rate:.0%} (real-model shape)", verbose_rate)):
            for name, (limits, grow) in VARIANTS.items():
                db = Path(folder) / f"{len(results)}.db"
                config = config_for(db, topics=topics, verbose_rate=rate, max_tokens=max_tokens, limits=limits,
                                    grow=grow)
                asyncio.run(run_pipeline(config))
                results[f"{shape} | {name}"] = measure(db)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--topics", type=int, default=12, help="topics per subject (three subjects)")
    parser.add_argument("--verbose-rate", type=float, default=0.3)
    parser.add_argument("--max-tokens", type=int, default=384, help="max_tokens of every structured role")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = run_all(topics=args.topics, verbose_rate=args.verbose_rate, max_tokens=args.max_tokens)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'shape | variant':<70} {'cut':>10} {'share':>7} {'topics':>7} {'accepted':>9} {'failed':>7}")
    for name, r in results.items():
        print(f"{name:<70} {r['cut']:>4}/{r['structured_calls']:<5} {r['cut_share']:>7.1%} {r['topics']:>7} "
              f"{r['problems_accepted']:>9} {r['problems_failed']:>7}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
