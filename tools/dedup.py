"""Near-duplicate problems: MinHash LSH over word shingles (datasketch's MinHash), confirmed by Jaccard.

LSH finds candidates in sub-linear time; the Jaccard of the two shingle sets then decides, so a reported
similarity is a measured one, not an estimate.

The index lives for a whole run and holds every problem kept, so what it keeps per problem is compact (about
1 KB where Python sets of shingle strings and datasketch's LSH tables held about 7 KB): each problem's shingles
as one `bytes` of sorted 64-bit hashes (Jaccard over those hashes is the Jaccard of the shingles but for a
collision of two 64-bit hashes among a problem's few hundred), and each LSH band as one integer in a dict per
band. A removed problem's row is marked gone, and its band entries are dropped where a lookup meets them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

_WORD = re.compile(r"[a-z0-9]+")


def shingles(text: str, size: int) -> set[str]:
    words = _WORD.findall(text.lower())
    if len(words) < size:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


def shingle_hashes(grams: set[str]) -> bytes:
    """The shingles as sorted, distinct 64-bit hashes packed in one bytes object (8 bytes a shingle)."""
    digests = b"".join(hashlib.blake2b(g.encode(), digest_size=8).digest() for g in grams)
    return np.unique(np.frombuffer(digests, dtype="<u8")).tobytes()


def hashed_jaccard(a: bytes, b: bytes) -> float:
    """Jaccard of two sets packed by `shingle_hashes`."""
    left, right = np.frombuffer(a, dtype="<u8"), np.frombuffer(b, dtype="<u8")
    common = np.intersect1d(left, right, assume_unique=True).size
    union = left.size + right.size - common
    return common / union if union else 1.0


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
        # datasketch's choice of bands for the threshold (the fewest false positives and negatives); the
        # tables themselves are this class's own, compact ones
        self._bands = MinHashLSH(threshold=threshold, num_perm=num_perm).hashranges
        self._tables: list[dict[int, int | list[int]]] = [{} for _ in self._bands]  # band hash -> row(s)
        self._rows: dict[str, int] = {}  # key -> row, for the problems kept now
        self._keys: list[str | None] = []  # row -> key (None: removed)
        self._hashes: list[bytes | None] = []  # row -> shingle_hashes (None: removed)

    def __len__(self) -> int:
        return len(self._rows)

    def _band_hashes(self, grams: set[str]) -> list[int]:
        signature = self._minhash_type(num_perm=self.num_perm, permutations=self._permutations, scheme=self._scheme)
        signature.update_batch([g.encode() for g in grams])
        values = signature.hashvalues
        return [hash(values[start:end].tobytes()) for start, end in self._bands]

    def _candidates(self, bands: list[int]) -> set[int]:
        """Rows of kept problems that share a band with these, dropping the removed rows met on the way."""
        rows: set[int] = set()
        for band, table in zip(bands, self._tables):
            found = table.get(band)
            if found is None:
                continue
            found = [found] if isinstance(found, int) else found
            alive = [row for row in found if self._keys[row] is not None]
            if len(alive) != len(found):
                if alive:
                    table[band] = alive[0] if len(alive) == 1 else alive
                else:
                    del table[band]
            rows.update(alive)
        return rows

    def _similar(self, hashes: bytes, bands: list[int]) -> list[Match]:
        matches = []
        for row in self._candidates(bands):
            key, kept = self._keys[row], self._hashes[row]
            assert key is not None and kept is not None  # _candidates gives live rows only
            similarity = hashed_jaccard(hashes, kept)
            if similarity >= self.threshold:
                matches.append(Match(key, similarity))
        return matches

    def find(self, text: str) -> Match | None:
        grams = shingles(text, self.shingle_words)
        if not grams or not self._rows:
            return None
        return max(self._similar(shingle_hashes(grams), self._band_hashes(grams)),
                   key=lambda m: (m.similarity, m.key), default=None)

    def add(self, key: str, text: str) -> None:
        grams = shingles(text, self.shingle_words)
        if grams and key not in self._rows:
            self._insert(key, shingle_hashes(grams), self._band_hashes(grams))

    def _insert(self, key: str, hashes: bytes, bands: list[int]) -> None:
        row = len(self._keys)
        self._keys.append(key)
        self._hashes.append(hashes)
        self._rows[key] = row
        for band, table in zip(bands, self._tables):
            found = table.get(band)
            if found is None:
                table[band] = row
            elif isinstance(found, int):
                table[band] = [found, row]
            else:
                found.append(row)

    def remove(self, key: str) -> None:
        """Forget a kept problem (it left the dataset); nothing if it was never kept."""
        row = self._rows.pop(key, None)
        if row is not None:
            self._keys[row] = self._hashes[row] = None

    def place(self, key: str, text: str) -> Placement:
        """Keep `key` unless a kept problem that sorts before it (by key) nearly duplicates it; a kept
        problem that sorts after it and nearly duplicates it is displaced (removed) instead.

        So of two near-duplicates the one with the smaller key is kept whichever arrives first: the
        outcome does not depend on the order concurrent topics finish in, or on a restart.
        """
        grams = shingles(text, self.shingle_words)
        if not grams or key in self._rows:
            return Placement(None, [])
        hashes, bands = shingle_hashes(grams), self._band_hashes(grams)
        similar = [m for m in self._similar(hashes, bands) if m.key != key] if self._rows else []
        earlier = [m for m in similar if m.key < key]
        if earlier:
            return Placement(max(earlier, key=lambda m: (m.similarity, m.key)), [])
        for match in similar:
            self.remove(match.key)
        self._insert(key, hashes, bands)
        return Placement(None, sorted(similar, key=lambda m: m.key))

    def check_and_add(self, key: str, text: str) -> Match | None:
        """The earlier problem this one nearly duplicates (it is then not added), or None after adding it.
        One signature serves both steps."""
        grams = shingles(text, self.shingle_words)
        if not grams or key in self._rows:
            return None
        hashes, bands = shingle_hashes(grams), self._band_hashes(grams)
        match = max(self._similar(hashes, bands), key=lambda m: (m.similarity, m.key), default=None) \
            if self._rows else None
        if match is not None and match.key != key:
            return match
        self._insert(key, hashes, bands)
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
