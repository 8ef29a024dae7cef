"""Exact and near-duplicate clusters over record texts (near: MinHash LSH from datasketch).

A cluster is a sorted list of record positions; its first member is the representative a clean
keeps (the earliest record, so cleaning never reorders what the user wrote). Near duplicates are
candidate pairs from LSH whose estimated Jaccard similarity of 3-word shingles reaches the
threshold, joined transitively (union-find).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from tunelab.errors import ConfigError
from tunelab.quality.textkey import normalize, shingles

__all__ = ["NearIndex", "check_threshold", "exact_clusters", "near_clusters"]

NUM_PERM = 128  # MinHash permutations: ~1 KB per record, estimate error ~ 1/sqrt(128) ~ 0.09
_SEED = 1  # fixed, so a check and a clean of the same data find the same clusters


MIN_THRESHOLD, MAX_THRESHOLD = 0.3, 0.95  # LSH with NUM_PERM bands cannot resolve similarities above ~0.95


def check_threshold(threshold: float) -> None:
    """Refuse a near-duplicate threshold the LSH index cannot work with, naming the range that works."""
    if not MIN_THRESHOLD <= threshold <= MAX_THRESHOLD:
        raise ConfigError(
            f"near-duplicate threshold {threshold:g} is outside {MIN_THRESHOLD}-{MAX_THRESHOLD}",
            "use e.g. --near-threshold 0.8 (higher finds only closer copies; exact copies are found anyway)",
        )


def exact_clusters(texts: Sequence[str]) -> list[list[int]]:
    """Groups (size >= 2) of positions whose normalised text is identical, in order of first member."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(texts):
        groups[normalize(text)].append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def _minhashes(texts: Sequence[str]) -> list[Any]:
    from datasketch import LeanMinHash, MinHash

    sets = [[s.encode("utf-8") for s in sorted(shingles(t))] for t in texts]
    return [LeanMinHash(m) for m in MinHash.bulk(sets, num_perm=NUM_PERM, seed=_SEED)]


class NearIndex:
    """An LSH index over ``texts``: which indexed texts are near a given text (Jaccard >= threshold)."""

    def __init__(self, texts: Sequence[str], threshold: float) -> None:
        from datasketch import MinHashLSH

        check_threshold(threshold)
        self.threshold = threshold
        self.hashes = _minhashes(texts)
        self._empty = [not shingles(t) for t in texts]
        self._lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        for i, (h, empty) in enumerate(zip(self.hashes, self._empty)):
            if not empty:  # texts with no words are the empty-record detector's business
                self._lsh.insert(i, h)

    def near(self, text_hash: Any) -> list[tuple[int, float]]:
        """(position, estimated similarity) of indexed texts at or above the threshold, closest first."""
        found = []
        for j in self._lsh.query(text_hash):
            similarity = float(text_hash.jaccard(self.hashes[j]))
            if similarity >= self.threshold:
                found.append((j, similarity))
        return sorted(found, key=lambda pair: (-pair[1], pair[0]))

    def query(self, texts: Sequence[str]) -> list[list[tuple[int, float]]]:
        """For each of ``texts`` (not indexed), the indexed texts near it."""
        return [[] if not shingles(t) else self.near(h) for t, h in zip(texts, _minhashes(texts))]


def near_clusters(texts: Sequence[str], threshold: float) -> list[list[int]]:
    """Groups (size >= 2) of positions that are near duplicates of each other, transitively."""
    index = NearIndex(texts, threshold)
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (h, empty) in enumerate(zip(index.hashes, index._empty)):
        if empty:
            continue
        for j, _ in index.near(h):
            a, b = root(i), root(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(texts)):
        groups[root(i)].append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])
