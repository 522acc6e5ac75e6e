"""Coalesce concurrent calls to one member into a single batched call.

Every inter-service call costs milliseconds of CPU (HTTP, serialisation) on a
machine where all three models together take well under a millisecond per row.
Under load, sending one call per request per member wastes most of the CPU on
transport, so requests that arrive while a call is in flight wait for it to
finish and then travel together. An idle service dispatches at once, so a lone
request never waits for company.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

import numpy as np

MemberCall = Callable[[np.ndarray], Awaitable[np.ndarray]]


class Coalescer:
    """Batch rows for one member across concurrent callers.

    At most ``max_in_flight`` calls run at once; rows that arrive meanwhile are
    queued and sent together (up to ``max_rows`` per call) when a slot frees.
    """

    def __init__(self, call: MemberCall, max_rows: int = 16384, max_in_flight: int = 2) -> None:
        if max_rows < 1 or max_in_flight < 1:
            raise ValueError("max_rows and max_in_flight must be at least 1")
        self._call = call
        self._max_rows = max_rows
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._queue: deque[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = deque()

    async def submit(self, rows: np.ndarray) -> np.ndarray:
        """P(pass) for ``rows`` (n, k), shaped (n,)."""
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.append((rows, future))
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        while self._queue and self._in_flight < self._max_in_flight:
            batch: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = []
            n_rows = 0
            while self._queue and (not batch or n_rows + len(self._queue[0][0]) <= self._max_rows):
                item = self._queue.popleft()
                if item[1].done():  # the caller gave up (timeout, disconnect)
                    continue
                batch.append(item)
                n_rows += len(item[0])
            if not batch:
                continue
            self._in_flight += 1
            task = asyncio.ensure_future(self._run(batch))
            task.add_done_callback(self._finished)

    def _finished(self, _task: asyncio.Task[None]) -> None:
        self._in_flight -= 1
        self._dispatch()

    async def _run(self, batch: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]) -> None:
        rows = batch[0][0] if len(batch) == 1 else np.concatenate([r for r, _ in batch])
        try:
            p_pass = np.asarray(await self._call(rows)).reshape(-1)
            if len(p_pass) != len(rows):
                raise RuntimeError(f"member returned {len(p_pass)} results for {len(rows)} rows")
        except BaseException as exc:  # every waiter must hear about the failure
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(exc))
            if not isinstance(exc, Exception):
                raise
            return
        start = 0
        for r, future in batch:
            if not future.done():
                future.set_result(p_pass[start : start + len(r)])
            start += len(r)
