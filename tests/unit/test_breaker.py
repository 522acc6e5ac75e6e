"""A member that just failed is not waited for again at once (ensemble.breaker)."""

from __future__ import annotations

import asyncio

import numpy as np

from ensemble.breaker import Breaker
from ensemble.predictor import EnsemblePredictor


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_open_after_a_failure_then_one_trial_then_closed_or_longer() -> None:
    clock = Clock()
    b = Breaker(1.0, most_s=3.0, clock=clock)
    assert b.admit() == (True, "")
    b.failed("timed out after 2 s")
    admitted, why = b.admit()
    assert not admitted and "timed out after 2 s" in why and "asked again in 1.0 s" in why
    clock.now += 1.0
    assert b.admit() == (True, "trial")
    assert b.admit()[0] is False  # one trial at a time
    b.failed("ConnectionError")
    clock.now += 1.5
    assert b.admit()[0] is False  # twice as long now: 2 s
    clock.now += 0.5
    assert b.admit() == (True, "trial")
    b.failed("again")
    clock.now += 3.0  # capped at most_s
    assert b.admit() == (True, "trial")
    b.succeeded()
    assert b.closed and b.admit() == (True, "")


def test_a_cancelled_trial_lets_the_next_call_try() -> None:
    clock = Clock()
    b = Breaker(1.0, clock=clock)
    b.failed("x")
    clock.now += 1.0
    assert b.admit() == (True, "trial")
    b.abandoned()
    assert b.admit() == (True, "trial")


def test_a_dead_member_is_waited_for_once_then_skipped_until_its_trial() -> None:
    calls: list[str] = []
    dead = True

    def member(name: str, p: float):
        async def call(rows: np.ndarray) -> np.ndarray:
            calls.append(name)
            if name == "c" and dead:
                await asyncio.sleep(0.3)  # a killed member's socket: no answer in time
            return np.full(len(rows), p, dtype=np.float32)

        return call

    clock = Clock()
    breakers = {m: Breaker(1.0, clock=clock) for m in "abc"}
    failures: list[tuple[str, str | None]] = []
    predictor = EnsemblePredictor(
        {m: member(m, 0.9) for m in "abc"},
        timeout_s=0.05,
        breakers=breakers,
        observer=lambda m, s, f, n: failures.append((m, f)),
    )
    rows = np.zeros((2, 3), dtype=np.float32)

    async def go() -> list:
        out = [await predictor.predict(rows)]  # waits 0.05 s for c, then without it
        out.append(await predictor.predict(rows))  # c not asked at all
        clock.now += 1.0
        out.append(await predictor.predict(rows))  # c's trial: times out again
        nonlocal dead
        dead = False
        await asyncio.sleep(0.35)  # the timed-out calls let go of the member's call slots
        clock.now += 2.0
        out.append(await predictor.predict(rows))  # c's trial answers: closed
        return out

    first, second, third, fourth = asyncio.run(go())
    assert "timed out" in first.missing["c"]
    assert second.missing["c"].startswith("not asked: it failed timed out")
    assert calls.count("c") == 3 and calls.count("a") == 4
    assert ("c", "breaker_open") in failures and failures.count(("c", "timeout")) == 2
    assert "timed out" in third.missing["c"] and not fourth.missing
    assert breakers["c"].closed


def test_calls_in_flight_when_a_member_dies_open_its_breaker_once() -> None:
    """Four requests in flight when a member dies all fail; that is one outage, one
    cool-off. Each failure used to double the wait (1, 2, 4, 8 s): on a real server the
    restarted xgboost member was left out 8 s after it answered again."""
    calls: list[str] = []
    dead = True

    async def c(rows: np.ndarray) -> np.ndarray:
        calls.append("c")
        if dead:
            await asyncio.sleep(0.3)
        return np.full(len(rows), 0.9, dtype=np.float32)

    async def ok(rows: np.ndarray) -> np.ndarray:
        return np.full(len(rows), 0.9, dtype=np.float32)

    clock = Clock()
    breakers = {m: Breaker(1.0, clock=clock) for m in "abc"}
    predictor = EnsemblePredictor({"a": ok, "b": ok, "c": c}, timeout_s=0.05, breakers=breakers)
    rows = np.zeros((1, 3), dtype=np.float32)

    async def go() -> tuple[object, ...]:
        nonlocal dead
        first = await asyncio.gather(*(predictor.predict(rows) for _ in range(4)))
        dead = False
        await asyncio.sleep(0.35)  # the timed-out calls let go of the member's call slots
        asked = len(calls)
        clock.now += 1.0  # one cool-off later
        return *first, asked, await predictor.predict(rows)

    *first, asked, after = asyncio.run(go())
    assert all("timed out" in r.missing["c"] for r in first)  # type: ignore[attr-defined]
    assert len(calls) == asked + 1  # the trial
    assert not after.missing and breakers["c"].closed  # type: ignore[attr-defined]


def test_a_call_let_through_before_the_breaker_opened_neither_doubles_nor_ends_a_trial() -> None:
    clock = Clock()
    b = Breaker(1.0, clock=clock)
    assert b.admit() == (True, "") and b.admit() == (True, "")
    b.failed("reset", trial=False)
    clock.now += 1.0
    assert b.admit() == (True, "trial")
    b.failed("timed out", trial=False)  # the second early call: not the trial
    b.abandoned(trial=False)
    assert b.admit()[0] is False  # the trial is still in flight: no second one
    b.failed("refused", trial=True)  # the trial failed: twice as long
    clock.now += 1.5
    assert b.admit()[0] is False
    clock.now += 0.5
    assert b.admit() == (True, "trial")
