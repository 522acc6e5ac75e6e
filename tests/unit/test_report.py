"""The A/B report on a controlled scenario whose accuracies are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.arms import Arm, build_arms
from ledger.report import Labelled, build_report, holm

MEMBERS = ("random_forest", "xgboost", "keras")
ARMS = build_arms([Arm("challenger", "xgboost", 0.1)], MEMBERS)
NO_SECOND_ARM = build_arms([Arm("challenger", "xgboost", 0.0)], MEMBERS)


def _scenario(n_ens: int, ens_right: int, n_ch: int, ch_right: int) -> Labelled:
    """Every device really fails 1 time in 4; arms are right on the first ``*_right`` devices."""
    arms, served, actual, ts = [], [], [], []
    for arm, n, right in (("ensemble", n_ens, ens_right), ("challenger", n_ch, ch_right)):
        truth = np.arange(n) % 4 != 0
        pred = truth.copy()
        pred[right:] = ~pred[right:]
        arms += [arm] * n
        served.append(pred)
        actual.append(truth)
        ts.append(np.linspace(0, 3600, n))
    served_pass, actual_pass = np.concatenate(served), np.concatenate(actual)
    is_ens = np.asarray(arms) == "ensemble"
    # Shadow votes on the ensemble arm: random_forest always right, keras always wrong,
    # xgboost equal to the served answer. NaN on the challenger arm (not computed).
    right = np.where(actual_pass, 0.9, 0.1)
    votes = {
        "random_forest": np.where(is_ens, right, np.nan),
        "xgboost": np.where(is_ens, np.where(served_pass, 0.8, 0.2), np.nan),
        "keras": np.where(is_ens, 1 - right, np.nan),
    }
    return Labelled(
        np.concatenate(ts), np.asarray(arms, dtype=object), served_pass, actual_pass, votes
    )


def test_arm_metrics_are_the_known_counts() -> None:
    report = build_report(
        _scenario(900, 846, 100, 88),
        {"ensemble": 5000, "challenger": 560},
        MEMBERS,
        ARMS,
    )
    ens, ch = report["arms"]["ensemble"], report["arms"]["challenger"]
    assert (ens["served"], ens["labelled"], ch["served"], ch["labelled"]) == (5000, 900, 560, 100)
    assert ens["accuracy"]["value"] == pytest.approx(846 / 900)
    assert ch["accuracy"]["value"] == pytest.approx(0.88)
    lo, hi = ens["accuracy"]["ci95"]
    assert lo < 846 / 900 < hi
    # Devices 0, 4, 8, ... fail; the arm is wrong from index `right` on.
    fails_right = len(range(0, 846, 4))
    assert ens["fail_recall"]["k"] == fails_right and ens["fail_recall"]["n"] == 225
    assert ens["confusion"]["actual_fail"]["fail"] == fails_right
    assert (
        sum(ens["confusion"]["actual_pass"].values())
        + sum(ens["confusion"]["actual_fail"].values())
        == 900
    )
    assert ens["timeline"] and sum(b["n"] for b in ens["timeline"]) == 900
    diff = report["comparisons"]["challenger"]
    assert diff["arm_minus_ensemble"] == pytest.approx(0.88 - 846 / 900)
    assert diff["ci95"][0] < diff["arm_minus_ensemble"] < diff["ci95"][1] < 0
    assert diff["p_adjusted"] == diff["p_value"] and diff["correction"].startswith("none")
    assert diff["significant"] == (diff["p_value"] < 0.05)


def test_shadow_comparison_counts_discordant_pairs() -> None:
    report = build_report(_scenario(900, 846, 100, 88), {}, MEMBERS, ARMS)
    rf, xgb, keras = (report["shadow"][m] for m in MEMBERS)
    assert rf["paired"] == 900
    assert (rf["only_ensemble_right"], rf["only_member_right"]) == (0, 54)
    assert rf["member_accuracy"]["value"] == 1.0 and rf["p_value"] < 1e-10
    assert (xgb["only_ensemble_right"], xgb["only_member_right"]) == (0, 0) and xgb[
        "p_value"
    ] == 1.0
    assert keras["member_accuracy"]["value"] == 0.0
    assert report["agreement"]["devices"] == 900
    assert report["agreement"]["all_agree"] == 0.0  # keras always disagrees with random_forest
    assert "random_forest is more accurate" in report["conclusion"]


def test_too_few_labels_says_how_many_more() -> None:
    report = build_report(_scenario(40, 37, 5, 4), {}, MEMBERS, ARMS)
    more = report["sample_size"]["more_needed"]
    assert more["ensemble"] > 1000 and more["challenger"] > 100
    assert more["ensemble"] == report["sample_size"]["needed"]["ensemble"] - 40
    assert "Too few labels to detect a 2-point difference" in report["conclusion"]


def test_a_large_clear_difference_is_concluded() -> None:
    report = build_report(_scenario(9000, 8550, 1000, 850), {}, MEMBERS, ARMS)
    assert report["comparisons"]["challenger"]["significant"]
    assert report["conclusion"].startswith("The ensemble is more accurate")


def test_no_labels_at_all() -> None:
    empty = _scenario(0, 0, 0, 0)
    report = build_report(empty, {"ensemble": 3}, MEMBERS, ARMS)
    assert report["labelled"] == 0 and report["comparisons"] == {}
    assert report["arms"]["ensemble"]["accuracy"]["value"] is None
    assert report["sample_size"]["baseline"].startswith("assumed")
    assert "Too few labels to compare the arms" in report["conclusion"]


def test_without_a_second_arm_there_is_no_sample_size() -> None:
    report = build_report(_scenario(50, 45, 0, 0), {}, MEMBERS, NO_SECOND_ARM)
    assert "no second arm" in report["sample_size"]["note"]


def test_three_arms_are_each_compared_with_holm_correction() -> None:
    arms = build_arms(
        [Arm("challenger", "xgboost", 0.1), Arm("forest", "random_forest", 0.1)], MEMBERS
    )
    base = _scenario(900, 846, 100, 88)
    forest = np.full(100, "forest", dtype=object)
    data = Labelled(
        np.concatenate([base.ts, base.ts[:100] + 1]),
        np.concatenate([base.arm, forest]),
        np.concatenate([base.served_pass, np.ones(100, dtype=bool)]),
        np.concatenate([base.actual_pass, np.arange(100) >= 30]),  # 70 of 100 right
        {m: np.concatenate([v, np.full(100, np.nan)]) for m, v in base.votes.items()},
    )
    report = build_report(data, {}, MEMBERS, arms)
    assert set(report["arms"]) == {"ensemble", "challenger", "forest"}
    assert report["arms"]["forest"]["accuracy"]["k"] == 70
    comparisons = report["comparisons"]
    assert set(comparisons) == {"challenger", "forest"}
    raw = {a: c["p_value"] for a, c in comparisons.items()}
    assert {a: c["p_adjusted"] for a, c in comparisons.items()} == holm(raw)
    assert all(c["correction"] == "Holm" for c in comparisons.values())
    assert comparisons["forest"]["significant"] and "Holm-corrected" in report["conclusion"]
    needed = report["sample_size"]["needed"]
    assert set(needed) == {"ensemble", "challenger", "forest"}


def test_holm_adjusts_step_down_and_stays_monotone() -> None:
    assert holm({"a": 0.01, "b": 0.04, "c": 0.03}) == pytest.approx(
        {"a": 0.03, "b": 0.06, "c": 0.06}
    )
    assert holm({"a": 0.5}) == {"a": 0.5}


def test_each_comparison_carries_an_always_valid_verdict() -> None:
    clear = build_report(_scenario(9000, 8550, 1000, 850), {}, MEMBERS, ARMS)
    seq = clear["comparisons"]["challenger"]["sequential"]
    assert seq["decision"] == "candidate worse" and seq["ci"][1] < 0
    # One orientation in one object: the arm minus the ensemble, fixed and always-valid.
    assert seq["arm_minus_ensemble"] == pytest.approx(0.85 - 0.95)
    assert clear["comparisons"]["challenger"]["arm_minus_ensemble"] == pytest.approx(-0.10)
    assert "difference" not in seq
    assert "ensemble_minus_arm" not in clear["comparisons"]["challenger"]
    # The always-valid interval is wider than the fixed-sample one it sits beside.
    fixed = clear["comparisons"]["challenger"]["ci95"]
    assert seq["ci"][1] - seq["ci"][0] > fixed[1] - fixed[0]
    assert "Read continuously, challenger minus ensemble is -10.0 points" in clear["conclusion"]
    assert "the ensemble is better" in clear["conclusion"]
    early = build_report(_scenario(400, 370, 300, 280), {}, MEMBERS, ARMS)
    seq = early["comparisons"]["challenger"]["sequential"]
    assert seq["decision"] == "keep collecting" and seq["more_labels"] > 0
    assert (
        f"keep collecting, about {seq['more_labels']} more labelled devices"
        in (early["conclusion"])
    )


def test_rows_of_other_model_versions_stay_out_of_the_shadow_and_versions_are_compared() -> None:
    import json

    from ensemble.decision import Decision

    data = _scenario(2000, 1700, 0, 0)  # ensemble rows only, 85% right
    old = {m: f"{m}:old" for m in MEMBERS}
    new = {m: f"{m}:new" for m in MEMBERS}
    # The first 1,000 rows (by time) came from the old models; the new ones are right more.
    versions = np.asarray(
        [json.dumps(old if i < 1000 else new, sort_keys=True) for i in range(2000)], dtype=object
    )
    served = data.actual_pass.copy()  # the new models are always right...
    served[850:1000] = ~served[850:1000]  # ...the old ones wrong on 150 of their 1,000
    data = Labelled(data.ts, data.arm, served, data.actual_pass, data.votes, versions)
    fitted = Decision.unfitted(new)
    fitted = Decision("run-new", new, fitted.objective, "majority", fitted.combiners,
                      fitted.singles)  # fmt: skip
    report = build_report(data, {}, MEMBERS, NO_SECOND_ARM, decision=fitted)
    assert report["shadow"]["random_forest"]["paired"] == 1000  # only the new models' rows
    assert report["shadow_combiners"]["majority"]["paired"] == 1000
    old_row, new_row = report["versions"]
    assert old_row["model_versions"] == old and new_row["newest"]
    assert new_row["accuracy"]["value"] == 1.0
    seq = old_row["newest_against_this"]
    assert seq["decision"] == "candidate better" and seq["ci"][0] > 0
    assert "The newest models are better than those served from" in report["conclusion"]
    # Unfitted rules judge every row.
    everyone = build_report(data, {}, MEMBERS, NO_SECOND_ARM)
    assert everyone["shadow"]["random_forest"]["paired"] == 2000


def test_two_candidate_versions_are_two_lines_never_one() -> None:
    import json

    champion = {m: f"{m}:v1" for m in MEMBERS}
    first = {m: f"{m}:v2" for m in MEMBERS}
    second = {m: f"{m}:v3" for m in MEMBERS}
    n = 300
    arm = np.asarray(["ensemble"] * n + ["candidate"] * (2 * n), dtype=object)
    versions = np.asarray(
        [json.dumps(v, sort_keys=True) for v in [champion] * n + [first] * n + [second] * n],
        dtype=object,
    )
    actual = np.ones(3 * n, dtype=bool)
    served = actual.copy()
    served[n : n + n // 2] = False  # v2 wrong on half its devices, v3 always right
    votes = {m: np.full(3 * n, 0.9) for m in MEMBERS}
    data = Labelled(np.arange(3.0 * n), arm, served, actual, votes, versions)
    report = build_report(data, {}, MEMBERS, NO_SECOND_ARM)
    lines = [(v["arm"], v["model_versions"], v["accuracy"]["value"]) for v in report["versions"]]
    assert lines == [("ensemble", champion, 1.0), ("candidate", first, 0.5),
                     ("candidate", second, 1.0)]  # fmt: skip
    newer = report["versions"][1]["newest_against_this"]
    assert newer["newest_minus_this"] == pytest.approx(0.5) and newer["ci"][0] > 0
    assert "candidate arm" in report["conclusion"]
