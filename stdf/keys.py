"""Dictionary encoding in numpy: distinct keys in order of first appearance, without a sort
of every row, and exact keys for strings.

A file's 1M PTRs hold a few hundred distinct tests: the distinct keys are found in the
first rows, then every row is looked up in a collision-free table (``key % size``) and
checked, which is a few passes over the rows instead of an O(n log n) sort.
"""

from __future__ import annotations

import numpy as np

#: Rows whose distinct keys seed the table; the rest are looked up (misses are added).
SEED_ROWS = 1 << 16
#: Largest lookup table (int32 entries) before falling back to a binary search.
MAX_TABLE = 1 << 22
_K1, _K2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9)


def _table(known: np.ndarray) -> tuple[np.ndarray, np.uint64] | None:
    """A table ``t`` of size ``m`` with ``t[k % m]`` the index of each of ``known`` (sorted,
    distinct), no two sharing a slot; None when no size up to MAX_TABLE is found."""
    size = max(64, 4 * len(known) ** 2 + 1)
    for _ in range(8):
        if size > MAX_TABLE:
            return None
        slots = known % np.uint64(size)
        if len(np.unique(slots)) == len(known):
            table = np.zeros(size, np.int32)
            table[slots] = np.arange(len(known), dtype=np.int32)
            return table, np.uint64(size)
        size += 2
    return None


def _lookup(known: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Each key's index into the sorted ``known``: right where the key is known."""
    found = _table(known)
    if found is None:
        return np.minimum(np.searchsorted(known, keys), len(known) - 1)
    table, size = found
    return table[keys % size]


def in_order(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct keys in order of first appearance, the row each first appears in, each
    row's index into the distinct keys) of (n,) integer ``keys`` (read as uint64)."""
    keys = np.asarray(keys)
    if keys.dtype != np.uint64:
        keys = keys.astype(np.int64).view(np.uint64)
    n = len(keys)
    if not n:
        return keys[:0], np.zeros(0, np.int64), np.zeros(0, np.int64)
    known = np.unique(keys[:SEED_ROWS])
    index = _lookup(known, keys)
    missed = known[index] != keys
    if missed.any():
        known = np.union1d(known, keys[missed])
        index = _lookup(known, keys)
    first = np.full(len(known), n, np.int64)
    np.minimum.at(first, index, np.arange(n))
    order = np.argsort(first)
    rank = np.empty(len(known), np.int64)
    rank[order] = np.arange(len(known))
    return known[order], first[order], rank[index]


def mix(h: np.ndarray, value: np.ndarray) -> np.ndarray:
    """(n,) uint64 hash of ``h`` and ``value`` (both (n,) integers): not exact, callers check."""
    h = (np.asarray(h).astype(np.uint64) ^ np.asarray(value).astype(np.uint64)) * _K1
    h ^= h >> np.uint64(31)
    h *= _K2
    return h ^ (h >> np.uint64(29))


def text_hash(lengths: np.ndarray, words: list[np.ndarray]) -> np.ndarray:
    """(n,) uint64 hash of strings given as their lengths and uint64 words
    (``stdf.arrow.Strings.words``): equal strings hash equal; unequal ones almost never."""
    h = np.asarray(lengths).astype(np.uint64) * _K1
    for word in words:
        h = mix(h, word)
    return h
