"""A read that waited too long for a read thread is answered 503, not run (entry.runtime)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ensemble.errors import ReadsBusy, Stopping
from entry import runtime
from entry.runtime import Runtime
from ops.edge import CURRENT, RequestState


def _reads_only() -> Runtime:
    """A Runtime with only what ``Runtime.read`` and ``.feedback`` use: one thread each,
    the stop flag."""
    reads = Runtime.__new__(Runtime)
    reads._reads = ThreadPoolExecutor(1)
    reads._feedback = ThreadPoolExecutor(1)
    reads.stopping = threading.Event()
    return reads


def test_a_read_queued_past_its_wait_is_answered_503_and_not_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under 40 report readers on a real server, reads queued about 60 s and BentoML
    answered 504 (no request id, no Retry-After); past ``READ_WAIT_S`` a read now answers
    ReadsBusy (503) when its turn comes, and what it would have run does not run."""
    monkeypatch.setattr(runtime, "READ_WAIT_S", 0.2)
    reads = _reads_only()
    release = threading.Event()
    ran: list[str] = []

    async def go() -> tuple[str, BaseException | str]:
        CURRENT.set(RequestState("r1"))
        first = asyncio.ensure_future(reads.read(lambda: release.wait(5) and "first"))
        late = asyncio.ensure_future(reads.read(lambda: ran.append("late") or "late"))
        await asyncio.sleep(0.4)  # the late read's request is now 0.4 s old, still queued
        release.set()
        done = await first
        try:
            return done, await late
        except ReadsBusy as exc:
            return done, exc

    try:
        first, late = asyncio.run(go())
    finally:
        reads._reads.shutdown()
    assert first == "first"
    assert isinstance(late, ReadsBusy) and late.status == 503
    assert late.headers() == {"Retry-After": "5"} and ran == []


def test_a_read_in_time_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "READ_WAIT_S", 5.0)
    reads = _reads_only()

    async def go() -> float:
        CURRENT.set(RequestState("r2", started=time.monotonic() - 1.0))
        return await reads.read(lambda x: x * 2, 1.5)

    try:
        assert asyncio.run(go()) == 3.0
    finally:
        reads._reads.shutdown()


def test_reads_still_queued_at_sigterm_are_refused_and_the_one_in_hand_finishes() -> None:
    """SIGTERM with reads queued: the worker drained the whole queue before it could exit
    (40 queued reports: 34.9 s). Now the read in hand finishes and the queued ones answer
    503 ``stopping`` without running: another replica takes them."""
    reads = _reads_only()
    release = threading.Event()
    ran: list[str] = []

    async def go() -> tuple[object, list[BaseException | str]]:
        CURRENT.set(RequestState("r3"))
        first = asyncio.ensure_future(reads.read(lambda: release.wait(5) and "first"))
        queued = [
            asyncio.ensure_future(reads.read(lambda i=i: ran.append(f"q{i}") or "q"))
            for i in range(3)
        ]
        await asyncio.sleep(0.1)
        reads.stopping.set()  # what the SIGTERM handler does
        release.set()
        done = await first
        return done, list(await asyncio.gather(*queued, return_exceptions=True))

    try:
        first, queued = asyncio.run(go())
    finally:
        reads._reads.shutdown()
    assert first == "first" and ran == []
    assert all(isinstance(q, Stopping) and q.status == 503 for q in queued), queued
    assert all(q.kind == "stopping" and "Retry-After" in q.headers() for q in queued)  # type: ignore[union-attr]


def test_feedback_is_recorded_while_every_read_thread_is_busy() -> None:
    """With 40 dashboard readers on a real server, 8 /feedback senders got 1-3 answers in
    6 s: feedback queued in the read threads. It has threads of its own now."""
    reads = _reads_only()
    release = threading.Event()

    async def go() -> tuple[str, bool]:
        CURRENT.set(RequestState("r5"))
        blocked = asyncio.ensure_future(reads.read(lambda: release.wait(5) and "read"))
        await asyncio.sleep(0.05)  # the one read thread is taken
        recorded = await reads.feedback(lambda: "recorded")
        read_still_held = not blocked.done()  # it ends only when released below
        release.set()
        await blocked
        return recorded, read_still_held

    try:
        recorded, read_still_held = asyncio.run(go())
    finally:
        reads._reads.shutdown()
        reads._feedback.shutdown()
    assert recorded == "recorded" and read_still_held


def test_feedback_queued_at_sigterm_is_refused_as_reads_are() -> None:
    reads = _reads_only()
    reads.stopping.set()

    async def go() -> None:
        CURRENT.set(RequestState("r6"))
        await reads.feedback(lambda: "recorded")

    try:
        with pytest.raises(Stopping):
            asyncio.run(go())
    finally:
        reads._reads.shutdown()
        reads._feedback.shutdown()


def test_a_keyword_reaches_the_call_whatever_its_name() -> None:
    """The dashboards pass ``what=`` to their call (a 500 for every dashboard read when the
    queue's own parameters took keywords)."""
    reads = _reads_only()

    async def go() -> tuple[str, str]:
        CURRENT.set(RequestState("r7"))
        echo = lambda **kw: ",".join(f"{k}={v}" for k, v in sorted(kw.items()))  # noqa: E731
        return (await reads.read(echo, what="w", lane="l", pool="p", call="c"),
                await reads.feedback(echo, what="w", lane="l"))  # fmt: skip

    try:
        assert asyncio.run(go()) == ("call=c,lane=l,pool=p,what=w", "lane=l,what=w")
    finally:
        reads._reads.shutdown()
        reads._feedback.shutdown()
