"""Near-duplicate problems: MinHash LSH over word shingles (datasketch), confirmed by exact Jaccard.

LSH finds candidates in sub-linear time; the exact Jaccard of the two shingle
sets then decides, so a reported similarity is a measured one, not an estimate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"[a-z0-9]+")


def shingles(text: str, size: int) -> set[str]:
    words = _WORD.findall(text.lower())
    if len(words) < size:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


@dataclass(frozen=True)
class Match:
    key: str
    similarity: float


@dataclass(frozen=True)
class Placement:
    duplicate_of: Match | None  # the kept problem this one duplicates (then it is not kept)
    displaced: list[Match]  # kept problems that duplicate this one and sort after it: no longer kept


class ProblemIndex:
    """Problems kept so far in a run; `find` names the most similar one above the threshold."""

    def __init__(self, threshold: float = 0.8, shingle_words: int = 3, num_perm: int = 128):
        self.threshold = threshold
        self.shingle_words = shingle_words
        self.num_perm = num_perm
        from datasketch import MinHash, MinHashLSH  # imported here: it loads scipy, a third of a second at start-up

        self._minhash_type = MinHash
        template = MinHash(num_perm=num_perm)  # permutations drawn once, not per signature
        self._permutations, self._scheme = template.permutations, template.scheme
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._shingles: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._shingles)

    def _minhash(self, grams: set[str]):
        signature = self._minhash_type(num_perm=self.num_perm, permutations=self._permutations, scheme=self._scheme)
        signature.update_batch([g.encode() for g in grams])
        return signature

    def find(self, text: str) -> Match | None:
        grams = shingles(text, self.shingle_words)
        return self._best(grams, self._minhash(grams)) if grams and self._shingles else None

    def _best(self, grams: set[str], signature) -> Match | None:
        scored = [Match(key, jaccard(grams, self._shingles[key])) for key in self._lsh.query(signature)]
        scored = [m for m in scored if m.similarity >= self.threshold]
        return max(scored, key=lambda m: (m.similarity, m.key), default=None)

    def add(self, key: str, text: str) -> None:
        grams = shingles(text, self.shingle_words)
        if grams and key not in self._shingles:
            self._insert(key, grams, self._minhash(grams))

    def _insert(self, key: str, grams: set[str], signature) -> None:
        self._lsh.insert(key, signature)
        self._shingles[key] = grams

    def remove(self, key: str) -> None:
        """Forget a kept problem (it left the dataset); nothing if it was never kept."""
        if self._shingles.pop(key, None) is not None:
            self._lsh.remove(key)

    def place(self, key: str, text: str) -> Placement:
        """Keep `key` unless a kept problem that sorts before it (by key) nearly duplicates it; a kept
        problem that sorts after it and nearly duplicates it is displaced (removed) instead.

        So of two near-duplicates the one with the smaller key is kept whichever arrives first: the
        outcome does not depend on the order concurrent topics finish in, or on a restart.
        """
        grams = shingles(text, self.shingle_words)
        if not grams or key in self._shingles:
            return Placement(None, [])
        signature = self._minhash(grams)
        similar = [Match(k, jaccard(grams, self._shingles[k])) for k in self._lsh.query(signature)] \
            if self._shingles else []
        similar = [m for m in similar if m.similarity >= self.threshold and m.key != key]
        earlier = [m for m in similar if m.key < key]
        if earlier:
            return Placement(max(earlier, key=lambda m: (m.similarity, m.key)), [])
        for match in similar:
            self.remove(match.key)
        self._insert(key, grams, signature)
        return Placement(None, sorted(similar, key=lambda m: m.key))

    def check_and_add(self, key: str, text: str) -> Match | None:
        """The earlier problem this one nearly duplicates (it is then not added), or None after adding it.
        One signature serves both steps."""
        grams = shingles(text, self.shingle_words)
        if not grams or key in self._shingles:
            return None
        signature = self._minhash(grams)
        match = self._best(grams, signature) if self._shingles else None
        if match is not None and match.key != key:
            return match
        self._insert(key, grams, signature)
        return None


def settle(candidates: list[tuple[str, str]], *, threshold: float, shingle_words: int, num_perm: int) -> dict[str, Match]:
    """The near-duplicates among (key, text) candidates, decided in key order: a candidate is kept unless it
    nearly duplicates a kept one with a smaller key. Returns dropped key -> the kept match; the rest are kept.

    This is the answer `ProblemIndex.place` converges to, whatever the arrival order, except along chains
    (a ~ b ~ c with a and c apart), where an early arrival can displace what a later one would have kept.
    """
    index = ProblemIndex(threshold, shingle_words, num_perm)
    dropped: dict[str, Match] = {}
    for key, text in sorted(candidates):
        match = index.check_and_add(key, text)
        if match is not None:
            dropped[key] = match
    return dropped
