"""Readiness (``entry.health``): a replica with one member restarting stays ready, degraded
and saying so; a member holding other versions than the serving ones, too few members, a
log with nowhere to write or members still loading make it unready."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import prometheus_client as pc
import pytest

from entry import health
from entry.runtime import _CURRENT
from ops.metrics import ServiceMetrics

V1 = {"random_forest": "rf:v1", "xgboost": "xgb:v1", "keras": "nn:v1"}
V2 = {"random_forest": "rf:v2", "xgboost": "xgb:v2", "keras": "nn:v2"}


class Member:
    """A member's proxy: ``info()`` answers holding ``loaded``, raises, or hangs."""

    def __init__(self, name: str, loaded: list[str] | None = None, fails: str = "",
                 hangs: bool = False) -> None:  # fmt: skip
        self.name, self.fails, self.hangs = name, fails, hangs
        self.loaded = [V1[name]] if loaded is None else loaded
        self.to_async = self

    async def info(self) -> dict[str, Any]:
        if self.hangs:
            await asyncio.sleep(30)
        if self.fails:
            raise ConnectionRefusedError(self.fails)
        return {"member": self.name, "loaded": self.loaded}


def _runtime(*members: Member, accepting: str | None = None, prepared: bool = True) -> Any:
    reminded: list[float] = []

    async def probe(call: Callable[[], Any]) -> Any:
        return call()

    version = SimpleNamespace(tags=V1)
    registry = pc.CollectorRegistry()
    return SimpleNamespace(
        log=SimpleNamespace(accepting=lambda: accepting),
        probe=probe,
        switch=SimpleNamespace(prepared=prepared, remind=lambda: reminded.append(1)),
        serving=SimpleNamespace(
            champion=version, candidate=None, state=SimpleNamespace(versions=["v1"])
        ),
        proxies={m.name: m for m in members},
        metrics=ServiceMetrics(registry),
        registry=registry,
        reminded=reminded,
    )


def _whole() -> list[Member]:
    return [Member(name) for name in V1]


def _up(runtime: Any, member: str) -> float | None:
    value: float | None = runtime.registry.get_sample_value(
        "yield_ensemble_member_up", {"member": member}
    )
    return value


def test_every_member_answering_is_ready_and_whole() -> None:
    runtime = _runtime(*_whole())
    verdict = asyncio.run(health.check(runtime))
    assert verdict.ready and verdict.degraded == []
    assert verdict.body() == {"ready": True, "degraded": [],
                              "members": dict.fromkeys(V1, "ok")}  # fmt: skip
    assert [_up(runtime, m) for m in V1] == [1, 1, 1]


def test_a_member_restarting_leaves_the_replica_ready_and_degraded() -> None:
    """A SIGKILLed member, restarting: the other two vote, answers are flagged degraded."""
    members = _whole()
    members[1] = Member("xgboost", fails="connection refused")
    runtime = _runtime(*members)
    verdict = asyncio.run(health.check(runtime))
    assert verdict.ready and verdict.degraded == ["xgboost"]
    assert verdict.members["xgboost"] == "not answering: connection refused"
    assert [_up(runtime, m) for m in V1] == [1, 0, 1]
    assert runtime.reminded == []


def test_a_member_that_hangs_is_degraded_within_the_check_time() -> None:
    members = _whole()
    members[2] = Member("keras", hangs=True)
    started = time.monotonic()
    verdict = asyncio.run(health.check(_runtime(*members)))
    assert time.monotonic() - started < 2 * health.CHECK_S
    assert verdict.ready and verdict.degraded == ["keras"]
    assert verdict.members["keras"] == f"did not answer within {health.CHECK_S} s"


def test_fewer_members_than_a_vote_needs_is_unready() -> None:
    members = [Member("random_forest"), Member("xgboost", fails="down"),
               Member("keras", fails="down")]  # fmt: skip
    verdict = asyncio.run(health.check(_runtime(*members)))
    assert not verdict.ready and verdict.degraded == ["keras", "xgboost"]
    assert verdict.problem is not None and verdict.problem.startswith("1 of 3 members answer")
    assert verdict.body()["error"].startswith("not ready: 1 of 3 members answer")


@pytest.mark.parametrize("other_down", [False, True])
def test_a_member_holding_another_version_makes_it_unready(other_down: bool) -> None:
    """A member process restarted after a new run was trained holds only its own start-up
    run: unready (whatever else is down) until it is told again what serves."""
    members = _whole()
    members[0] = Member("random_forest", loaded=[V2["random_forest"]])
    if other_down:
        members[1] = Member("xgboost", fails="down")
    runtime = _runtime(*members)
    verdict = asyncio.run(health.check(runtime))
    assert not verdict.ready and runtime.reminded == [1]
    assert "member random_forest holds ['rf:v2'], not the serving ['rf:v1']" in (
        verdict.problem or ""
    )


def test_a_log_with_nowhere_to_write_or_members_still_loading_is_unready() -> None:
    stuck = asyncio.run(health.check(_runtime(*_whole(), accepting="spill fails")))
    assert not stuck.ready and stuck.problem == "spill fails"
    loading = asyncio.run(health.check(_runtime(*_whole(), prepared=False)))
    assert not loading.ready and "members still loading" in (loading.problem or "")


@pytest.fixture
def installed() -> Iterator[Callable[[Any], None]]:
    def install(runtime: Any) -> None:
        _CURRENT[:] = [runtime]

    yield install
    _CURRENT.clear()


def _get(path: str) -> httpx.Response:
    async def inner(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"inner"})

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=health.ReadinessRoute(inner))
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as http:
            return await http.get(path)

    return asyncio.run(go())


def test_readyz_answers_the_verdict_as_json(installed: Callable[[Any], None]) -> None:
    assert _get("/readyz").status_code == 418  # no runtime yet: BentoML's own route
    members = _whole()
    members[1] = Member("xgboost", fails="connection refused")
    installed(_runtime(*members))
    r = _get("/readyz")
    assert r.status_code == 200 and r.json()["degraded"] == ["xgboost"]
    assert r.headers["content-type"] == "application/json" and "request_id" in r.json()
    installed(_runtime(*_whole(), accepting="spill fails"))
    r = _get("/readyz")
    assert r.status_code == 503 and r.json()["error"] == "not ready: spill fails"
    assert _get("/predict").status_code == 418


def test_a_slow_database_and_a_hung_member_take_one_check_time_not_two() -> None:
    runtime = _runtime(Member("random_forest"), Member("xgboost"), Member("keras", hangs=True))

    async def slow_probe(call: Callable[[], Any]) -> Any:
        await asyncio.sleep(30)

    runtime.probe = slow_probe
    started = time.monotonic()
    verdict = asyncio.run(health.check(runtime))
    assert time.monotonic() - started < 1.5 * health.CHECK_S
    assert (
        verdict.problem == f"the prediction log database did not answer within {health.CHECK_S} s"
    )
    assert verdict.degraded == ["keras"]
