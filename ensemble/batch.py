"""One request's results as arrays: what the router returns, the wafer answer is made of,
and the log and the metrics read. ``records()`` makes the per-device dicts of the
``/predict`` and ``/predict_batch`` answers; the columnar path never does.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ensemble.responses import Prediction

#: A cached row: (passed, probability, the members' P(pass) in member order, NaN where
#: none, whether they split). A tuple of atoms: 100,000 of them stay out of the garbage
#: collector's way.
CachedRow = tuple[bool, float, tuple[float, ...], bool]


@dataclass
class Batch:
    """Results for n rows, in request order.

    ``arm`` indexes ``arms``; ``votes`` is (members, n) with NaN where a member gave no
    vote (the one-member arms, a failed member); ``split`` marks ensemble-answered rows
    whose members, each at its own threshold, did not all say the same; ``missing`` maps
    each degraded row to the members missing there; ``rules`` maps an arm to (combiner
    key, threshold).
    """

    members: tuple[str, ...]
    arms: tuple[str, ...]
    arm: np.ndarray
    passed: np.ndarray
    probability: np.ndarray
    votes: np.ndarray
    cached: np.ndarray
    degraded: np.ndarray
    split: np.ndarray
    missing: dict[int, tuple[str, ...]] = field(default_factory=dict)
    rules: dict[str, tuple[str, float]] = field(default_factory=dict)
    # The arm the split assigned each row to (indexes ``arms``), where the router set it;
    # it differs from ``arm`` where another arm answered (the assigned one's member down).
    assigned: np.ndarray | None = None

    @classmethod
    def empty(cls, n: int, members: Sequence[str], arms: Sequence[str]) -> Batch:
        return cls(
            members=tuple(members),
            arms=tuple(arms),
            arm=np.zeros(n, dtype=np.int64),
            passed=np.zeros(n, dtype=bool),
            probability=np.zeros(n),
            votes=np.full((len(members), n), np.nan),
            cached=np.zeros(n, dtype=bool),
            degraded=np.zeros(n, dtype=bool),
            split=np.zeros(n, dtype=bool),
        )

    def __len__(self) -> int:
        return len(self.passed)

    def put(self, rows: np.ndarray, part: Batch) -> None:
        """Write ``part`` (results for ``rows`` of this batch) into place."""
        if part.arms != self.arms or part.members != self.members:
            raise ValueError("a batch takes parts over the same arms and members only")
        self.arm[rows] = part.arm
        self.passed[rows] = part.passed
        self.probability[rows] = part.probability
        self.votes[:, rows] = part.votes
        self.cached[rows] = part.cached
        self.degraded[rows] = part.degraded
        self.split[rows] = part.split
        for j, why in part.missing.items():
            self.missing[int(rows[j])] = why
        self.rules.update(part.rules)

    def cache_rows(self) -> list[CachedRow]:
        """Every row as the cache keeps it."""
        return list(
            zip(
                self.passed.tolist(),
                self.probability.tolist(),
                zip(*self.votes.tolist(), strict=True) if len(self.members) else [()] * len(self),
                self.split.tolist(),
                strict=True,
            )
        )

    @functools.cached_property
    def vote_dicts(self) -> list[dict[str, float]]:
        """Per row, member -> P(pass) of the members that voted. Made once (the answer and
        the prediction log share the dicts: neither may change them)."""
        if not np.isnan(self.votes).any():  # every member voted on every row
            return [dict(zip(self.members, row, strict=True)) for row in self.votes.T.tolist()]
        columns = self.votes.tolist()
        return [
            {m: c[i] for m, c in zip(self.members, columns, strict=True) if c[i] == c[i]}
            for i in range(len(self))
        ]

    def arm_names(self) -> list[str]:
        return [self.arms[a] for a in self.arm.tolist()]

    def assigned_names(self) -> list[str]:
        """The arm each row was assigned to (its serving arm where none was recorded)."""
        chosen = self.arm if self.assigned is None else self.assigned
        return [self.arms[a] for a in chosen.tolist()]

    def records(self) -> list[Prediction]:
        """One ``Prediction`` per row, for the record-shaped answers."""
        arms = self.arm_names()
        return [
            {
                "prediction": "pass" if passed else "fail",
                "probability": probability,
                "votes": votes,
                "arm": arm,
                "combiner": self.rules[arm][0],
                "threshold": self.rules[arm][1],
                "degraded": degraded,
                "missing_members": self.missing.get(i, ()),
                "cached": cached,
            }
            for i, (passed, probability, votes, arm, degraded, cached) in enumerate(
                zip(
                    self.passed.tolist(),
                    self.probability.tolist(),
                    self.vote_dicts,
                    arms,
                    self.degraded.tolist(),
                    self.cached.tolist(),
                    strict=True,
                )
            )
        ]
