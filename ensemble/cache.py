"""LRU cache of per-device predictions, keyed so a model change can never serve a stale answer."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from cachetools import Cache, LRUCache, TTLCache


def row_keys(rows: np.ndarray, arm: str, model_key: Hashable) -> list[tuple[Hashable, ...]]:
    """One key per row of ``rows`` (n, k) float32.

    The key holds the float32 bytes the models would see: two requests whose
    features round to the same float32 values get the same model inputs and so
    the same answer. ``model_key`` identifies the model versions behind ``arm``.
    """
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    return [(arm, model_key, row.tobytes()) for row in rows]


class PredictionCache:
    """Bounded LRU (optionally with a TTL) of result dicts; counts hits and misses."""

    def __init__(self, maxsize: int, ttl_s: float | None = None) -> None:
        self.maxsize = maxsize
        self._store: Cache[Hashable, dict[str, Any]] | None = None
        if maxsize > 0 and ttl_s:
            self._store = TTLCache[Hashable, dict[str, Any]](maxsize, ttl_s)
        elif maxsize > 0:
            self._store = LRUCache(maxsize)
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return 0 if self._store is None else len(self._store)

    def get_many(self, keys: Sequence[Hashable]) -> list[dict[str, Any] | None]:
        """Cached results for ``keys`` (None where missing), counting hits and misses."""
        if self._store is None:
            self.misses += len(keys)
            return [None] * len(keys)
        found = [self._store.get(k) for k in keys]
        hits = sum(f is not None for f in found)
        self.hits += hits
        self.misses += len(keys) - hits
        return found

    def put_many(self, keys: Sequence[Hashable], values: Sequence[dict[str, Any]]) -> None:
        if self._store is None:
            return
        for k, v in zip(keys, values, strict=True):
            self._store[k] = v
