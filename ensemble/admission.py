"""Admission: big requests take turns before any work starts, small ones never wait behind them.

A request of at most ``small`` dies (a single die, a short batch) is admitted at once.
A bigger one (a wafer) is admitted when the dies of big requests in flight plus its own
stay within ``max_bulk_dies`` and the prediction log has room for its rows with a
reserve left for small requests (``room(n, in_flight)``); until then it waits its turn, first
come first served, at most ``wait_s``, and is then refused with 429 and Retry-After.
A queue already holding ``max_queued_dies`` is refused at once. So three concurrent
50,000-die wafers are answered one after another, whole, instead of filling the log's
queue and starving single dies, and members are never handed more than they can answer
within their time limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

from ensemble.errors import Overloaded

#: ``room(n, in_flight)``: whether the log has room for ``n`` more rows beside the
#: ``in_flight`` dies already admitted (``ensemble.pipeline.Evidence.room``).
Room = Callable[[int, int], bool]


class Admission:
    """Admits requests by their number of dies; see the module docstring."""

    def __init__(
        self,
        max_bulk_dies: int,
        wait_s: float,
        small: int = 1000,
        max_queued_dies: int | None = None,
    ) -> None:
        self.max_bulk_dies = max_bulk_dies
        self.wait_s = wait_s
        self.small = small
        self.max_queued_dies = max_queued_dies if max_queued_dies is not None else 4 * max_bulk_dies
        self.in_flight = 0
        self._queue: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._queued_dies = 0

    @property
    def queued(self) -> int:
        """Big requests waiting their turn."""
        return len(self._queue)

    @contextlib.asynccontextmanager
    async def admit(self, n: int, room: Room) -> AsyncIterator[None]:
        """Hold a place for ``n`` dies while the body runs; ``Overloaded`` (429) when the
        turn does not come within ``wait_s`` or the queue is full."""
        if n <= self.small:
            yield
            return
        await self._acquire(n, room)
        try:
            yield
        finally:
            self.in_flight -= n
            self._wake(room)

    def _fits(self, n: int, room: Room) -> bool:
        # One big request always fits an idle service, whatever its size. The log must
        # have room for the dies in flight too: they are recorded as soon as answered.
        within = self.in_flight == 0 or self.in_flight + n <= self.max_bulk_dies
        return within and room(n, self.in_flight)

    async def _acquire(self, n: int, room: Room) -> None:
        if not self._queue and self._fits(n, room):
            self.in_flight += n
            return
        if self._queued_dies + n > self.max_queued_dies:
            raise self._refusal(n, f"{self._queued_dies} dies already wait their turn")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (n, waiter)
        self._queue.append(entry)
        self._queued_dies += n
        deadline = time.monotonic() + self.wait_s
        admitted = False
        try:
            while not waiter.done():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._refusal(n, f"its turn did not come within {self.wait_s:g} s")
                # The log drains on its own thread: look again every 50 ms.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(waiter), min(left, 0.05))
                self._wake(room)
            admitted = True
        finally:
            if entry in self._queue:
                self._queue.remove(entry)
                self._queued_dies -= n
            if not waiter.done():
                waiter.cancel()
            elif not admitted:  # admitted, but the caller left (a disconnect): give it back
                self.in_flight -= n
                self._wake(room)

    def _wake(self, room: Room) -> None:
        """Admit waiting requests in order while the first one fits."""
        while self._queue:
            n, waiter = self._queue[0]
            if waiter.done():  # gave up
                self._queue.popleft()
                self._queued_dies -= n
                continue
            if not self._fits(n, room):
                return
            self._queue.popleft()
            self._queued_dies -= n
            self.in_flight += n
            waiter.set_result(None)

    def _refusal(self, n: int, why: str) -> Overloaded:
        error = Overloaded(
            f"busy: a request of {n} dies waits for capacity and {why}; try again later "
            f"(at most {self.max_bulk_dies} dies of large requests are answered at once)"
        )
        error.retry_after_s = max(1, math.ceil(self.wait_s / 4))
        return error
