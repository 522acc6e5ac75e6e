"""One replica's side of the serving state: follow the shared state, change it, guard it.

The state lives in the ledger (``ledger.serving.ServingStore``, handed in as ``store``);
what this replica serves is ``serving``, a ``ensemble.fleet.Snapshot`` replaced whole.
``run`` loads the serving versions into the members, then reads the state's revision
every ``poll_s`` and switches when it moved; ``change`` makes an admin's change here
first (refused before anything is written if it cannot serve); the guardrail stops a
candidate the report finds worse.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from ensemble.errors import ServingUnavailable as ServingUnavailable
from ensemble.fleet import Fleet, Snapshot
from ensemble.serving import InvalidChange, ServingState

logger = logging.getLogger(__name__)
#: How often the members are told again what serves: they unload versions no longer
#: used (``models.services``), and a member restarted since reloads what it lost (cheap
#: when they hold it already: one small call per member).
REMIND_S = 5.0


class Store(Protocol):
    """What the switchboard needs of the ledger's serving state (``ledger.serving``)."""

    def describe(self, exc: BaseException) -> str:
        """One line saying what went wrong in ``exc``, a failure of this store, fit for an
        answer: the database's own message, without the statement or a password."""
        ...

    def read(self) -> ServingState | None: ...

    def revision(self) -> int: ...

    def history(self, limit: int = 50) -> list[dict[str, Any]]: ...

    def change(
        self,
        make: Callable[[ServingState | None], ServingState | None],
        changed_by: str,
        action: str,
        reason: str | None = None,
    ) -> tuple[ServingState, bool]: ...


class Observer(Protocol):
    """Told of what happens (``ops.metrics.ServiceMetrics``)."""

    def serving(self, snapshot: Snapshot) -> None: ...

    def serving_change(self, action: str) -> None: ...

    def serving_sync_failure(self) -> None: ...


class Switchboard:
    """What this replica serves, kept in step with the ledger's serving state.

    ``report(since)``: the A/B report from ``since``, for the guardrail (None: no guardrail).
    """

    def __init__(
        self,
        fleet: Fleet,
        store: Store,
        state: ServingState,
        observer: Observer,
        poll_s: float,
        report: Callable[[float | None], Mapping[str, Any]] | None = None,
        guardrail_interval_s: float = 60.0,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.fleet = fleet
        self.store = store
        self.observer = observer
        self.poll_s = poll_s
        self.report = report
        self.guardrail_interval_s = guardrail_interval_s
        #: True once the worker drains to exit: nothing new is served, so nothing is
        #: followed (the members may already be gone: no error for that).
        self.stopping = stopping
        #: What serves here; a request reads it once and uses only that snapshot.
        self.serving: Snapshot = fleet.snapshot(state)
        #: The members hold the serving versions (readiness waits for it).
        self.prepared = False
        #: When the members are next told what serves (``remind`` brings it forward).
        self.remind_at = 0.0
        self._lock = asyncio.Lock()
        observer.serving(self.serving)

    async def run(self) -> None:
        """Load the serving versions into the members, then follow the ledger's state."""
        while not self.prepared:
            if self.stopping():
                return
            try:
                await self.fleet.prepare(self.serving.state.versions)
                self.prepared = True
            except Exception as exc:  # members still starting
                logger.info("members not prepared yet: %s", exc)
                await asyncio.sleep(1.0)
        guard_at = time.monotonic() + self.guardrail_interval_s
        self.remind_at = time.monotonic() + REMIND_S
        while True:
            await asyncio.sleep(self.poll_s)
            if self.stopping():
                logger.info("stopped following the serving state: the worker is stopping")
                return
            try:
                await self.follow()
                if time.monotonic() >= self.remind_at:
                    self.remind_at = time.monotonic() + REMIND_S
                    await self.fleet.prepare(self.serving.state.versions)
                if self.report is not None and time.monotonic() >= guard_at:
                    guard_at = time.monotonic() + self.guardrail_interval_s
                    await self.guard()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.stopping():
                    continue  # the members stop with the worker; the next round returns
                # Keep serving the last state this replica could build; say so loudly.
                self.observer.serving_sync_failure()
                logger.error("cannot follow the serving state: %s", exc)

    def remind(self) -> None:
        """Tell the members what serves at the next poll (a member was seen without it)."""
        self.remind_at = 0.0

    async def follow(self) -> None:
        """Switch to the ledger's state if its revision moved."""
        revision = await asyncio.wait_for(asyncio.to_thread(self.store.revision), 5.0)
        if revision != self.serving.state.revision:
            state = await asyncio.to_thread(self.store.read)
            if state is not None:
                async with self._lock:
                    await self._apply(state)

    async def _apply(self, state: ServingState, built: Snapshot | None = None) -> Snapshot:
        """Serve ``state`` from now on (under the lock): build, load the members, swap.

        ``built``: a snapshot of the same versions, arms and shares already built and
        loaded into the members (``change``), so neither is done twice.
        """
        if state.revision == self.serving.state.revision:
            return self.serving
        if built is None:
            snapshot = self.fleet.snapshot(state)
            await self.fleet.prepare(state.versions)
        else:
            snapshot = replace(built, state=state)
        self.serving = snapshot
        dropped = self.fleet.retire(snapshot)
        self.observer.serving(snapshot)
        logger.info(
            "serving revision %d: %s",
            state.revision,
            state.as_dict(),
            extra={"fields": {"versions": snapshot.versions(), "cache_dropped": dropped}},
        )
        return snapshot

    async def change(
        self,
        action: str,
        transition: Callable[[ServingState], ServingState],
        changed_by: str,
        reason: str | None,
    ) -> ServingState:
        """Apply ``transition`` to the ledger's state, here first and then in every replica.

        The new state is built and loaded into the members before it is written, so a
        change that cannot serve (a missing version, other features, too large a share)
        raises InvalidChange and nothing changes anywhere; so does a change made on a
        state another admin changed meanwhile.
        """
        async with self._lock:
            current = await _ledger(self.store, self.store.read)
            if current is None:
                raise InvalidChange("no serving state in the ledger yet")
            wanted = transition(current)
            built = self.fleet.snapshot(wanted)
            await self.fleet.prepare(wanted.versions)

            def make(now: ServingState | None) -> ServingState:
                if now is None or now.revision != current.revision:
                    raise InvalidChange("the serving state changed meanwhile; read it again")
                return wanted

            changed: tuple[ServingState, bool] = await _ledger(
                self.store, self.store.change, make, changed_by, action, reason
            )
            new = changed[0]
            self.observer.serving_change(action)
            await self._apply(new, built)
            return new

    async def guard(self) -> None:
        """Stop the candidate when the always-valid test finds it worse than the champion."""
        serving = self.serving
        if serving.candidate is None or self.report is None:
            return
        report = await asyncio.to_thread(self.report, serving.state.candidate_since)
        verdict = report.get("candidate")
        if not verdict or verdict["decision"] != "roll back":
            return
        name = serving.candidate.name

        def stop(state: ServingState) -> ServingState:
            if state.candidate != name:
                raise InvalidChange(f"the candidate is no longer {name}")
            return state.with_candidate(None, 0.0, 1.0)

        reason = str(verdict["summary"])
        logger.error("guardrail: stopping candidate %s: %s", name, reason)
        await self.change("guardrail", stop, "guardrail", reason)

    def status(self, changes: int) -> dict[str, Any]:
        """The ledger's serving state, what this replica serves, and the latest changes."""
        try:
            state, history = self.store.read(), self.store.history(changes)
        except Exception as exc:
            raise ServingUnavailable(
                f"the ledger's serving state cannot be read: {self.store.describe(exc)}"
            ) from exc
        serving = self.serving
        return {
            "state": None if state is None else state.as_dict(),
            "here": {
                "revision": serving.state.revision,
                "versions": serving.versions(),
                "arms": {a.name: json.loads(a.spec()) for a in serving.arms},
            },
            "history": history,
        }


async def _ledger(store: Store, call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)`` in a thread; a database failure becomes ServingUnavailable, in the
    words of ``store.describe`` (but a change refused by the state itself stays InvalidChange)."""
    try:
        return await asyncio.to_thread(call, *args)
    except InvalidChange:
        raise
    except Exception as exc:
        raise ServingUnavailable(
            f"the ledger's serving state cannot be read or written ({type(exc).__name__}: "
            f"{store.describe(exc)}); nothing changed"
        ) from exc
