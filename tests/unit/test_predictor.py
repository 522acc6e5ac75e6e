"""The ensemble arm and the coalescer, with plain coroutines standing in for members."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from ensemble.coalesce import Coalescer
from ensemble.errors import MembersUnavailable
from ensemble.predictor import EnsemblePredictor


def member(p: float, delay: float = 0.0, fail: bool = False, log: list[int] | None = None):
    async def call(rows: np.ndarray) -> np.ndarray:
        if log is not None:
            log.append(len(rows))
        await asyncio.sleep(delay)
        if fail:
            raise ConnectionError("member down")
        return np.full(len(rows), p, dtype=np.float32)

    return call


ROWS = np.zeros((3, 6), dtype=np.float32)


def test_members_are_called_in_parallel() -> None:
    predictor = EnsemblePredictor(
        {"a": member(0.9, 0.2), "b": member(0.8, 0.2), "c": member(0.1, 0.2)}, timeout_s=2
    )
    start = time.perf_counter()
    result = asyncio.run(predictor.predict(ROWS))
    assert time.perf_counter() - start < 0.45  # three 0.2 s members, not 0.6 s
    assert result.passed.tolist() == [True] * 3
    assert result.missing_at() == [()] * 3


def test_one_failed_member_degrades() -> None:
    predictor = EnsemblePredictor(
        {"a": member(0.9), "b": member(0.2), "c": member(0.9, fail=True)}, timeout_s=1
    )
    result = asyncio.run(predictor.predict(ROWS))
    assert set(result.missing) == {"c"} and result.missing_at() == [("c",)] * 3
    assert "ConnectionError" in result.missing["c"]
    # 1-1 tie between a and b goes to the mean probability 0.55
    assert result.passed.tolist() == [True] * 3
    assert result.probability == pytest.approx([0.55] * 3)


def test_slow_member_times_out_and_degrades() -> None:
    predictor = EnsemblePredictor(
        {"a": member(0.9), "b": member(0.9), "c": member(0.1, delay=5)}, timeout_s=0.1
    )
    start = time.perf_counter()
    result = asyncio.run(predictor.predict(ROWS))
    assert time.perf_counter() - start < 1
    assert "timed out" in result.missing["c"]


def test_a_non_finite_answer_fails_that_member_for_that_row_only() -> None:
    async def keras_overflow(rows: np.ndarray) -> np.ndarray:
        return np.asarray([0.9, np.nan, np.inf, 1.5], dtype=np.float32)[: len(rows)]

    seen: list[tuple[str, float | None, str | None, int]] = []
    predictor = EnsemblePredictor(
        {"a": member(0.9), "b": member(0.2), "keras": keras_overflow},
        timeout_s=1,
        observer=lambda *args: seen.append(args),
    )
    result = asyncio.run(predictor.predict(np.zeros((4, 6), dtype=np.float32)))
    assert result.missing == {}
    assert result.missing_at() == [(), ("keras",), ("keras",), ("keras",)]
    # Row 0 is a 2-1 pass; rows 1-3 a 1-1 tie between a and b, to the mean 0.55.
    assert result.passed.tolist() == [True] * 4
    assert result.probability == pytest.approx([2.0 / 3, 0.55, 0.55, 0.55])
    assert ("keras", None, "non_finite", 3) in seen


def test_a_row_left_with_one_probability_is_unavailable() -> None:
    async def nan(rows: np.ndarray) -> np.ndarray:
        return np.full(len(rows), np.nan, dtype=np.float32)

    predictor = EnsemblePredictor({"a": member(0.9), "b": nan, "c": nan}, timeout_s=1)
    with pytest.raises(MembersUnavailable, match="rows \\[0, 1, 2\\]"):
        asyncio.run(predictor.predict(ROWS))


def test_two_missing_members_is_unavailable() -> None:
    predictor = EnsemblePredictor(
        {"a": member(0.9), "b": member(0.9, fail=True), "c": member(0.1, delay=5)}, timeout_s=0.1
    )
    with pytest.raises(MembersUnavailable, match="1 of 3 member models answered") as err:
        asyncio.run(predictor.predict(ROWS))
    assert set(err.value.failures) == {"b", "c"}


def test_coalescer_merges_concurrent_requests_and_splits_results() -> None:
    sizes: list[int] = []

    async def echo(rows: np.ndarray) -> np.ndarray:
        sizes.append(len(rows))
        await asyncio.sleep(0.05)
        return rows[:, 0].copy()

    async def run() -> list[np.ndarray]:
        coalescer = Coalescer(echo, max_rows=1000, max_in_flight=1)
        inputs = [np.full((i + 1, 2), i, dtype=np.float32) for i in range(20)]
        return await asyncio.gather(*(coalescer.submit(x) for x in inputs))

    outputs = asyncio.run(run())
    for i, out in enumerate(outputs):
        assert out.tolist() == [float(i)] * (i + 1)  # each caller gets its own rows back
    assert sizes[0] == 1  # the first request is not held back
    assert len(sizes) == 2  # the other 19 travelled together
    assert sum(sizes) == sum(range(1, 21))


def test_coalescer_respects_max_rows() -> None:
    sizes: list[int] = []

    async def run() -> None:
        coalescer = Coalescer(member(0.5, 0.01, log=sizes), max_rows=10, max_in_flight=1)
        await asyncio.gather(*(coalescer.submit(np.zeros((4, 2))) for _ in range(10)))

    asyncio.run(run())
    assert max(sizes[1:]) <= 10 and sum(sizes) == 40


def test_coalescer_failure_reaches_every_waiter_and_recovers() -> None:
    calls = {"n": 0}

    async def flaky(rows: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        await asyncio.sleep(0.01)
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return np.ones(len(rows))

    async def run() -> list[object]:
        coalescer = Coalescer(flaky, max_in_flight=1)
        first = await asyncio.gather(
            *(coalescer.submit(np.zeros((1, 2))) for _ in range(3)), return_exceptions=True
        )
        second = await coalescer.submit(np.zeros((2, 2)))
        return [*first, second]

    *first, second = asyncio.run(run())
    assert isinstance(first[0], RuntimeError)
    assert second.tolist() == [1.0, 1.0]


def test_coalescer_rejects_wrong_result_length() -> None:
    async def short(rows: np.ndarray) -> np.ndarray:
        return np.ones(len(rows) - 1)

    with pytest.raises(RuntimeError, match="returned 1 results for 2 rows"):
        asyncio.run(Coalescer(short).submit(np.zeros((2, 2))))
