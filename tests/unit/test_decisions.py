"""Fitted decisions: calibration, combiners, thresholds from costs, auto, saving and loading."""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from ensemble.calibration import Calibration, expit, logit
from ensemble.combiners import COMBINERS, MajorityVote, Objective, Single
from ensemble.decision import Decision, DecisionMismatch
from ledger.stats import decision_metrics
from train.calibration import fit_calibration, fit_logistic
from train.data import synthetic
from train.decide import cross_fitted, fit_decision, fold_calibrations, fold_ids, pick_auto
from train.families import RandomForestTrainer, XGBoostTrainer
from train.fit import TrainConfig, fit, out_of_fold
from train.fit_combiners import FITTING, at_best_threshold, costs, fit_combiner, simplest_first


def _members(n: int, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Three members of different skill and calibration on n labelled dies (1 = pass)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.8).astype(np.int8)
    signal = np.where(y == 1, 1.0, -1.0)
    return {
        "good": expit(1.8 * signal + rng.normal(0, 1.0, n)),
        "fair": expit(1.0 * signal + rng.normal(0, 1.2, n)),
        "overconfident": expit(5.0 * (signal + rng.normal(0, 1.4, n))),
    }, y


def test_calibrations_fit_apply_and_keep_missing_answers_missing() -> None:
    p, y = _members(4000)
    raw = p["overconfident"]
    for kind in ("sigmoid", "isotonic"):
        cal = fit_calibration(kind, raw, y)
        again = Calibration.from_dict(cal.to_dict())
        q = again.apply(np.append(raw, np.nan))
        assert np.isnan(q[-1]) and np.all((q[:-1] >= 0) & (q[:-1] <= 1))

        def loss(v: np.ndarray) -> float:
            v = np.clip(v, 1e-6, 1 - 1e-6)
            return float(-np.mean(y * np.log(v) + (1 - y) * np.log(1 - v)))

        assert loss(q[:-1]) < 0.8 * loss(raw), kind  # the overconfident member is tamed
    with pytest.raises(ValueError, match="kind"):
        Calibration("platt")


def test_fit_logistic_agrees_with_scikit_learn() -> None:
    from sklearn.linear_model import LogisticRegression

    p, y = _members(3000, seed=1)
    x = np.column_stack([logit(v) for v in p.values()])
    coef, intercept = fit_logistic(x, y, l2=0.0)
    ref = LogisticRegression(C=1e6, max_iter=5000, tol=1e-10).fit(x, y)
    assert coef == pytest.approx(ref.coef_[0], rel=1e-3)
    assert intercept == pytest.approx(ref.intercept_[0], rel=1e-3)


def test_the_threshold_moves_with_the_cost_of_an_escape() -> None:
    p, y = _members(6000, seed=2)
    cal = {m: fit_calibration("sigmoid", v, y) for m, v in p.items()}
    rows = []
    for escape_cost in (0.2, 1.0, 5.0, 25.0):
        objective = Objective(escape_cost=escape_cost, overkill_cost=1.0)
        stacked = fit_combiner("stacked", p, y, cal, objective)
        passed, _ = stacked.combine(p)
        m = decision_metrics(passed, y == 1)
        rows.append((stacked.threshold, m["fail_recall"]["value"], m["overkill"]["value"]))
    thresholds, recall, overkill = zip(*rows, strict=True)
    assert list(thresholds) == sorted(thresholds) and thresholds[0] < 0.5 < thresholds[-1]
    assert list(recall) == sorted(recall) and recall[-1] > recall[0] + 0.05
    assert list(overkill) == sorted(overkill)
    # Stacking's output is calibrated: the cost-optimal threshold is near c_e / (c_e + c_o).
    assert thresholds[2] == pytest.approx(5 / 6, abs=0.08)


def test_a_fail_recall_target_is_met_on_the_rows_it_was_fitted_on() -> None:
    p, y = _members(5000, seed=3)
    cal = {m: Calibration() for m in p}
    for target in (0.9, 0.99):
        stacked = fit_combiner("stacked", p, y, cal, Objective(target_fail_recall=target))
        m = decision_metrics(stacked.combine(p)[0], y == 1)
        assert m["fail_recall"]["value"] >= target
    with pytest.raises(ValueError, match="recall"):
        Objective(target_fail_recall=1.5)
    with pytest.raises(ValueError, match="positive"):
        Objective(escape_cost=0)


def test_every_combiner_decides_rows_with_a_missing_member() -> None:
    p, y = _members(3000, seed=4)
    cal = {m: fit_calibration("isotonic", v, y) for m, v in p.items()}
    holes = {m: v.copy() for m, v in p.items()}
    holes["good"][:10] = np.nan
    holes["fair"][10:20] = np.nan
    for name in COMBINERS:
        fitted = fit_combiner(name, p, y, cal, Objective())
        passed, probability = fitted.combine(holes)
        assert not np.isnan(probability).any(), name
        # With every member present nothing changes where no member is missing.
        full_passed, _ = fitted.combine(p)
        assert np.array_equal(passed[20:], full_passed[20:]), name
    stacked = fit_combiner("stacked", p, y, cal, Objective())
    assert {m for m, _, _ in stacked.models} == {
        ("good", "fair", "overconfident"),
        ("good", "fair"),
        ("good", "overconfident"),
        ("fair", "overconfident"),
    }


def test_weights_follow_the_members_skill() -> None:
    p, y = _members(6000, seed=5)
    cal = {m: fit_calibration("sigmoid", v, y) for m, v in p.items()}
    weighted = fit_combiner("weighted", p, y, cal, Objective())
    assert weighted.weights["good"] > weighted.weights["fair"]
    assert sum(weighted.weights.values()) == pytest.approx(1.0)


def test_every_combiner_has_one_fitting_line_simplest_first() -> None:
    # COMBINERS is listed simplest first; FITTING ranks the same combiners in that order.
    assert list(FITTING) == list(COMBINERS)
    assert simplest_first(list(reversed(COMBINERS))) == list(COMBINERS)
    with pytest.raises(KeyError):
        fit_combiner("median", *_members(10), {}, Objective())


def test_a_decision_saves_loads_and_decides_alike() -> None:
    p, y = _members(3000, seed=6)
    fold = fold_ids(y, 5, seed=6)
    tags = {m: f"yield-{m}:run1" for m in p}
    fitted = fit_decision(p, y, fold, Objective(3.0, 1.0), "auto", "run1", tags)
    d = fitted.decision
    again = Decision.from_dict(d.to_dict())
    for name in COMBINERS:
        a, b = d.combiner(name), again.combiner(name)
        assert a.key == b.key == f"{name}:1@run1"
        assert np.array_equal(a.combine(p)[0], b.combine(p)[0])
        assert np.array_equal(a.combine(p)[1], b.combine(p)[1])
    assert again.combiner() is again.combiners[d.chosen]
    assert again.single("good").key == "single:1@run1"
    # Fitted for other models: unfitted rules, and the fitted-only combiners refuse.
    other = again.for_members({m: f"yield-{m}:run2" for m in p})
    assert not other.fitted and other.combiner("majority").key == "majority:1"
    with pytest.raises(DecisionMismatch, match="train again"):
        other.combiner("stacked")
    with pytest.raises(ValueError, match="algorithm"):
        MajorityVote.from_dict({**d.combiners["majority"].to_dict(), "algorithm": "0"})


class _Useless:
    """A member that learned nothing: P(pass) is noise around the pass rate."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.rate = 0.5

    def fit(self, x: np.ndarray, y: np.ndarray) -> None:
        self.rate = float(np.mean(y))

    def describe(self) -> str:
        return "noise"

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.clip(self.rate + self.rng.normal(0, 0.25, len(x)), 0, 1)


@pytest.mark.parametrize("seed", [11, 12])
def test_auto_does_not_pick_the_majority_vote_when_a_useless_member_makes_it_lose(
    seed: int,
) -> None:
    """Real members on a small table: xgboost dominates, a forest of stumps is weak and the
    third member learned nothing. Calibration turns the useless member into a constant
    voter, so the vote becomes "both others agree" and loses to xgboost alone."""
    data = synthetic(4000, seed=seed)
    x, y = data.features[:3000], data.labels[:3000]
    config = TrainConfig.tiny(seed=seed)
    stumps = replace(config, rf_trees=5, rf_max_depth=2)
    makers: dict[str, Any] = {
        "random_forest": functools.partial(RandomForestTrainer, stumps),
        "xgboost": functools.partial(XGBoostTrainer, config),
        "useless": functools.partial(_Useless, seed),
    }
    fold = fold_ids(y, 5, seed=seed)
    p_oof, _ = out_of_fold(x, y, fold, makers, progress=lambda _: None)
    tags = {m: f"{m}:t" for m in makers}
    fitted = fit_decision(p_oof, y, fold, Objective(), "auto", "t", tags)
    mean = {n: float(costs(Objective(), v, y == 1).mean()) for n, v in fitted.oof_passed.items()}
    assert mean["majority"] > mean["xgboost"]  # the vote loses to a member alone
    assert fitted.decision.chosen != "majority", (fitted.reason, mean)
    assert mean[fitted.decision.chosen] < mean["majority"]
    weighted = fitted.decision.combiners["weighted"]
    assert weighted.weights["useless"] < 0.1  # type: ignore[attr-defined]


def test_auto_breaks_ties_towards_the_simpler_combiner() -> None:
    y = np.array([1, 0] * 500)
    same = y == 1
    others, stacked = same.copy(), same.copy()
    others[[1, 3, 5, 7, 9]] = True  # five failing dies called pass
    stacked[[0, 2, 4]] = False  # three good dies called fail
    # Stacked is right on two dies more, net, in a thousand: no evidence, a tie.
    passed = {**{n: others for n in COMBINERS}, "stacked": stacked}
    name, reason = pick_auto(passed, y, Objective())
    assert name == "majority" and "ties go to the simpler" in reason
    worse = same.copy()
    worse[:300] = ~worse[:300]
    passed = {**{n: worse for n in COMBINERS}, "stacked": same}
    name, reason = pick_auto(passed, y, Objective())
    assert name == "stacked" and "lowest" in reason


def test_cross_fitting_never_decides_a_row_with_a_model_fitted_on_it() -> None:
    """A candidate that memorises its rows does no better than chance out of fold."""
    rng = np.random.default_rng(7)
    y = (rng.random(2000) < 0.5).astype(np.int8)
    p = {"a": rng.random(2000), "b": rng.random(2000)}
    fold = fold_ids(y, 5, seed=7)

    def memoriser(pp: Any, yy: np.ndarray, cal: Any) -> Any:
        seen = {k.tobytes(): bool(v) for k, v in zip(pp["a"], yy, strict=True)}

        class Lookup:
            def combine(self, q: Any) -> tuple[np.ndarray, np.ndarray]:
                hit = np.array([seen.get(v.tobytes(), False) for v in q["a"]])
                return hit, hit.astype(float)

        return Lookup()

    calibrations = fold_calibrations(p, y, fold, {"a": "none", "b": "none"})
    passed = cross_fitted(memoriser, p, y, fold, calibrations)
    assert abs(np.mean(passed == (y == 1)) - 0.5) < 0.1


def test_single_uses_only_its_member() -> None:
    p, y = _members(2000, seed=8)
    single = Single(member="good", calibration={"good": fit_calibration("sigmoid", p["good"], y)})
    fitted = at_best_threshold(single, p, y, Objective(4.0, 1.0))
    assert fitted.threshold > 0.5
    changed = {**p, "fair": np.zeros(2000)}
    assert np.array_equal(fitted.combine(p)[0], fitted.combine(changed)[0])


def test_a_trained_decision_judges_a_shifted_lot_it_never_saw() -> None:
    """The bench's check in small: train (tiny), then every member and combiner on a
    process-shifted lot; the shift costs the members accuracy, and every rule decides
    every die of it."""
    from train.decide import decide_all, table
    from train.synthetic import SHIFTED, generate

    data = synthetic(3000, seed=21)
    trained, test_idx = fit(data, TrainConfig.tiny(seed=21), lambda _: None, combiner="auto")
    lot = generate(3000, seed=1021, shift=SHIFTED)
    x = lot[list(data.schema.names)].to_numpy(dtype=np.float32)
    p = {m: t.predict_proba(x) for m, t in trained.models.items()}
    shifted = table(decide_all(trained.decision, p), lot["passed"].to_numpy(), Objective())
    held = trained.held_out
    assert set(shifted) == set(held) == {*trained.models, *COMBINERS}
    assert all(m["n"] == 3000 for m in shifted.values())
    # The shift is real: more failing dies, and the best member is less accurate on them.
    assert 1 - lot["passed"].mean() > 1 - data.labels.mean() + 0.03
    best = max(trained.models, key=lambda m: held[m]["accuracy"]["value"])
    assert shifted[best]["accuracy"]["value"] < held[best]["accuracy"]["value"]
    assert len(test_idx) == 600


def test_the_verdict_says_whether_the_ensemble_earns_its_place() -> None:
    from train.decide import verdict

    y = np.array([1, 0] * 500)
    right = y == 1
    d = Decision.unfitted({"a": "a:1", "b": "b:1", "c": "c:1"})
    d = Decision(
        d.run, d.members, d.objective, "soft", d.combiners, d.singles,
        {"out_of_fold": {m: {"cost": {"value": v}} for m, v in (("a", .1), ("b", .2), ("c", .3))}},
    )  # fmt: skip
    member_wrong = right.copy()
    member_wrong[:60] = ~member_wrong[:60]
    v = verdict({"soft": right, "a": member_wrong}, y, d)
    assert v["best_member"] == "a" and v["only_ensemble_right"] == 60
    assert "earns its place" in v["sentence"] and v["cost_difference_ci95"][1] < 0
    v = verdict({"soft": member_wrong, "a": right}, y, d)
    assert "does worse than a alone" in v["sentence"]
    v = verdict({"soft": right, "a": right}, y, d)
    assert "decides every die as a alone does" in v["sentence"]
