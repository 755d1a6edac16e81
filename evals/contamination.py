"""N-gram contamination: for each problem, its highest word n-gram Jaccard similarity to any benchmark item.

Exact, not estimated: an inverted index from each benchmark n-gram to the items
holding it yields, for a problem, the intersection size with every item it
shares an n-gram with; an item sharing none has similarity 0. Unrelated text
shares almost no 8-grams, so the work is near-linear in the text.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chimera.errors import ChimeraError
from chimera.jsonl import json_lines

_WORD = re.compile(r"[a-z0-9]+")


def ngrams(text: str, n: int) -> set[int]:
    """Hashed word n-grams of lowercased alphanumeric words; a text shorter than n is one gram of all its words."""
    words = _WORD.findall(text.lower())
    if not words:
        return set()
    if len(words) < n:
        return {hash(tuple(words))}
    return {hash(tuple(words[i:i + n])) for i in range(len(words) - n + 1)}


@dataclass
class Match:
    similarity: float
    benchmark_index: int


class BenchmarkIndex:
    def __init__(self, texts: list[str], n: int):
        self.n = n
        self.sizes: list[int] = []
        self.postings: dict[int, list[int]] = defaultdict(list)
        for index, text in enumerate(texts):
            grams = ngrams(text, n)
            self.sizes.append(len(grams))
            for gram in grams:
                self.postings[gram].append(index)

    def best(self, text: str) -> Match:
        grams = ngrams(text, self.n)
        shared: dict[int, int] = defaultdict(int)
        for gram in grams:
            for index in self.postings.get(gram, ()):
                shared[index] += 1
        best = Match(0.0, -1)
        for index, inter in shared.items():
            similarity = inter / (len(grams) + self.sizes[index] - inter)
            if similarity > best.similarity:
                best = Match(similarity, index)
        return best


def read_benchmark(path: Path, field: str) -> list[str]:
    """The `field` of every JSONL line; a line without it or not JSON is an error naming the line."""
    texts = []
    for number, item in json_lines(path):
        if not isinstance(item, dict) or not isinstance(item.get(field), str):
            raise ChimeraError(f"{path}:{number}: no text field {field!r} (choose one with --field)")
        texts.append(item[field])
    if not texts:
        raise ChimeraError(f"{path}: no items")
    return texts


def contamination(problems: list[tuple[str, str]], benchmark: list[str], ns: list[int], threshold: float,
                  top: int = 10) -> dict[str, Any]:
    """Per n: the mean of per-problem maxima, the share at or above `threshold`, and the top pairs."""
    report: dict[str, Any] = {"problems": len(problems), "benchmark_items": len(benchmark), "threshold": threshold,
                              "by_n": {}}
    for n in ns:
        index = BenchmarkIndex(benchmark, n)
        scored = [(index.best(text), pid, text) for pid, text in problems]
        maxima = [match.similarity for match, _, _ in scored]
        worst = sorted(scored, key=lambda s: -s[0].similarity)[:top]
        report["by_n"][str(n)] = {
            "mean_max_similarity": round(sum(maxima) / len(maxima), 6) if maxima else None,
            "share_above_threshold": round(sum(m >= threshold for m in maxima) / len(maxima), 6) if maxima else None,
            "above_threshold": sum(m >= threshold for m in maxima),
            "top_pairs": [{"problem_id": pid, "similarity": round(match.similarity, 4), "problem": text[:300],
                           "benchmark_index": match.benchmark_index,
                           "benchmark_item": benchmark[match.benchmark_index][:300]}
                          for match, pid, text in worst if match.similarity > 0],
        }
    return report
