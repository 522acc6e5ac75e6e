"""Sticky A/B assignment: the same key lands in the same arm in every worker, replica, restart."""

from __future__ import annotations

import hashlib
import random

ENSEMBLE = "ensemble"
CHALLENGER = "challenger"


def bucket(key: str, salt: str) -> float:
    """A stable uniform number in [0, 1) for ``key``: the first 8 bytes of SHA-256(salt:key)."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_arm(
    key: str | None, challenger_fraction: float, salt: str, rng: random.Random | None = None
) -> str:
    """``challenger`` for a ``challenger_fraction`` share of keys, else ``ensemble``.

    With a key the choice is a pure function of (key, salt); without one it is random.
    """
    if challenger_fraction <= 0:
        return ENSEMBLE
    if challenger_fraction >= 1:
        return CHALLENGER
    u = bucket(key, salt) if key is not None else (rng or random).random()
    return CHALLENGER if u < challenger_fraction else ENSEMBLE
