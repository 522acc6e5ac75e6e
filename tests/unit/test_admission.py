"""Big requests take turns; small ones pass; a full queue or a long wait is a clean 429."""

from __future__ import annotations

import asyncio

import pytest

from ensemble.admission import Admission
from ensemble.errors import Overloaded


def _always(n: int, in_flight: int) -> bool:
    return True


def test_small_requests_never_wait_behind_big_ones() -> None:
    async def run() -> list[str]:
        admission = Admission(max_bulk_dies=50_000, wait_s=5)
        order: list[str] = []
        release = asyncio.Event()

        async def wafer(name: str) -> None:
            async with admission.admit(50_000, _always):
                order.append(f"{name} starts")
                await release.wait()
                order.append(f"{name} ends")

        async def single() -> None:
            async with admission.admit(1, _always):
                order.append("single")

        first = asyncio.create_task(wafer("w1"))
        second = asyncio.create_task(wafer("w2"))
        await asyncio.sleep(0.01)
        assert admission.in_flight == 50_000 and admission.queued == 1
        await single()
        release.set()
        await asyncio.gather(first, second)
        assert admission.in_flight == 0 and admission.queued == 0
        return order

    assert asyncio.run(run()) == ["w1 starts", "single", "w1 ends", "w2 starts", "w2 ends"]


def test_a_wafer_waits_for_room_in_the_log_then_runs() -> None:
    async def run() -> bool:
        room = {"free": False}
        admission = Admission(max_bulk_dies=50_000, wait_s=5)

        async def drain() -> None:
            await asyncio.sleep(0.1)
            room["free"] = True

        drainer = asyncio.create_task(drain())
        async with admission.admit(10_000, lambda n, f: room["free"]):
            ran = room["free"]
        await drainer
        return ran

    assert asyncio.run(run())


def test_no_turn_within_the_wait_is_a_429_with_retry_after() -> None:
    async def run() -> None:
        admission = Admission(max_bulk_dies=50_000, wait_s=0.1)
        with pytest.raises(Overloaded) as err:
            async with admission.admit(10_000, lambda n, f: False):
                pass
        assert err.value.status == 429 and "Retry-After" in err.value.headers()
        assert admission.in_flight == 0 and admission.queued == 0

    asyncio.run(run())


def test_a_full_queue_refuses_at_once() -> None:
    async def run() -> None:
        admission = Admission(max_bulk_dies=10_000, wait_s=5, max_queued_dies=15_000)
        hold = asyncio.Event()

        async def wafer() -> None:
            async with admission.admit(10_000, _always):
                await hold.wait()

        tasks = [asyncio.create_task(wafer()) for _ in range(2)]  # one runs, one waits
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded, match="already wait"):
            async with admission.admit(10_000, _always):
                pass
        hold.set()
        await asyncio.gather(*tasks)

    asyncio.run(run())


def test_a_client_that_leaves_while_waiting_gives_its_place_back() -> None:
    async def run() -> None:
        admission = Admission(max_bulk_dies=10_000, wait_s=5)
        hold = asyncio.Event()

        async def wafer() -> None:
            async with admission.admit(10_000, _always):
                await hold.wait()

        running = asyncio.create_task(wafer())
        waiting = asyncio.create_task(wafer())
        await asyncio.sleep(0.01)
        waiting.cancel()  # the client disconnected
        hold.set()
        await running
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert admission.in_flight == 0 and admission.queued == 0

    asyncio.run(run())


def test_the_log_must_have_room_for_the_dies_in_flight_too() -> None:
    """Four 2,000-die wafers at once with room for 2,700 rows: one runs at a time (the
    rows in flight count, not only those already recorded)."""

    async def run() -> int:
        admission = Admission(max_bulk_dies=50_000, wait_s=5)
        most = 0

        async def wafer() -> None:
            nonlocal most
            async with admission.admit(2_000, lambda n, f: n + f <= 2_700):
                most = max(most, admission.in_flight)
                await asyncio.sleep(0.02)

        await asyncio.gather(*(wafer() for _ in range(4)))
        return most

    assert asyncio.run(run()) == 2_000
