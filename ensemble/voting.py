"""The two unfitted voting rules over members' P(pass), and the NaN-aware helpers combiners share.

Numpy only. NaN marks a member with no answer for a row: it has no vote there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: A member votes pass when its P(pass) is at least this (unfitted combiners).
PASS_THRESHOLD = 0.5


def majority_vote(
    p_pass: Mapping[str, np.ndarray], threshold: float = PASS_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """Combine members' P(pass), each shaped (n_rows,), into (pass decision, probability).

    Each member votes pass when its P(pass) >= ``threshold``; a row passes with a
    strict majority of votes. NaN marks a member that failed for that row: it has
    no vote there. With an even number of voting members (two, when one is
    missing) a tie goes to the mean probability. ``probability`` is the mean
    P(pass) of the members that voted (NaN for a row where none did).
    """
    if len(p_pass) < 1:
        raise ValueError("majority_vote needs at least one member")
    stacked = stack(p_pass)
    voting = ~np.isnan(stacked)
    n_members = voting.sum(axis=0)
    votes = (stacked >= threshold).sum(axis=0)  # NaN >= t is False: no vote
    probability = nanmean(stacked, voting)
    decision = 2 * votes > n_members
    tie = 2 * votes == n_members
    decision = np.where(tie, probability >= threshold, decision)
    return decision, probability


def soft_vote(
    p_pass: Mapping[str, np.ndarray], threshold: float = PASS_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """Pass when the mean P(pass) of the members that answered is at least ``threshold``."""
    if len(p_pass) < 1:
        raise ValueError("soft_vote needs at least one member")
    stacked = stack(p_pass)
    probability = nanmean(stacked, ~np.isnan(stacked))
    return probability >= threshold, probability


def stack(p_pass: Mapping[str, np.ndarray]) -> np.ndarray:
    """The members' P(pass), each (n_rows,), as one (n_members, n_rows) float64 array."""
    return np.vstack([np.asarray(p, dtype=np.float64).reshape(-1) for p in p_pass.values()])


def nanmean(stacked: np.ndarray, present: np.ndarray, weights: np.ndarray | None = None) -> Any:
    """Per column, the (weighted) mean of the rows ``present`` there; NaN where none is."""
    w = np.ones(len(stacked)) if weights is None else weights
    w = np.where(present, w[:, None], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(present, stacked, 0.0) * w).sum(axis=0) / w.sum(axis=0)
