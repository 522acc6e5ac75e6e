"""Combiners: how the members' P(pass) become one decision. One interface, chosen by setting.

A combiner has a ``name``, a ``version`` (bumped whenever its answers could change)
and ``combine(p_pass) -> (pass decision, probability)`` per row, where NaN marks a
member with no answer for that row. ``key`` (name:version) is part of every cache key
and of every logged prediction, so answers of two combiners never mix. Adding one
is a class here and a line in ``COMBINERS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol

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


def soft_vote(
    p_pass: Mapping[str, np.ndarray], threshold: float = PASS_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """Pass when the mean P(pass) of the members that answered is at least ``threshold``."""
    if len(p_pass) < 1:
        raise ValueError("soft_vote needs at least one member")
    stacked = np.vstack([np.asarray(p, dtype=np.float64).reshape(-1) for p in p_pass.values()])
    voting = ~np.isnan(stacked)
    with np.errstate(invalid="ignore", divide="ignore"):
        probability = np.where(voting, stacked, 0.0).sum(axis=0) / voting.sum(axis=0)
    return probability >= threshold, probability


class Combiner(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def key(self) -> str: ...

    def combine(self, p_pass: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class _Thresholded:
    """A combiner with a decision threshold on P(pass); subclasses set name and version."""

    name: ClassVar[str]
    version: ClassVar[str]
    threshold: float = PASS_THRESHOLD

    @property
    def key(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class MajorityVote(_Thresholded):
    """Each member votes pass at P(pass) >= threshold; the majority decides (ties: the mean)."""

    name: ClassVar[str] = "majority"
    version: ClassVar[str] = "1"

    def combine(self, p_pass: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return majority_vote(p_pass, self.threshold)


@dataclass(frozen=True)
class SoftVote(_Thresholded):
    """The mean P(pass) decides: every member's confidence counts, not only its side."""

    name: ClassVar[str] = "soft"
    version: ClassVar[str] = "1"

    def combine(self, p_pass: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return soft_vote(p_pass, self.threshold)


#: Every combiner by name; YIELD_ENSEMBLE_COMBINER picks one.
COMBINERS: dict[str, type[MajorityVote] | type[SoftVote]] = {
    "majority": MajorityVote,
    "soft": SoftVote,
}


def combiner(name: str) -> Combiner:
    """The combiner called ``name``; KeyError naming the known ones otherwise."""
    if name not in COMBINERS:
        raise KeyError(f"no combiner {name!r}; known: {sorted(COMBINERS)}")
    return COMBINERS[name]()
