"""Ask every member in parallel, tolerate one missing, and vote."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ensemble.coalesce import Coalescer, MemberCall
from ensemble.vote import majority_vote

logger = logging.getLogger(__name__)

#: Told of every member call: (member, seconds, None or "timeout" or "error").
CallObserver = Callable[[str, float, "str | None"], None]

#: Fewer answering members than this is an error, not a degraded answer.
MIN_MEMBERS = 2


class MembersUnavailable(RuntimeError):
    """Too few members answered to vote; maps to HTTP 503."""

    status_code = 503

    def __init__(self, answered: int, failures: Mapping[str, str]) -> None:
        detail = "; ".join(f"{name}: {why}" for name, why in failures.items())
        super().__init__(
            f"{answered} of {answered + len(failures)} member models answered and the "
            f"ensemble needs at least {MIN_MEMBERS} ({detail})"
        )
        self.failures = dict(failures)


@dataclass
class EnsembleResult:
    """Votes for n rows. ``p_pass`` holds only the members that answered."""

    passed: np.ndarray  # (n,) bool
    probability: np.ndarray  # (n,) float, mean member P(pass)
    p_pass: dict[str, np.ndarray]  # member -> (n,) P(pass)
    missing: dict[str, str] = field(default_factory=dict)  # member -> why

    @property
    def degraded(self) -> bool:
        return bool(self.missing)


class EnsemblePredictor:
    """The ensemble arm: all members in parallel, each with its own timeout."""

    def __init__(
        self,
        members: Mapping[str, MemberCall],
        timeout_s: float,
        max_rows_per_call: int = 16384,
        max_in_flight: int = 2,
        observer: CallObserver | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.observer = observer
        self.coalescers = {
            name: Coalescer(call, max_rows=max_rows_per_call, max_in_flight=max_in_flight)
            for name, call in members.items()
        }

    async def ask(self, name: str, rows: np.ndarray) -> tuple[np.ndarray | None, str]:
        """One member's P(pass), or (None, why) when it failed or timed out; never raises."""
        started = time.perf_counter()
        try:
            p = await asyncio.wait_for(self.coalescers[name].submit(rows), self.timeout_s)
            self._observe(name, started, None)
            return p, ""
        except TimeoutError:
            why, kind = f"timed out after {self.timeout_s:g} s", "timeout"
        except Exception as exc:  # any member fault degrades, it never fails the request
            why, kind = f"{type(exc).__name__}: {str(exc)[:200]}", "error"
        self._observe(name, started, kind)
        logger.warning("member %s failed: %s", name, why)
        return None, why

    def _observe(self, name: str, started: float, failure: str | None) -> None:
        if self.observer is not None:
            self.observer(name, time.perf_counter() - started, failure)

    async def predict(self, rows: np.ndarray) -> EnsembleResult:
        """Vote on ``rows`` (n, k) float32; raises MembersUnavailable below two members."""
        names = list(self.coalescers)
        answers = await asyncio.gather(*(self.ask(name, rows) for name in names))
        p_pass = {n: p for n, (p, _) in zip(names, answers, strict=True) if p is not None}
        missing = {n: why for n, (p, why) in zip(names, answers, strict=True) if p is None}
        if len(p_pass) < MIN_MEMBERS:
            raise MembersUnavailable(len(p_pass), missing)
        passed, probability = majority_vote(p_pass)
        return EnsembleResult(
            passed=passed,
            probability=probability,
            p_pass=p_pass,
            missing=missing,
        )
