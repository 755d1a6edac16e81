"""PNG plots for `chimera stats` and `chimera eval bench` (matplotlib, no display needed)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _whole_numbers(axis) -> None:
    """Counts get whole-number ticks, even when they are small."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def stats_plots(stats: dict[str, Any], out: Path) -> list[Path]:
    plt = _pyplot()
    paths = []
    subjects = list(stats["accepted_by_subject"])

    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.barh(subjects, [stats["accepted_by_subject"][s] for s in subjects], color="#3b7dd8")
    ax.set_xlabel("accepted problems")
    _whole_numbers(ax.xaxis)
    ax.set_title("Problems per subject")
    paths.append(_save(fig, out / "problems_per_subject.png"))

    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.hist(stats["solution_word_counts"] or [0], bins=30, color="#5a9e6f")
    ax.ticklabel_format(axis="x", style="plain", useOffset=False)
    ax.set_xlabel("solution length (words: reasoning + final solution)")
    ax.set_ylabel("samples")
    _whole_numbers(ax.yaxis)
    ax.set_title("Solution length")
    paths.append(_save(fig, out / "solution_length.png"))

    rates = stats["acceptance_by_subject"]
    names = [s for s in rates if rates[s] is not None]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.barh(names, [rates[s] for s in names], color="#d8833b")
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of drafted problems accepted")
    ax.set_title("Acceptance by subject")
    paths.append(_save(fig, out / "acceptance_by_subject.png"))

    fig, ax = plt.subplots(figsize=(7, 3.6))
    counts = Counter(round(rate, 3) for rate in stats["pass_rates"])
    if len(counts) <= 12:  # k samples give at most k + 1 distinct rates: one bar each
        ax.bar(list(counts), list(counts.values()), width=0.06, color="#8a5ad8")
        ax.set_xticks(sorted(counts))
    else:
        ax.hist(stats["pass_rates"], bins=[i / 10 for i in range(11)], color="#8a5ad8")
    ax.set_xlabel("pass rate over the solver's samples")
    ax.set_ylabel("problems")
    _whole_numbers(ax.yaxis)
    ax.set_title("Pass rate distribution")
    paths.append(_save(fig, out / "pass_rate.png"))
    return paths


def scaling_plot(curve: dict[int, float], out: Path, title: str) -> Path:
    plt = _pyplot()
    ks = sorted(curve)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(ks, [curve[k] for k in ks], marker="o")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_ylim(0, 1)
    ax.set_xlabel("k (samples)")
    ax.set_ylabel("pass@k")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _save(fig, out)
