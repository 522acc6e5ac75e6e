"""Combiners: how the members' P(pass) become one decision. One interface, chosen by setting.

A combiner has a ``name``, a ``version`` and ``combine(p_pass) -> (pass decision,
probability)`` per row, where NaN marks a member with no answer for that row. The
version is the algorithm's (bumped whenever its answers could change) followed, for
a combiner fitted by ``yield-ensemble train``, by ``@`` and the training run: fitted
weights, calibrations and thresholds are part of what decides. ``key`` (name:version)
is in every cache key and every logged prediction, so answers of two combiners never mix.

Every combiner first maps each member's P(pass) through that member's calibration
(``ensemble.calibration``: identity, sigmoid or isotonic, fitted out of fold at
training), then combines, then compares with its threshold. This module is the
serving side, numpy only: parameters and thresholds are fitted by training
(``train.fit_combiners``, which also holds the fab's ``Objective`` arithmetic).

Adding a combiner is a class here and a line in ``COMBINERS``, plus its line in
``train.fit_combiners.FITTING`` (how simple it is, and how to fit it if it learns).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from ensemble.calibration import Calibration, expit, logit
from ensemble.voting import PASS_THRESHOLD, majority_vote, nanmean, soft_vote, stack

# -- the operating point ----------------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    """What a decision costs the fab, per die.

    An escape (a failing die called pass, shipped) costs ``escape_cost``; an overkill
    (a good die called fail, scrapped) costs ``overkill_cost``. With
    ``target_fail_recall`` set, the threshold is instead the one passing the most dies
    while catching at least that share of failing dies (out of fold). Training
    searches thresholds by it (``train.fit_combiners``); the decision keeps it.
    """

    escape_cost: float = 1.0
    overkill_cost: float = 1.0
    target_fail_recall: float | None = None

    def __post_init__(self) -> None:
        if self.escape_cost <= 0 or self.overkill_cost <= 0:
            raise ValueError("escape and overkill costs must be positive")
        if self.target_fail_recall is not None and not 0 < self.target_fail_recall <= 1:
            raise ValueError("the target fail recall must be in (0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return {
            "escape_cost": self.escape_cost,
            "overkill_cost": self.overkill_cost,
            "target_fail_recall": self.target_fail_recall,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Objective:
        return cls(d["escape_cost"], d["overkill_cost"], d.get("target_fail_recall"))


# -- combiners --------------------------------------------------------------------------------


class Combiner(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def key(self) -> str: ...

    @property
    def threshold(self) -> float: ...

    def combine(self, p_pass: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class CombinerBase:
    """Calibrate each member, combine into a probability, compare with the threshold.

    Subclasses set ``name`` and ``algorithm`` (the version of their rule), define
    ``probability``, and may override ``passes`` (the majority vote does); learned
    parameters are dataclass fields, saved by ``_parameters`` and read back by
    ``_parameters_from``.
    """

    name: ClassVar[str]
    algorithm: ClassVar[str] = "1"
    threshold: float = PASS_THRESHOLD
    calibration: Mapping[str, Calibration] = field(default_factory=dict)
    run: str = ""  # the training run that fitted it; "" when unfitted

    @property
    def version(self) -> str:
        return f"{self.algorithm}@{self.run}" if self.run else self.algorithm

    @property
    def key(self) -> str:
        return f"{self.name}:{self.version}"

    def calibrated(self, p_pass: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        none = Calibration()
        return {m: self.calibration.get(m, none).apply(p) for m, p in p_pass.items()}

    def probability(self, p_pass: Mapping[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def passes(
        self, p_pass: Mapping[str, np.ndarray], probability: np.ndarray, threshold: float
    ) -> np.ndarray:
        return np.asarray(probability >= threshold)

    def combine(self, p_pass: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        probability = self.probability(p_pass)
        return self.passes(p_pass, probability, self.threshold), probability

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "algorithm": self.algorithm,
            "threshold": self.threshold,
            "calibration": {m: c.to_dict() for m, c in self.calibration.items()},
            "run": self.run,
            **self._parameters(),
        }

    def _parameters(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Any:
        if d.get("algorithm", cls.algorithm) != cls.algorithm:
            raise ValueError(
                f"combiner {cls.name}: saved with algorithm {d.get('algorithm')}, this code "
                f"runs {cls.algorithm}; train again"
            )
        return cls(
            threshold=float(d["threshold"]),
            calibration={m: Calibration.from_dict(c) for m, c in d["calibration"].items()},
            run=str(d.get("run", "")),
            **cls._parameters_from(d),
        )

    @classmethod
    def _parameters_from(cls, d: Mapping[str, Any]) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class MajorityVote(CombinerBase):
    """Each member votes pass at calibrated P(pass) >= threshold; the majority decides.

    Ties (two members voting) go to their mean. ``probability`` is the mean calibrated
    P(pass) of the members that voted.
    """

    name: ClassVar[str] = "majority"

    def probability(self, p_pass: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(majority_vote(self.calibrated(p_pass), self.threshold)[1])

    def combine(self, p_pass: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        # One vote for both answers (the base class would calibrate and vote twice).
        return majority_vote(self.calibrated(p_pass), self.threshold)

    def passes(
        self, p_pass: Mapping[str, np.ndarray], probability: np.ndarray, threshold: float
    ) -> np.ndarray:
        return np.asarray(majority_vote(self.calibrated(p_pass), threshold)[0])


@dataclass(frozen=True)
class SoftVote(CombinerBase):
    """The mean calibrated P(pass) decides: every member's confidence counts, not only its side."""

    name: ClassVar[str] = "soft"

    def probability(self, p_pass: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(soft_vote(self.calibrated(p_pass))[1])


@dataclass(frozen=True)
class WeightedSoftVote(CombinerBase):
    """A weighted mean of calibrated P(pass); the weights minimise out-of-fold log-loss.

    A member with no answer for a row drops out and the others' weights are
    renormalised there.
    """

    name: ClassVar[str] = "weighted"
    weights: Mapping[str, float] = field(default_factory=dict)

    def probability(self, p_pass: Mapping[str, np.ndarray]) -> np.ndarray:
        calibrated = self.calibrated(p_pass)
        stacked = stack(calibrated)
        # Unfitted (no weights): every member counts alike, as in the soft vote.
        w = np.array([self.weights.get(m, 0.0) if self.weights else 1.0 for m in calibrated])
        return np.asarray(nanmean(stacked, ~np.isnan(stacked), w))

    def _parameters(self) -> dict[str, Any]:
        return {"weights": dict(self.weights)}

    @classmethod
    def _parameters_from(cls, d: Mapping[str, Any]) -> dict[str, Any]:
        return {"weights": {m: float(w) for m, w in d["weights"].items()}}


@dataclass(frozen=True)
class Stacked(CombinerBase):
    """Stacking: a logistic regression on the members' out-of-fold log-odds.

    One regression per set of answering members (all of them, and every set of two
    or more), so a row missing a member is decided by a model fitted without it.
    Its output is already calibrated: the members' calibrations are not used.
    """

    name: ClassVar[str] = "stacked"
    models: tuple[tuple[tuple[str, ...], float, tuple[float, ...]], ...] = ()

    def probability(self, p_pass: Mapping[str, np.ndarray]) -> np.ndarray:
        names = list(p_pass)
        stacked = stack(p_pass)
        present = ~np.isnan(stacked)
        out = np.full(stacked.shape[1], np.nan)
        for members, intercept, coef in self.models:
            if not set(members) <= set(names):
                continue
            wanted = np.array([m in members for m in names])
            rows = np.all(present == wanted[:, None], axis=0)
            if rows.any():
                z = intercept + sum(
                    c * logit(stacked[names.index(m), rows])
                    for m, c in zip(members, coef, strict=True)
                )
                out[rows] = expit(np.asarray(z))
        # A set of members no model was fitted for (not one the service lets through):
        # the mean of what answered, so the row is still decided.
        left = np.isnan(out) & present.any(axis=0)
        if left.any():
            out[left] = nanmean(stacked[:, left], present[:, left])
        return out

    def _parameters(self) -> dict[str, Any]:
        return {
            "models": [
                {"members": list(m), "intercept": b, "coef": list(c)} for m, b, c in self.models
            ]
        }

    @classmethod
    def _parameters_from(cls, d: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "models": tuple(
                (tuple(m["members"]), float(m["intercept"]), tuple(map(float, m["coef"])))
                for m in d["models"]
            )
        }


@dataclass(frozen=True)
class Single(CombinerBase):
    """One member alone (an A/B arm, or a row of the training tables): its calibrated P(pass).

    Fitted by training as ``train.fit_combiners.at_best_threshold(Single(member=...), ...)``.
    """

    name: ClassVar[str] = "single"
    member: str = ""

    def probability(self, p_pass: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.calibrated({self.member: p_pass[self.member]})[self.member]

    def _parameters(self) -> dict[str, Any]:
        return {"member": self.member}

    @classmethod
    def _parameters_from(cls, d: Mapping[str, Any]) -> dict[str, Any]:
        return {"member": str(d["member"])}


#: Every ensemble combiner by name, simplest first; YIELD_ENSEMBLE_COMBINER picks one.
COMBINERS: dict[str, type[CombinerBase]] = {
    c.name: c for c in (MajorityVote, SoftVote, WeightedSoftVote, Stacked)
}


def combiner(name: str) -> Combiner:
    """The unfitted combiner called ``name``; KeyError naming the known ones otherwise."""
    if name not in COMBINERS:
        raise KeyError(f"no combiner {name!r}; known: {sorted(COMBINERS)}")
    return COMBINERS[name]()


def from_dict(d: Mapping[str, Any]) -> Any:
    """A saved combiner (``to_dict``) back as the object."""
    kinds: dict[str, type[CombinerBase]] = {**COMBINERS, Single.name: Single}
    if d["name"] not in kinds:
        raise ValueError(f"saved combiner {d['name']!r} is not known to this code")
    return kinds[d["name"]].from_dict(d)
