"""LRU cache of per-device predictions, keyed so a model change can never serve a stale answer."""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence
from typing import cast

import numpy as np
from cachetools import Cache, LRUCache, TTLCache

from ensemble.batch import CachedRow


def row_keys(rows: np.ndarray, arm: str, model_key: Hashable) -> list[tuple[Hashable, ...]]:
    """One key per row of ``rows`` (n, k) float32.

    The key holds the float32 bytes the models would see: two requests whose
    features round to the same float32 values get the same model inputs and so
    the same answer. ``model_key`` identifies the model versions behind ``arm``.
    """
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    return [(arm, model_key, row.tobytes()) for row in rows]


class PredictionCache:
    """Bounded LRU (optionally with a TTL) of predictions; ``maxsize`` 0 disables it.

    A value is a ``CachedRow`` tuple (decision, probability, votes in member order,
    whether they split); the arm's rule comes from the key's arm, so it is not stored
    per row.

    Hits and misses are counted by ``ops.metrics`` from each answer's ``cached``.
    """

    def __init__(self, maxsize: int, ttl_s: float | None = None) -> None:
        self._store: Cache[Hashable, CachedRow] | None = None
        if maxsize > 0 and ttl_s:
            self._store = TTLCache[Hashable, CachedRow](maxsize, ttl_s)
        elif maxsize > 0:
            self._store = LRUCache(maxsize)

    def __len__(self) -> int:
        return 0 if self._store is None else len(self._store)

    def get_many(self, keys: Sequence[Hashable]) -> list[CachedRow | None]:
        """Cached results for ``keys`` (None where missing)."""
        if self._store is None:
            return [None] * len(keys)
        return [self._store.get(k) for k in keys]

    def put_many(self, keys: Sequence[Hashable], values: Sequence[CachedRow]) -> None:
        if self._store is None:
            return
        for k, v in zip(keys, values, strict=True):
            self._store[k] = v

    def retain(self, model_keys: Collection[Hashable]) -> int:
        """Drop every answer whose model key is not in ``model_keys``: how many were dropped."""
        if self._store is None:
            return 0
        stale = [
            k
            for k in list(self._store.keys())
            if cast(tuple[Hashable, ...], k)[1] not in model_keys
        ]
        for k in stale:
            self._store.pop(k, None)
        return len(stale)
