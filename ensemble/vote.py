"""Majority vote of the member models' P(pass)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: A member votes pass when its P(pass) is at least this.
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
    stacked = np.vstack([np.asarray(p, dtype=np.float64).reshape(-1) for p in p_pass.values()])
    voting = ~np.isnan(stacked)
    n_members = voting.sum(axis=0)
    votes = (stacked >= threshold).sum(axis=0)  # NaN >= t is False: no vote
    with np.errstate(invalid="ignore", divide="ignore"):
        probability = np.where(voting, stacked, 0.0).sum(axis=0) / n_members
    decision = 2 * votes > n_members
    tie = 2 * votes == n_members
    decision = np.where(tie, probability >= threshold, decision)
    return decision, probability
