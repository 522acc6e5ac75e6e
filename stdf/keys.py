"""Dictionary encoding in numpy: distinct keys in order of first appearance, without a sort
of every row, and hashes of strings.

A file's 1M PTRs hold a few hundred distinct tests: the distinct keys are found in the
first rows, then every row is looked up in a collision-free table (multiplicative hashing,
``key * M >> shift``) and checked, a few passes over the rows instead of an O(n log n) sort.
"""

from __future__ import annotations

import numpy as np

from stdf.arrow import Word

#: Rows whose distinct keys seed the table; the rest are looked up (misses are added).
SEED_ROWS = 1 << 12
#: Largest lookup table (int32 entries) before falling back to a binary search.
MAX_TABLE = 1 << 22
_K1, _K2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9)
#: Odd multipliers tried in turn until the known keys land in distinct slots.
_MULTIPLIERS = [np.uint64(m | 1) for m in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9,
    0x94D049BB133111EB, 0xD6E8FEB86659FD93, 0xA0761D6478BD642F, 0xE7037ED1A0B428DB,
    0x8EBC6AF09C88C6E3, 0x589965CC75374CC3)]  # fmt: skip


def _table(known: np.ndarray) -> tuple[np.ndarray, np.uint64, np.uint64] | None:
    """(table, multiplier, shift): ``table[known * multiplier >> shift]`` is the index of each
    of ``known`` (distinct), no two sharing a slot; None when the table would pass
    MAX_TABLE or no multiplier separates them."""
    bits = max(6, int(4 * len(known) ** 2).bit_length())
    if 1 << bits > MAX_TABLE:
        return None
    shift = np.uint64(64 - bits)
    for multiplier in _MULTIPLIERS:
        slots = (known * multiplier) >> shift
        if len(np.unique(slots)) == len(known):
            table = np.zeros(1 << bits, np.int32)
            table[slots] = np.arange(len(known), dtype=np.int32)
            return table, multiplier, shift
    return None


def _lookup(known: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Each key's index into the sorted ``known``: right where the key is known."""
    found = _table(known)
    if found is None:
        return np.minimum(np.searchsorted(known, keys), len(known) - 1)
    table, multiplier, shift = found
    index: np.ndarray = table[(keys * multiplier) >> shift]
    return index


def in_order(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct keys in order of first appearance, the row each first appears in, each
    row's index into the distinct keys) of (n,) integer ``keys`` (read as uint64)."""
    keys = _u64(keys)
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


def _u64(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    return values.view(np.uint64) if values.dtype == np.int64 else values.astype(np.uint64)


def mix(h: np.ndarray, value: np.ndarray) -> np.ndarray:
    """(n,) uint64 hash of ``h`` and ``value`` (both (n,) integers): not exact, callers check."""
    h = (_u64(h) ^ _u64(value)) * _K1
    out: np.ndarray = h ^ (h >> np.uint64(29))
    return out


def text_hash(lengths: np.ndarray, words: list[Word]) -> np.ndarray:
    """(n,) uint64 hash of strings given as their lengths and words of 8 bytes
    (``stdf.arrow.Strings.words``): equal strings hash equal; unequal ones almost never."""
    h = _u64(lengths) * _K2
    for word in words:
        if word.rows is None:
            h ^= word.values
            h *= _K1
        else:
            h[word.rows] = (h[word.rows] ^ word.values) * _K1
    out: np.ndarray = h ^ (h >> np.uint64(31))
    return out
