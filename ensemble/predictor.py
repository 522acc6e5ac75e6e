"""Ask every member in parallel, tolerate one missing, and combine their answers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ensemble.breaker import Breaker
from ensemble.coalesce import Coalescer, MemberCall
from ensemble.combiners import Combiner, MajorityVote
from ensemble.errors import MembersUnavailable

logger = logging.getLogger(__name__)

#: Told of every member call: (member, seconds, None or "timeout" or "error", 1), of a
#: call not made because the member's breaker is open: (member, None, "breaker_open", 1),
#: and of rows a member answered with no probability: (member, None, "non_finite", rows).
CallObserver = Callable[[str, "float | None", "str | None", int], None]

#: Fewer answering members than this is an error, not a degraded answer.
MIN_MEMBERS = 2


class TooFewMembers(MembersUnavailable):
    """Too few members answered to vote (503): which answered, and why the others did not."""

    def __init__(self, answered: int, failures: Mapping[str, str], rows: str = "") -> None:
        detail = "; ".join(f"{name}: {why}" for name, why in failures.items())
        super().__init__(
            f"{answered} of {answered + len(failures)} member models answered{rows} and the "
            f"ensemble needs at least {MIN_MEMBERS} ({detail})"
        )
        self.failures = dict(failures)


@dataclass
class EnsembleResult:
    """Votes for n rows.

    ``p_pass`` holds only the members that answered the call, with NaN for a row
    whose answer was not a probability (that member failed for that row only).
    """

    passed: np.ndarray  # (n,) bool
    probability: np.ndarray  # (n,) float, mean member P(pass)
    p_pass: dict[str, np.ndarray]  # member -> (n,) P(pass), NaN where it failed
    missing: dict[str, str] = field(default_factory=dict)  # member -> why, for every row

    def missing_at(self) -> list[tuple[str, ...]]:
        """Per row, the members without a vote there, sorted."""
        whole = tuple(sorted(self.missing))
        failed = {m: np.isnan(p) for m, p in self.p_pass.items()}
        failed = {m: f for m, f in failed.items() if f.any()}
        if not failed:
            return [whole] * len(self.passed)
        return [
            tuple(sorted((*whole, *(m for m, f in failed.items() if f[i]))))
            for i in range(len(self.passed))
        ]


def finite_probabilities(p: np.ndarray) -> np.ndarray:
    """``p`` as float64 with NaN wherever it is not a probability in [0, 1]."""
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    with np.errstate(invalid="ignore"):
        return np.where((p >= 0.0) & (p <= 1.0), p, np.nan)  # NaN compares false


class EnsemblePredictor:
    """The ensemble arm: all members in parallel, each with its own timeout."""

    def __init__(
        self,
        members: Mapping[str, MemberCall],
        timeout_s: float,
        max_rows_per_call: int = 16384,
        max_in_flight: int = 2,
        observer: CallObserver | None = None,
        combiner: Combiner | None = None,
        timeout_per_1000_rows_s: float = 0.0,
        breakers: Mapping[str, Breaker] | None = None,
    ) -> None:
        """``breakers``: member -> its circuit breaker (``ensemble.breaker``), shared by the
        predictors of every version; without, every call waits out its time limit."""
        self.timeout_s = timeout_s
        self.breakers = dict(breakers or {})
        self.timeout_per_row_s = timeout_per_1000_rows_s / 1000
        self.combiner: Combiner = combiner or MajorityVote()
        self.observer = observer
        self.coalescers = {
            name: Coalescer(call, max_rows=max_rows_per_call, max_in_flight=max_in_flight)
            for name, call in members.items()
        }

    def timeout_for(self, rows: int) -> float:
        """A member's time limit for ``rows`` rows: the base plus a share per row, so a
        50,000-die wafer is not held to a single die's limit."""
        return self.timeout_s + rows * self.timeout_per_row_s

    async def ask(self, name: str, rows: np.ndarray) -> tuple[np.ndarray | None, str]:
        """One member's P(pass), or (None, why) when it failed or timed out; never raises.

        A row whose answer is not a finite probability is NaN: the member failed there.
        """
        breaker = self.breakers.get(name)
        trial = False
        if breaker is not None:
            admitted, why = breaker.admit()
            trial = why == "trial"
            if not admitted:
                self._observe(name, None, "breaker_open")
                return None, why
        started = time.perf_counter()
        limit = self.timeout_for(len(rows))
        try:
            try:
                p = await asyncio.wait_for(self.coalescers[name].submit(rows), limit)
            except asyncio.CancelledError:
                if breaker is not None:
                    breaker.abandoned(trial)
                raise
            if breaker is not None:
                breaker.succeeded()
            self._observe(name, started, None)
            p = finite_probabilities(p)
            bad = int(np.isnan(p).sum())
            if bad:
                self._observe(name, None, "non_finite", bad)
                logger.warning("member %s gave no probability for %d of %d rows", name, bad,
                               len(p))  # fmt: skip
            return p, ""
        except TimeoutError:
            why, kind = f"timed out after {limit:g} s", "timeout"
        except Exception as exc:  # any member fault degrades, it never fails the request
            why, kind = f"{type(exc).__name__}: {str(exc)[:200]}", "error"
        if breaker is not None:
            breaker.failed(why, trial)
        self._observe(name, started, kind)
        logger.warning("member %s failed: %s", name, why)
        return None, why

    def _observe(
        self, name: str, started: float | None, failure: str | None, rows: int = 1
    ) -> None:
        if self.observer is not None:
            seconds = None if started is None else time.perf_counter() - started
            self.observer(name, seconds, failure, rows)

    async def predict(self, rows: np.ndarray) -> EnsembleResult:
        """Vote on ``rows`` (n, k) float32; raises MembersUnavailable below two members."""
        names = list(self.coalescers)
        answers = await asyncio.gather(*(self.ask(name, rows) for name in names))
        p_pass = {n: p for n, (p, _) in zip(names, answers, strict=True) if p is not None}
        missing = {n: why for n, (p, why) in zip(names, answers, strict=True) if p is None}
        if len(p_pass) < MIN_MEMBERS:
            raise TooFewMembers(len(p_pass), missing)
        voting = np.sum([~np.isnan(p) for p in p_pass.values()], axis=0)
        short = np.flatnonzero(voting < MIN_MEMBERS)
        if len(short):
            rows_text = f" with a probability for rows {short[:10].tolist()}"
            raise TooFewMembers(int(voting.min()), missing, rows_text)
        passed, probability = self.combiner.combine(p_pass)
        return EnsembleResult(
            passed=passed,
            probability=probability,
            p_pass=p_pass,
            missing=missing,
        )
