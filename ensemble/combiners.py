"""Combiners: how the members' P(pass) become one decision. One interface, chosen by setting.

A combiner has a ``name``, a ``version`` and ``combine(p_pass) -> (pass decision,
probability)`` per row, where NaN marks a member with no answer for that row. The
version is the algorithm's (bumped whenever its answers could change) followed, for
a combiner fitted by ``yield-ensemble train``, by ``@`` and the training run: fitted
weights, calibrations and thresholds are part of what decides. ``key`` (name:version)
is in every cache key and every logged prediction, so answers of two combiners never mix.

Every combiner first maps each member's P(pass) through that member's calibration
(identity, sigmoid or isotonic, fitted out of fold at training), then combines, then
compares with its threshold. ``fit`` (training only) learns the parameters from
out-of-fold probabilities; thresholds come from an ``Objective`` (the fab's costs of
an escape and of an overkill, or a fail-recall target). Serving needs numpy only:
nothing here imports scikit-learn at module level.

Adding a combiner is a class here and a line in ``COMBINERS``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol

import numpy as np

#: A member votes pass when its P(pass) is at least this (unfitted combiners).
PASS_THRESHOLD = 0.5
#: Probabilities are clipped this far from 0 and 1 before taking log-odds.
_EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.asarray(np.log(p / (1 - p)))


def expit(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64))))


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
    stacked = _stack(p_pass)
    voting = ~np.isnan(stacked)
    n_members = voting.sum(axis=0)
    votes = (stacked >= threshold).sum(axis=0)  # NaN >= t is False: no vote
    probability = _nanmean(stacked, voting)
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
    stacked = _stack(p_pass)
    probability = _nanmean(stacked, ~np.isnan(stacked))
    return probability >= threshold, probability


def _stack(p_pass: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.vstack([np.asarray(p, dtype=np.float64).reshape(-1) for p in p_pass.values()])


def _nanmean(stacked: np.ndarray, present: np.ndarray, weights: np.ndarray | None = None) -> Any:
    """Per column, the (weighted) mean of the rows ``present`` there; NaN where none is."""
    w = np.ones(len(stacked)) if weights is None else weights
    w = np.where(present, w[:, None], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(present, stacked, 0.0) * w).sum(axis=0) / w.sum(axis=0)


# -- calibration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """One member's map from its P(pass) to a calibrated P(pass); NaN stays NaN.

    ``none``: identity. ``sigmoid``: expit(a * logit(p) + b) (Platt scaling on the
    log-odds). ``isotonic``: a monotone step function, interpolated between the
    knots ``x`` -> ``y`` (what scikit-learn's IsotonicRegression keeps).
    """

    kind: str = "none"
    a: float = 1.0
    b: float = 0.0
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()

    KINDS: ClassVar[tuple[str, ...]] = ("none", "sigmoid", "isotonic")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"calibration kind {self.kind!r}; known: {self.KINDS}")
        if self.kind == "isotonic" and (len(self.x) < 2 or len(self.x) != len(self.y)):
            raise ValueError("an isotonic calibration needs matching knots x and y (two or more)")

    def apply(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        if self.kind == "sigmoid":
            return np.where(np.isnan(p), np.nan, expit(self.a * logit(p) + self.b))
        if self.kind == "isotonic":
            return np.where(np.isnan(p), np.nan, np.interp(p, self.x, self.y))
        return p

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "sigmoid":
            return {"kind": "sigmoid", "a": self.a, "b": self.b}
        if self.kind == "isotonic":
            return {"kind": "isotonic", "x": list(self.x), "y": list(self.y)}
        return {"kind": "none"}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        return cls(
            kind=d["kind"],
            a=float(d.get("a", 1.0)),
            b=float(d.get("b", 0.0)),
            x=tuple(float(v) for v in d.get("x", ())),
            y=tuple(float(v) for v in d.get("y", ())),
        )

    @classmethod
    def fit(cls, kind: str, p: np.ndarray, y: np.ndarray) -> Calibration:
        """Fit ``kind`` on probabilities ``p`` and labels ``y`` (1 = pass). Training only."""
        if kind == "sigmoid":
            coef, intercept = fit_logistic(logit(p)[:, None], y)
            return cls("sigmoid", a=float(coef[0]), b=float(intercept))
        if kind == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
            x, v = iso.X_thresholds_, iso.y_thresholds_
            if len(x) < 2:  # a constant member: one knot; keep a flat line
                x, v = np.array([0.0, 1.0]), np.repeat(v[:1] if len(v) else [0.5], 2)
            return cls("isotonic", x=tuple(map(float, x)), y=tuple(map(float, v)))
        return cls()


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iterations: int = 50
) -> tuple[np.ndarray, float]:
    """Logistic regression by Newton's method (a few features): (coefficients, intercept).

    A small ridge ``l2`` keeps separable or constant inputs finite. Numpy only, so a
    fitted model and the code that fitted it need nothing the serving image lacks.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    design = np.hstack([np.ones((len(x), 1)), x])
    beta = np.zeros(design.shape[1])
    ridge = l2 * len(x) * np.eye(design.shape[1])
    ridge[0, 0] = 0.0
    for _ in range(iterations):
        p = expit(design @ beta)
        gradient = design.T @ (p - y) + ridge @ beta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + ridge + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return beta[1:], float(beta[0])


# -- the operating point ----------------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    """What a decision costs the fab, per die.

    An escape (a failing die called pass, shipped) costs ``escape_cost``; an overkill
    (a good die called fail, scrapped) costs ``overkill_cost``. With
    ``target_fail_recall`` set, the threshold is instead the one passing the most dies
    while catching at least that share of failing dies (out of fold).
    """

    escape_cost: float = 1.0
    overkill_cost: float = 1.0
    target_fail_recall: float | None = None

    def __post_init__(self) -> None:
        if self.escape_cost <= 0 or self.overkill_cost <= 0:
            raise ValueError("escape and overkill costs must be positive")
        if self.target_fail_recall is not None and not 0 < self.target_fail_recall <= 1:
            raise ValueError("the target fail recall must be in (0, 1]")

    def costs(self, passed: np.ndarray, actual_pass: np.ndarray) -> np.ndarray:
        """Each die's cost: escape_cost, overkill_cost or 0."""
        passed, actual = np.asarray(passed, bool), np.asarray(actual_pass, bool)
        return np.asarray(
            np.where(passed & ~actual, self.escape_cost, 0.0)
            + np.where(~passed & actual, self.overkill_cost, 0.0)
        )

    def loss(self, passed: np.ndarray, actual_pass: np.ndarray) -> float:
        """What the threshold search minimises: mean cost, or overkill under the recall target."""
        if self.target_fail_recall is None:
            return float(self.costs(passed, actual_pass).mean())
        actual = np.asarray(actual_pass, bool)
        caught = np.sum(~passed & ~actual) / max(int(np.sum(~actual)), 1)
        overkill = np.sum(~passed & actual) / max(int(np.sum(actual)), 1)
        return float(overkill) if caught >= self.target_fail_recall else 1.0 + float(1 - caught)

    def to_dict(self) -> dict[str, Any]:
        return {
            "escape_cost": self.escape_cost,
            "overkill_cost": self.overkill_cost,
            "target_fail_recall": self.target_fail_recall,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Objective:
        return cls(d["escape_cost"], d["overkill_cost"], d.get("target_fail_recall"))


#: Thresholds tried: quantiles of the scores, at most this many, plus 0.5.
_GRID = 400


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
class _Base:
    """Calibrate each member, combine into a probability, compare with the threshold.

    Subclasses set ``name``, ``algorithm`` (the version of their rule) and ``rank``
    (simplicity: ``auto`` breaks ties towards the lowest) and define ``probability``;
    they may override ``passes`` (the majority vote does) and ``_fit_parameters``.
    """

    name: ClassVar[str]
    algorithm: ClassVar[str] = "1"
    rank: ClassVar[int] = 0
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

    @classmethod
    def fit(
        cls,
        p_pass: Mapping[str, np.ndarray],
        actual_pass: np.ndarray,
        calibration: Mapping[str, Calibration],
        objective: Objective,
        run: str = "",
    ) -> Any:
        """Learn parameters and threshold from out-of-fold ``p_pass`` (training only)."""
        fitted = cls._fit_parameters(p_pass, actual_pass, calibration, run)
        return fitted.at_best_threshold(p_pass, actual_pass, objective)

    @classmethod
    def _fit_parameters(
        cls,
        p_pass: Mapping[str, np.ndarray],
        actual_pass: np.ndarray,
        calibration: Mapping[str, Calibration],
        run: str,
    ) -> Any:
        return cls(calibration=dict(calibration), run=run)

    def at_best_threshold(
        self, p_pass: Mapping[str, np.ndarray], actual_pass: np.ndarray, objective: Objective
    ) -> Any:
        """This combiner with the threshold minimising ``objective`` on these rows."""
        return replace(self, threshold=self.best_threshold(p_pass, actual_pass, objective))

    def best_threshold(
        self, p_pass: Mapping[str, np.ndarray], actual_pass: np.ndarray, objective: Objective
    ) -> float:
        """The threshold minimising ``objective`` on these rows (ties: the one nearest 0.5)."""
        probability = self.probability(p_pass)
        scores = self._threshold_scores(p_pass, probability)
        scores = scores[~np.isnan(scores)]
        grid = np.unique(np.concatenate([np.quantile(scores, np.linspace(0, 1, _GRID)), [0.5]]))
        # Between two neighbouring scores every threshold decides alike: take the midpoints.
        grid = np.unique(np.concatenate([grid, (grid[1:] + grid[:-1]) / 2]))
        losses = np.array(
            [objective.loss(self.passes(p_pass, probability, t), actual_pass) for t in grid]
        )
        best = np.flatnonzero(losses <= losses.min() + 1e-12)
        return float(grid[best[np.argmin(np.abs(grid[best] - 0.5))]])

    def _threshold_scores(
        self, p_pass: Mapping[str, np.ndarray], probability: np.ndarray
    ) -> np.ndarray:
        return probability


@dataclass(frozen=True)
class MajorityVote(_Base):
    """Each member votes pass at calibrated P(pass) >= threshold; the majority decides.

    Ties (two members voting) go to their mean. ``probability`` is the mean calibrated
    P(pass) of the members that voted.
    """

    name: ClassVar[str] = "majority"
    rank: ClassVar[int] = 0

    def probability(self, p_pass: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(majority_vote(self.calibrated(p_pass), self.threshold)[1])

    def combine(self, p_pass: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        # One vote for both answers (the base class would calibrate and vote twice).
        return majority_vote(self.calibrated(p_pass), self.threshold)

    def passes(
        self, p_pass: Mapping[str, np.ndarray], probability: np.ndarray, threshold: float
    ) -> np.ndarray:
        return np.asarray(majority_vote(self.calibrated(p_pass), threshold)[0])

    def _threshold_scores(
        self, p_pass: Mapping[str, np.ndarray], probability: np.ndarray
    ) -> np.ndarray:
        return _stack(self.calibrated(p_pass)).reshape(-1)


@dataclass(frozen=True)
class SoftVote(_Base):
    """The mean calibrated P(pass) decides: every member's confidence counts, not only its side."""

    name: ClassVar[str] = "soft"
    rank: ClassVar[int] = 1

    def probability(self, p_pass: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(soft_vote(self.calibrated(p_pass))[1])


@dataclass(frozen=True)
class WeightedSoftVote(_Base):
    """A weighted mean of calibrated P(pass); the weights minimise out-of-fold log-loss.

    A member with no answer for a row drops out and the others' weights are
    renormalised there.
    """

    name: ClassVar[str] = "weighted"
    rank: ClassVar[int] = 2
    weights: Mapping[str, float] = field(default_factory=dict)

    def probability(self, p_pass: Mapping[str, np.ndarray]) -> np.ndarray:
        calibrated = self.calibrated(p_pass)
        stacked = _stack(calibrated)
        # Unfitted (no weights): every member counts alike, as in the soft vote.
        w = np.array([self.weights.get(m, 0.0) if self.weights else 1.0 for m in calibrated])
        return np.asarray(_nanmean(stacked, ~np.isnan(stacked), w))

    def _parameters(self) -> dict[str, Any]:
        return {"weights": dict(self.weights)}

    @classmethod
    def _parameters_from(cls, d: Mapping[str, Any]) -> dict[str, Any]:
        return {"weights": {m: float(w) for m, w in d["weights"].items()}}

    @classmethod
    def _fit_parameters(
        cls,
        p_pass: Mapping[str, np.ndarray],
        actual_pass: np.ndarray,
        calibration: Mapping[str, Calibration],
        run: str,
    ) -> WeightedSoftVote:
        from scipy.optimize import minimize

        names = list(p_pass)
        none = Calibration()
        stacked = np.vstack([calibration.get(m, none).apply(p_pass[m]) for m in names])
        y = np.asarray(actual_pass, dtype=np.float64)

        def log_loss(theta: np.ndarray) -> float:
            w = np.exp(theta - theta.max())
            p = np.clip((w / w.sum()) @ stacked, _EPS, 1 - _EPS)
            return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

        theta = minimize(log_loss, np.zeros(len(names)), method="Nelder-Mead").x
        w = np.exp(theta - theta.max())
        weights = {m: float(v) for m, v in zip(names, w / w.sum(), strict=True)}
        return cls(calibration=dict(calibration), run=run, weights=weights)


@dataclass(frozen=True)
class Stacked(_Base):
    """Stacking: a logistic regression on the members' out-of-fold log-odds.

    One regression per set of answering members (all of them, and every set of two
    or more), so a row missing a member is decided by a model fitted without it.
    Its output is already calibrated: the members' calibrations are not used.
    """

    name: ClassVar[str] = "stacked"
    rank: ClassVar[int] = 3
    models: tuple[tuple[tuple[str, ...], float, tuple[float, ...]], ...] = ()

    def probability(self, p_pass: Mapping[str, np.ndarray]) -> np.ndarray:
        names = list(p_pass)
        stacked = _stack(p_pass)
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
            out[left] = _nanmean(stacked[:, left], present[:, left])
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

    @classmethod
    def _fit_parameters(
        cls,
        p_pass: Mapping[str, np.ndarray],
        actual_pass: np.ndarray,
        calibration: Mapping[str, Calibration],
        run: str,
    ) -> Stacked:
        names = list(p_pass)
        models = []
        for size in range(len(names), 1, -1):
            for members in itertools.combinations(names, size):
                x = np.column_stack([logit(p_pass[m]) for m in members])
                coef, intercept = fit_logistic(x, actual_pass)
                models.append((members, intercept, tuple(map(float, coef))))
        return cls(calibration={}, run=run, models=tuple(models))


@dataclass(frozen=True)
class Single(_Base):
    """One member alone (an A/B arm, or a row of the training tables): its calibrated P(pass).

    Fitted by training as ``Single(member=..., calibration=...).at_best_threshold(...)``.
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
COMBINERS: dict[str, type[_Base]] = {
    c.name: c for c in (MajorityVote, SoftVote, WeightedSoftVote, Stacked)
}


def combiner(name: str) -> Combiner:
    """The unfitted combiner called ``name``; KeyError naming the known ones otherwise."""
    if name not in COMBINERS:
        raise KeyError(f"no combiner {name!r}; known: {sorted(COMBINERS)}")
    return COMBINERS[name]()


def from_dict(d: Mapping[str, Any]) -> Any:
    """A saved combiner (``to_dict``) back as the object."""
    kinds: dict[str, type[_Base]] = {**COMBINERS, Single.name: Single}
    if d["name"] not in kinds:
        raise ValueError(f"saved combiner {d['name']!r} is not known to this code")
    return kinds[d["name"]].from_dict(d)


def simplest_first(names: Sequence[str]) -> list[str]:
    return sorted(names, key=lambda n: COMBINERS[n].rank)
