"""Outcomes sent at once, to two replicas sharing one database: the history stays a chain.

Each replica is its own ``PredictionLog`` (its own engine and connections), as two
processes would be; only the database can order their writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ledger.predlog import Durability, PredictionLog, outcome_events, outcomes
from tests.unit.conftest import empty_ledger_url, log_devices


@pytest.fixture(params=["sqlite", "postgresql"])
def replicas(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[PredictionLog]]:
    """Two prediction logs on one database."""
    url = empty_ledger_url(request.param, tmp_path)
    logs = [
        PredictionLog(url, flush_interval_s=0.05, durability=Durability(spill_dir=tmp_path / n))
        for n in ("a", "b")
    ]
    yield logs
    for log in logs:
        log.close()


def _at_once(calls: list[Callable[[], list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Run every call in its own thread, released together; their statuses in call order."""
    start = threading.Barrier(len(calls))
    out: list[list[dict[str, Any]]] = [[] for _ in calls]
    errors: list[BaseException] = []

    def run(i: int) -> None:
        start.wait()
        try:
            out[i] = calls[i]()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return [s for statuses in out for s in statuses]


def _history(log: PredictionLog) -> dict[str, list[tuple[str | None, str]]]:
    e = outcome_events.c
    q = sa.select(e.request_id, e.previous, e.actual).order_by(e.id)
    chains: dict[str, list[tuple[str | None, str]]] = {}
    with log.engine.connect() as conn:
        for rid, previous, actual in conn.execute(q):
            chains.setdefault(rid, []).append((previous, actual))
    return chains


def test_identical_outcomes_at_once_are_recorded_once(replicas: list[PredictionLog]) -> None:
    log_devices(replicas[0], ["D1"])
    calls = [
        (lambda log=replicas[i % 2]: log.add_outcomes([("device_id", "D1", "pass")], "line"))
        for i in range(32)
    ]
    statuses = [s["status"] for s in _at_once(calls)]
    assert sorted(statuses) == ["recorded"] + ["unchanged"] * 31
    assert _history(replicas[1]) == {"r-D1": [(None, "pass")]}


def test_alternating_outcomes_at_once_leave_an_exact_chain(
    replicas: list[PredictionLog],
) -> None:
    devices = [f"D{i}" for i in range(30)]
    log_devices(replicas[0], devices)
    calls = []
    for round_ in range(6):
        for i, device in enumerate(devices):
            actual = "pass" if (round_ + i) % 2 else "fail"
            log = replicas[(round_ + i) % 2]
            calls.append(
                lambda log=log, d=device, a=actual: log.add_outcomes([("device_id", d, a)])
            )
    statuses = _at_once(calls)
    chains = _history(replicas[0])
    assert set(chains) == {f"r-{d}" for d in devices}
    with replicas[1].engine.connect() as conn:
        current = dict(conn.execute(sa.select(outcomes.c.request_id, outcomes.c.actual)).all())
    for rid, chain in chains.items():
        # Each row's previous is the row before's value; the first replaced nothing.
        assert [p for p, _ in chain] == [None, *(a for _, a in chain[:-1])], (rid, chain)
        assert all(p != a for p, a in chain), (rid, chain)
        assert current[rid] == chain[-1][1]
    # One answer per event: recorded once per device, replaced for every later event.
    told = [s["status"] for s in statuses]
    assert told.count("recorded") == len(devices)
    assert told.count("replaced") == sum(len(c) - 1 for c in chains.values())
