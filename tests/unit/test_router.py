"""The request path below validation, with coroutines standing in for members."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import numpy as np
import pytest

from ensemble.arms import Arm, build_arms
from ensemble.cache import PredictionCache
from ensemble.errors import MembersUnavailable
from ensemble.predictor import EnsemblePredictor
from ensemble.router import Router, SplitConfig

VERSIONS = {"rf": "rf:1", "xgb": "xgb:1", "nn": "nn:1"}


def _router(
    fraction: float,
    fail: frozenset[str] = frozenset(),
    cache: int = 100,
    overflow: frozenset[str] = frozenset(),
):
    """``overflow`` members answer NaN for rows whose first feature is 6 or more."""
    calls: dict[str, list[int]] = {m: [] for m in VERSIONS}

    def member(name: str, p: float):
        async def call(rows: np.ndarray) -> np.ndarray:
            calls[name].append(len(rows))
            if name in fail:
                raise ConnectionError(f"{name} down")
            out = np.full(len(rows), p, dtype=np.float32)
            if name in overflow:
                out[rows[:, 0] >= 6] = np.nan
            return out

        return call

    predictor = EnsemblePredictor(
        {"rf": member("rf", 0.9), "xgb": member("xgb", 0.3), "nn": member("nn", 0.8)}, 1.0
    )
    router = Router(
        predictor,
        PredictionCache(cache),
        SplitConfig(build_arms([Arm("challenger", "xgb", fraction)], list(VERSIONS)), "s"),
        VERSIONS,
        rng=random.Random(0),
    )
    return router, calls


def _records(work: Any) -> list[Any]:
    """The per-row records of a router call."""
    return asyncio.run(work).records()  # type: ignore[no-any-return]


ROWS = np.arange(12, dtype=np.float32).reshape(2, 6)


def test_miss_then_hit_without_member_calls() -> None:
    router, calls = _router(0.0)
    first = _records(router.predict_batch(ROWS, ["a", "b"]))
    assert [r["cached"] for r in first] == [False, False]
    assert first[0]["arm"] == "ensemble" and first[0]["prediction"] == "pass"
    assert first[0]["votes"] == pytest.approx({"rf": 0.9, "xgb": 0.3, "nn": 0.8})
    second = _records(router.predict_batch(ROWS, ["a", "b"]))
    assert [r["cached"] for r in second] == [True, True]
    assert sum(map(len, calls.values())) == 3  # one call per member, for the first request
    assert {k: v for k, v in second[0].items() if k != "cached"} == {
        k: v for k, v in first[0].items() if k != "cached"
    }


def test_batch_sends_only_misses() -> None:
    router, calls = _router(0.0)
    _records(router.predict_batch(ROWS[:1], [None]))
    _records(router.predict_batch(ROWS, [None, None]))
    assert calls["rf"] == [1, 1]  # the second call carried only the new row


def test_challenger_arm_calls_only_the_challenger() -> None:
    router, calls = _router(1.0)
    (result,) = _records(router.predict_batch(ROWS[:1], ["dev-1"]))
    assert result["arm"] == "challenger" and result["votes"] == pytest.approx({"xgb": 0.3})
    assert result["prediction"] == "fail"
    assert calls == {"rf": [], "xgb": [1], "nn": []}


def test_down_challenger_falls_back_to_degraded_ensemble() -> None:
    router, _ = _router(1.0, fail=frozenset({"xgb"}))
    (result,) = _records(router.predict_batch(ROWS[:1], ["dev-1"]))
    assert result["arm"] == "ensemble" and result["degraded"]
    assert result["missing_members"] == ("xgb",)


def test_degraded_answers_are_not_cached() -> None:
    router, calls = _router(0.0, fail=frozenset({"nn"}))
    _records(router.predict_batch(ROWS[:1], [None]))
    (again,) = _records(router.predict_batch(ROWS[:1], [None]))
    assert again["cached"] is False and len(calls["rf"]) == 2


def test_too_few_members_raises() -> None:
    router, _ = _router(0.0, fail=frozenset({"nn", "rf"}))
    with pytest.raises(MembersUnavailable):
        _records(router.predict_batch(ROWS, [None, None]))


def test_mixed_arms_keep_row_order() -> None:
    router, _ = _router(0.5)
    keys = [f"dev-{i}" for i in range(40)]
    rows = np.repeat(ROWS[:1], 40, axis=0)
    results = _records(router.predict_batch(rows, keys))  # type: ignore[arg-type]
    assert [r["arm"] for r in results] == [router.arm_for(k) for k in keys]
    assert {r["arm"] for r in results} == {"ensemble", "challenger"}


def test_a_non_finite_member_answer_degrades_that_row_and_is_never_cached() -> None:
    router, calls = _router(0.0, overflow=frozenset({"nn"}))
    first = _records(router.predict_batch(ROWS, ["a", "b"]))
    assert [(r["degraded"], r["missing_members"]) for r in first] == [(False, ()), (True, ("nn",))]
    assert first[1]["votes"] == pytest.approx({"rf": 0.9, "xgb": 0.3})
    assert first[1]["probability"] == pytest.approx(0.6)
    second = _records(router.predict_batch(ROWS, ["a", "b"]))
    assert [r["cached"] for r in second] == [True, False]
    assert calls["nn"] == [2, 1]


def test_challenger_rows_without_a_probability_go_to_the_ensemble() -> None:
    router, _ = _router(1.0, overflow=frozenset({"xgb"}))
    out = _records(router.predict_batch(ROWS, ["a", "b"]))
    assert (out[0]["arm"], out[0]["degraded"]) == ("challenger", False)
    assert (out[1]["arm"], out[1]["degraded"], out[1]["missing_members"]) == (
        "ensemble",
        True,
        ("xgb",),
    )


def test_combiners_never_share_cached_answers() -> None:
    from ensemble.combiners import MajorityVote, SoftVote

    cache = PredictionCache(100)

    def router(combiner):  # type: ignore[no-untyped-def]
        async def member(rows: np.ndarray, p: float) -> np.ndarray:
            return np.full(len(rows), p, dtype=np.float32)

        calls = {n: (lambda r, p=p: member(r, p)) for n, p in VERSIONS_P.items()}
        predictor = EnsemblePredictor(calls, 1.0, combiner=combiner)
        split = SplitConfig(build_arms([Arm("challenger", "xgb", 0.0)], list(VERSIONS)), "s")
        return Router(predictor, cache, split, VERSIONS)

    majority = _records(router(MajorityVote()).predict_batch(ROWS[:1], ["a"]))[0]
    soft = _records(router(SoftVote()).predict_batch(ROWS[:1], ["a"]))[0]
    # rf 0.9, xgb 0.3, nn 0.3: the vote says fail (1 of 3); the mean 0.5 says pass.
    assert (majority["prediction"], majority["combiner"], majority["cached"]) == (
        "fail",
        "majority:1",
        False,
    )
    assert (soft["prediction"], soft["combiner"], soft["cached"]) == ("pass", "soft:1", False)
    again = _records(router(SoftVote()).predict_batch(ROWS[:1], ["a"]))[0]
    assert again["cached"] and again["combiner"] == "soft:1"


VERSIONS_P = {"rf": 0.9, "xgb": 0.3, "nn": 0.3}


def test_members_split_each_at_its_own_threshold_fresh_and_cached() -> None:
    """rf 0.9, xgb 0.3, nn 0.8: at 0.5 xgb says fail and the members split; with xgb's
    fitted threshold at 0.25 it says pass and they agree, from the cache too."""
    from ensemble.combiners import Single

    router, _ = _router(0.0)
    assert asyncio.run(router.predict_batch(ROWS, ["a", "b"])).split.tolist() == [True, True]
    fitted = Router(
        router.lanes["ensemble"].predictor,
        PredictionCache(100),
        router.split,
        VERSIONS,
        singles={"xgb": Single(member="xgb", threshold=0.25)},
    )
    fresh = asyncio.run(fitted.predict_batch(ROWS, ["a", "b"]))
    cached = asyncio.run(fitted.predict_batch(ROWS, ["a", "b"]))
    assert cached.cached.all()
    assert fresh.split.tolist() == cached.split.tolist() == [False, False]


def test_a_one_member_arm_never_counts_as_split() -> None:
    router, _ = _router(1.0)
    batch = asyncio.run(router.predict_batch(ROWS, ["a", "b"]))
    assert batch.arm_names() == ["challenger", "challenger"] and not batch.split.any()


def test_a_down_challenger_keeps_the_assigned_arm_apart_from_the_serving_arm() -> None:
    router, _ = _router(1.0, fail=frozenset({"xgb"}))
    batch = asyncio.run(router.predict_batch(ROWS, ["dev-1", "dev-2"]))
    assert batch.arm_names() == ["ensemble", "ensemble"]
    assert batch.assigned_names() == ["challenger", "challenger"]
