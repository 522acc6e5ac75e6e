"""Decisions fitted out of fold: calibrations, combiners, thresholds, the tables judging them.

The training split is cut into k folds; each member is trained k times, each time
without one fold, and predicts that fold. These out-of-fold (OOF) probabilities are
the only rows calibrations, combiners and thresholds are fitted on. To compare the
candidates fairly each is scored by cross-fitting on them: fitted on the OOF rows
of k-1 folds and deciding the k-th, so no candidate is judged on rows it was fitted
on. ``auto`` picks by that out-of-fold cost. The held-out split is touched once,
afterwards, for the final table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ensemble.calibration import Calibration
from ensemble.combiners import COMBINERS, Combiner, Objective, Single
from ensemble.decision import Decision
from ledger.stats import decision_metrics, mcnemar_pvalue
from train.calibration import fit_calibration
from train.fit_combiners import at_best_threshold, costs, fit_combiner, loss, simplest_first

AUTO = "auto"
CHOICES = (*COMBINERS, AUTO)
#: Calibrations tried per member; one is kept only where it lowers the OOF log-loss by
#: more than ``CALIBRATION_GAIN`` (relative): identity otherwise.
CALIBRATIONS = ("none", "sigmoid", "isotonic")
CALIBRATION_GAIN = 0.002
#: ``auto``: a combiner within this many standard errors (of the paired per-die cost
#: difference) of the cheapest counts as a tie, and ties go to the simplest.
TIE_STANDARD_ERRORS = 1.0

#: A trained rule is "far worse" than its best member (``yield-ensemble train`` warns and
#: saves it only with ``--force``) when, on the held-out rows, its accuracy is lower than
#: that member's alone at P(pass) >= 0.5 by more than ``FAR_WORSE_POINTS`` percentage
#: points, or its overkill higher by more than that and more than twice the member's.
#: The best member is the one most accurate there. A cost or recall target moves the rule's
#: threshold on purpose; this catches the target that scraps most good dies.
FAR_WORSE_POINTS = 10.0

#: fit(p_pass, actual_pass, calibrations) -> a fitted combiner.
Fitter = Callable[[Mapping[str, np.ndarray], np.ndarray, Mapping[str, Calibration]], Combiner]


def fold_ids(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The fold (0..folds-1) of each row, stratified by label."""
    from sklearn.model_selection import StratifiedKFold

    out = np.empty(len(labels), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for j, (_, rows) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        out[rows] = j
    return out


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def choose_calibration(
    p: np.ndarray, y: np.ndarray, fold: np.ndarray
) -> tuple[str, dict[str, float]]:
    """The calibration kind for one member, by cross-fitted log-loss; and every kind's loss."""
    losses = {}
    for kind in CALIBRATIONS:
        q = np.empty(len(p))
        for j in np.unique(fold):
            held = fold == j
            q[held] = fit_calibration(kind, p[~held], y[~held]).apply(p[held])
        losses[kind] = _log_loss(y, q)
    best = min(losses, key=lambda k: losses[k])
    if losses[best] > losses["none"] * (1 - CALIBRATION_GAIN):
        best = "none"
    return best, losses


def fitters(members: Sequence[str], objective: Objective, run: str) -> dict[str, Fitter]:
    """Every candidate by name: each member alone, then each combiner."""

    def single(member: str) -> Fitter:
        return lambda p, y, cal: at_best_threshold(
            Single(member=member, calibration={member: cal[member]}, run=run), p, y, objective
        )

    def combined(name: str) -> Fitter:
        return lambda p, y, cal: fit_combiner(name, p, y, cal, objective, run)

    out: dict[str, Fitter] = {m: single(m) for m in members}
    out.update({name: combined(name) for name in COMBINERS})
    return out


def fold_calibrations(
    p_oof: Mapping[str, np.ndarray], y: np.ndarray, fold: np.ndarray, kinds: Mapping[str, str]
) -> dict[int, dict[str, Calibration]]:
    """Per fold, each member's calibration fitted without that fold (shared by candidates)."""
    return {
        int(j): {m: fit_calibration(kinds[m], p[fold != j], y[fold != j]) for m, p in p_oof.items()}
        for j in np.unique(fold)
    }


def cross_fitted(
    fit: Fitter,
    p_oof: Mapping[str, np.ndarray],
    y: np.ndarray,
    fold: np.ndarray,
    calibrations: Mapping[int, Mapping[str, Calibration]],
) -> np.ndarray:
    """Each OOF row's decision by a candidate fitted (calibrations too) without its fold.

    ``calibrations``: ``fold_calibrations``, fitted once for every candidate.
    """
    passed = np.empty(len(y), dtype=bool)
    for j in np.unique(fold):
        held = fold == j
        train = {m: p[~held] for m, p in p_oof.items()}
        fitted = fit(train, y[~held], calibrations[int(j)])
        passed[held] = fitted.combine({m: p[held] for m, p in p_oof.items()})[0]
    return passed


def pick_auto(
    passed: Mapping[str, np.ndarray], y: np.ndarray, objective: Objective
) -> tuple[str, str]:
    """The combiner ``auto`` serves, and why, from cross-fitted decisions.

    Cheapest by out-of-fold loss; a simpler combiner within ``TIE_STANDARD_ERRORS``
    standard errors of it (paired, per die) is a tie and wins.
    """
    names = simplest_first([n for n in passed if n in COMBINERS])
    if objective.target_fail_recall is not None:
        losses = {n: loss(objective, passed[n], y) for n in names}
        best = min(names, key=lambda n: losses[n])
        pick = next(n for n in names if losses[n] <= losses[best] + 1e-12)
        return pick, f"least overkill at fail recall >= {objective.target_fail_recall:g}"
    cost = {n: costs(objective, passed[n], y) for n in names}
    best = min(names, key=lambda n: float(cost[n].mean()))
    for name in names:
        diff = cost[name] - cost[best]
        se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
        if diff.mean() <= TIE_STANDARD_ERRORS * se + 1e-12:
            if name == best:
                return name, "lowest out-of-fold cost"
            return name, (
                f"within {TIE_STANDARD_ERRORS:g} standard error of the cheapest ({best}); "
                "ties go to the simpler combiner"
            )
    return best, "lowest out-of-fold cost"  # pragma: no cover - the loop returns at best


@dataclass(frozen=True)
class Fitted:
    """A training run's decision and the evidence behind it."""

    decision: Decision
    calibration_losses: dict[str, dict[str, float]]
    oof_passed: dict[str, np.ndarray]
    reason: str


def fit_decision(
    p_oof: Mapping[str, np.ndarray],
    y: np.ndarray,
    fold: np.ndarray,
    objective: Objective,
    choice: str,
    run: str,
    member_tags: Mapping[str, str],
) -> Fitted:
    """Calibrate, fit and score every candidate on OOF rows; fit the finals on all of them."""
    if choice not in CHOICES:
        raise ValueError(f"combiner {choice!r}; choose one of {CHOICES}")
    members = list(p_oof)
    kinds, losses = {}, {}
    for m in members:
        kinds[m], losses[m] = choose_calibration(p_oof[m], y, fold)
    candidates = fitters(members, objective, run)
    per_fold = fold_calibrations(p_oof, y, fold, kinds)
    oof_passed = {n: cross_fitted(f, p_oof, y, fold, per_fold) for n, f in candidates.items()}
    chosen, reason = (
        pick_auto(oof_passed, y, objective) if choice == AUTO else (choice, "asked for")
    )
    calibration = {m: fit_calibration(kinds[m], p_oof[m], y) for m in members}
    final = {n: f(p_oof, y, calibration) for n, f in candidates.items()}
    decision = Decision(
        run=run,
        members=dict(member_tags),
        objective=objective,
        chosen=chosen,
        combiners={n: final[n] for n in COMBINERS},
        singles={m: final[m] for m in members},  # type: ignore[misc]
        tables={"out_of_fold": table(oof_passed, y, objective)},
    )
    return Fitted(decision, losses, oof_passed, reason)


def table(
    passed: Mapping[str, np.ndarray], y: np.ndarray, objective: Objective
) -> dict[str, dict[str, Any]]:
    """``ledger.stats.decision_metrics`` per candidate."""
    return {
        n: decision_metrics(p, y, objective.escape_cost, objective.overkill_cost)
        for n, p in passed.items()
    }


def decide_all(decision: Decision, p_pass: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every member alone and every combiner of ``decision`` on the same rows."""
    out = {m: s.combine(p_pass)[0] for m, s in decision.singles.items()}
    out.update({n: c.combine(p_pass)[0] for n, c in decision.combiners.items()})
    return out


def verdict(passed: Mapping[str, np.ndarray], y: np.ndarray, decision: Decision) -> dict[str, Any]:
    """The chosen combiner against the member cheapest out of fold, on these rows (McNemar)."""
    oof = decision.tables["out_of_fold"]
    best = min(decision.singles, key=lambda m: oof[m]["cost"]["value"])
    actual = np.asarray(y, dtype=bool)
    ens_right = passed[decision.chosen] == actual
    mem_right = passed[best] == actual
    b, c = int(np.sum(ens_right & ~mem_right)), int(np.sum(~ens_right & mem_right))
    p_value, method = mcnemar_pvalue(b, c)
    # The paired per-die cost difference decides (with 1:1 costs it counts errors, as
    # McNemar does); McNemar on right/wrong is reported beside it.
    o = decision.objective
    diff = costs(o, passed[decision.chosen], actual) - costs(o, passed[best], actual)
    half = 1.96 * float(diff.std(ddof=1)) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
    d = float(diff.mean()) if len(diff) else 0.0
    span = (
        f"cost per die {d:+.4f} against {best} (95% CI {d - half:+.4f} to {d + half:+.4f}); "
        f"right where {best} is wrong on {b} dies, wrong where it is right on {c} "
        f"(McNemar p = {p_value:.3g}"
    )
    if o.escape_cost != o.overkill_cost:
        span += ", which counts every error alike; at these costs the cost decides"
    span += ")"
    name = f"the {decision.chosen} ensemble"
    if b == c == 0 and d == 0:
        sentence = (
            f"On this data {name} decides every die as {best} alone does (McNemar p = 1): its "
            f"fit leans on {best}; the other members only stand in when {best} is missing."
        )
    elif d + half < 0:
        sentence = f"On this data {name} earns its place: {span}."
    elif d - half > 0:
        sentence = f"On this data {name} does worse than {best} alone: {span}."
    else:
        sentence = (
            f"On this data {name} is not distinguishable from {best} alone: {span}. "
            "It buys robustness to a failing member, not a better decision."
        )
    return {
        "chosen": decision.chosen,
        "best_member": best,
        "only_ensemble_right": b,
        "only_member_right": c,
        "p_value": p_value,
        "test": f"McNemar ({method})",
        "cost_difference": d,
        "cost_difference_ci95": [d - half, d + half],
        "sentence": sentence,
    }


def far_worse(
    rule: Mapping[str, Any], members: Mapping[str, Mapping[str, Any]]
) -> tuple[str, list[str]]:
    """The best member (most accurate) of ``members`` and why ``rule`` is far worse than it
    (``FAR_WORSE_POINTS``): one sentence per metric, none if it is not.

    ``rule``, ``members``: ``ledger.stats.decision_metrics`` rows on the same held-out dies,
    the members deciding alone at P(pass) >= 0.5."""
    best = max(members, key=lambda m: members[m]["accuracy"]["value"] or 0.0)
    member, reasons = members[best], []
    acc, acc_best = rule["accuracy"]["value"], member["accuracy"]["value"]
    if acc is not None and acc_best is not None and 100 * (acc_best - acc) > FAR_WORSE_POINTS:
        reasons.append(f"held-out accuracy {100 * acc:.1f}% against {100 * acc_best:.1f}%")
    over, over_best = rule["overkill"]["value"], member["overkill"]["value"]
    if (
        over is not None
        and over_best is not None
        and 100 * (over - over_best) > FAR_WORSE_POINTS
        and over > 2 * over_best
    ):
        reasons.append(f"held-out overkill {100 * over:.1f}% against {100 * over_best:.1f}%")
    return best, reasons


def _cell(m: Mapping[str, Any], scale: float = 100.0, digits: int = 2) -> str:
    if m["value"] is None:
        return "-"
    lo, hi = m["ci95"]
    return f"{scale * m['value']:.{digits}f} [{scale * lo:.{digits}f}, {scale * hi:.{digits}f}]"


def format_table(rows: Mapping[str, Mapping[str, Any]], chosen: str = "") -> str:
    """One line per candidate: accuracy, fail recall, overkill (%), escapes ppm, cost, 95% CIs."""
    header = (
        f"{'model':<16}{'accuracy %':>24}{'fail recall %':>24}{'overkill %':>22}"
        f"{'escapes ppm shipped':>30}{'cost per die':>26}"
    )
    lines = [header, "-" * len(header)]
    for name, m in rows.items():
        mark = " *" if name == chosen else ""
        lines.append(
            f"{name + mark:<16}{_cell(m['accuracy']):>24}{_cell(m['fail_recall']):>24}"
            f"{_cell(m['overkill']):>22}{_cell(m['escapes_ppm'], 1.0, 0):>30}"
            f"{_cell(m['cost'], 1.0, 4):>26}"
        )
    return "\n".join(lines)
