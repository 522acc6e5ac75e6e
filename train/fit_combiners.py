"""Fitting combiners (training only): parameters, thresholds from the fab's costs, simplicity.

``ensemble.combiners`` serves a combiner; this module fits it from out-of-fold
probabilities. ``FITTING`` holds one line per combiner of ``COMBINERS``: its rank
(simplicity: ``auto`` breaks ties towards the lowest), how it learns its parameters
(none but the members' calibrations, by default) and which scores its threshold is
searched among. Every fit ends with the threshold minimising ``loss`` under the
``Objective``. scipy and scikit-learn may be used here; serving never imports this.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np

from ensemble.calibration import EPS, Calibration, logit
from ensemble.combiners import (
    COMBINERS,
    CombinerBase,
    Objective,
    Stacked,
    WeightedSoftVote,
)
from train.calibration import fit_logistic

#: Thresholds tried: quantiles of the scores, at most this many, plus 0.5.
GRID = 400

C = TypeVar("C", bound=CombinerBase)

#: (p_pass, actual_pass, calibrations, run) -> the combiner with its parameters learned
#: and the default threshold.
ParameterFit = Callable[
    [Mapping[str, np.ndarray], np.ndarray, Mapping[str, Calibration], str], CombinerBase
]
#: (combiner, p_pass, its probability) -> the scores whose quantiles are candidate thresholds.
ThresholdScores = Callable[[CombinerBase, Mapping[str, np.ndarray], np.ndarray], np.ndarray]


def costs(objective: Objective, passed: np.ndarray, actual_pass: np.ndarray) -> np.ndarray:
    """Each die's cost, shape (n,): ``escape_cost``, ``overkill_cost`` or 0."""
    passed, actual = np.asarray(passed, bool), np.asarray(actual_pass, bool)
    return np.asarray(
        np.where(passed & ~actual, objective.escape_cost, 0.0)
        + np.where(~passed & actual, objective.overkill_cost, 0.0)
    )


def loss(objective: Objective, passed: np.ndarray, actual_pass: np.ndarray) -> float:
    """What the threshold search minimises: mean cost, or overkill under the recall target."""
    if objective.target_fail_recall is None:
        return float(costs(objective, passed, actual_pass).mean())
    actual = np.asarray(actual_pass, bool)
    caught = np.sum(~passed & ~actual) / max(int(np.sum(~actual)), 1)
    overkill = np.sum(~passed & actual) / max(int(np.sum(actual)), 1)
    return float(overkill) if caught >= objective.target_fail_recall else 1.0 + float(1 - caught)


def _fit_weights(
    p_pass: Mapping[str, np.ndarray],
    actual_pass: np.ndarray,
    calibration: Mapping[str, Calibration],
    run: str,
) -> CombinerBase:
    """``WeightedSoftVote``: softmax weights minimising the out-of-fold log-loss."""
    from scipy.optimize import minimize

    names = list(p_pass)
    none = Calibration()
    stacked = np.vstack([calibration.get(m, none).apply(p_pass[m]) for m in names])
    y = np.asarray(actual_pass, dtype=np.float64)

    def log_loss(theta: np.ndarray) -> float:
        w = np.exp(theta - theta.max())
        p = np.clip((w / w.sum()) @ stacked, EPS, 1 - EPS)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    theta = minimize(log_loss, np.zeros(len(names)), method="Nelder-Mead").x
    w = np.exp(theta - theta.max())
    weights = {m: float(v) for m, v in zip(names, w / w.sum(), strict=True)}
    return WeightedSoftVote(calibration=dict(calibration), run=run, weights=weights)


def _fit_stacked(
    p_pass: Mapping[str, np.ndarray],
    actual_pass: np.ndarray,
    calibration: Mapping[str, Calibration],
    run: str,
) -> CombinerBase:
    """``Stacked``: one logistic regression per set of two or more answering members."""
    names = list(p_pass)
    models = []
    for size in range(len(names), 1, -1):
        for members in itertools.combinations(names, size):
            x = np.column_stack([logit(p_pass[m]) for m in members])
            coef, intercept = fit_logistic(x, actual_pass)
            models.append((members, intercept, tuple(map(float, coef))))
    return Stacked(calibration={}, run=run, models=tuple(models))


def _probabilities(
    combiner: CombinerBase, p_pass: Mapping[str, np.ndarray], probability: np.ndarray
) -> np.ndarray:
    return probability


def _member_probabilities(
    combiner: CombinerBase, p_pass: Mapping[str, np.ndarray], probability: np.ndarray
) -> np.ndarray:
    # A vote changes where a member's calibrated P(pass) crosses the threshold.
    calibrated = combiner.calibrated(p_pass).values()
    return np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1) for p in calibrated])


@dataclass(frozen=True)
class Fitting:
    """How training fits one combiner: its simplicity, its parameters, its threshold's scores."""

    rank: int
    #: None: it learns nothing but the members' calibrations.
    parameters: ParameterFit | None = None
    scores: ThresholdScores = _probabilities


#: One line per combiner of ``ensemble.combiners.COMBINERS`` (a test checks they match).
FITTING: dict[str, Fitting] = {
    "majority": Fitting(rank=0, scores=_member_probabilities),
    "soft": Fitting(rank=1),
    "weighted": Fitting(rank=2, parameters=_fit_weights),
    "stacked": Fitting(rank=3, parameters=_fit_stacked),
}


def fit_combiner(
    name: str,
    p_pass: Mapping[str, np.ndarray],
    actual_pass: np.ndarray,
    calibration: Mapping[str, Calibration],
    objective: Objective,
    run: str = "",
) -> CombinerBase:
    """The combiner ``name`` with parameters and threshold learned from out-of-fold rows.

    ``p_pass``: member -> (n,) P(pass), no NaN; ``actual_pass``: (n,) labels, 1 = pass;
    ``calibration``: member -> its fitted calibration. KeyError for an unknown name.
    """
    fitting = FITTING[name]
    if fitting.parameters is None:
        fitted = COMBINERS[name](calibration=dict(calibration), run=run)
    else:
        fitted = fitting.parameters(p_pass, actual_pass, calibration, run)
    return at_best_threshold(fitted, p_pass, actual_pass, objective)


def at_best_threshold(
    combiner: C, p_pass: Mapping[str, np.ndarray], actual_pass: np.ndarray, objective: Objective
) -> C:
    """``combiner`` with the threshold minimising ``objective`` on these rows."""
    return replace(combiner, threshold=best_threshold(combiner, p_pass, actual_pass, objective))


def best_threshold(
    combiner: CombinerBase,
    p_pass: Mapping[str, np.ndarray],
    actual_pass: np.ndarray,
    objective: Objective,
) -> float:
    """The threshold minimising ``objective`` on these rows (ties: the one nearest 0.5)."""
    fitting = FITTING.get(combiner.name)
    score = fitting.scores if fitting else _probabilities
    probability = combiner.probability(p_pass)
    scores = score(combiner, p_pass, probability)
    scores = scores[~np.isnan(scores)]
    grid = np.unique(np.concatenate([np.quantile(scores, np.linspace(0, 1, GRID)), [0.5]]))
    # Between two neighbouring scores every threshold decides alike: take the midpoints.
    grid = np.unique(np.concatenate([grid, (grid[1:] + grid[:-1]) / 2]))
    losses = np.array(
        [loss(objective, combiner.passes(p_pass, probability, t), actual_pass) for t in grid]
    )
    best = np.flatnonzero(losses <= losses.min() + 1e-12)
    return float(grid[best[np.argmin(np.abs(grid[best] - 0.5))]])


def simplest_first(names: Sequence[str]) -> list[str]:
    """Combiner ``names`` ordered by ``FITTING`` rank, simplest first."""
    return sorted(names, key=lambda n: FITTING[n].rank)
