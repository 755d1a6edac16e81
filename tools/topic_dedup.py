"""Topic dedup: normalized exact match first, then near-duplicates by embedding or lexical similarity.

Greedy in the given order (subjects, then subfields, then the expander's order):
a topic is kept unless a topic kept before it is the same after normalization
or at least as similar as the threshold. Every drop is returned as a merge
(dropped, kept, similarity, method) so a user can audit it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from chimera.ids import normalize_topic


@dataclass(frozen=True)
class Merge:
    dropped: int
    kept: int
    similarity: float
    method: str  # "exact", "embedding" or "lexical"


@dataclass(frozen=True)
class DedupResult:
    kept: list[int]
    merges: list[Merge]


def trigrams(name: str) -> set[str]:
    text = f"  {normalize_topic(name)} "
    return {text[i : i + 3] for i in range(len(text) - 2)}


def dedup_topics(names: list[str], vectors: np.ndarray | None = None, *, threshold: float = 0.9,
                 lexical_threshold: float = 0.8, protected: set[int] | frozenset[int] = frozenset()) -> DedupResult:
    """Indexes of `names` to keep, and a merge for every other one. `vectors`: one embedding per name.

    `protected` names (those a user named) are always kept, and later names may merge into them; put
    them first, or an earlier near-duplicate is kept beside them.
    """
    kept: list[int] = []
    merges: list[Merge] = []
    first_of: dict[str, int] = {}
    unit = None
    if vectors is not None:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit = vectors / np.where(norms == 0, 1, norms)
    # A lexical threshold of 1 merges only what normalizes the same: no pairwise trigram work at all.
    lexical = unit is None and lexical_threshold < 1.0
    grams = [trigrams(n) for n in names] if lexical else []
    postings: dict[str, list[int]] = defaultdict(list)  # trigram -> kept topics holding it
    kept_matrix: list[np.ndarray] = []
    for i, name in enumerate(names):
        key = normalize_topic(name)
        if i not in protected:
            merge = _closest(i, key, first_of, kept, kept_matrix, unit, grams, postings, lexical, threshold,
                             lexical_threshold)
            if merge is not None:
                merges.append(merge)
                continue
        kept.append(i)
        first_of.setdefault(key, i)
        if unit is not None:
            kept_matrix.append(unit[i])
        elif lexical:
            for g in grams[i]:
                postings[g].append(i)
    return DedupResult(kept, merges)


def _closest(i: int, key: str, first_of: dict[str, int], kept: list[int], kept_matrix: list[np.ndarray],
             unit: np.ndarray | None, grams: list[set[str]], postings: dict[str, list[int]], lexical: bool,
             threshold: float, lexical_threshold: float) -> Merge | None:
    """The merge of name `i` into the kept name it duplicates, or None when it is new."""
    if key in first_of:
        return Merge(i, first_of[key], 1.0, "exact")
    if unit is not None and kept_matrix:
        scores = np.asarray(kept_matrix) @ unit[i]
        j = int(np.argmax(scores))
        return Merge(i, kept[j], float(scores[j]), "embedding") if scores[j] >= threshold else None
    if lexical:
        shared = Counter(k for g in grams[i] for k in postings[g])
        if shared:
            k, inter = max(shared.items(), key=lambda kv: (kv[1] / (len(grams[i]) + len(grams[kv[0]]) - kv[1]), -kv[0]))
            similarity = inter / (len(grams[i]) + len(grams[k]) - inter)
            return Merge(i, k, similarity, "lexical") if similarity >= lexical_threshold else None
    return None
