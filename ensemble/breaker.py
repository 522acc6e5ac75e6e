"""A member that just failed is not waited for again at once: a circuit breaker per member.

A member process that dies keeps its socket with BentoML's arbiter until it has restarted
(10-20 s for the Keras member); every call meanwhile waits out the member time limit
(``member_timeout_s``, 2 s) before its answer goes without that vote. With a breaker, a
member call that times out or fails opens the member's breaker for ``cool_off_s``: calls
in that time go without the member at once, their answers ``degraded`` and naming it,
as for any missing vote (below two votes, the usual 503, which says why). After the
cool-off one call is let through (half-open); it closes the breaker when it answers, and
a failed trial opens it again for twice as long, up to ``most_s``. One breaker per
member process, shared by every version's predictor: it is the process that is down,
not a version.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Breaker:
    """One member's breaker (module docstring); not thread-safe: one event loop uses it."""

    def __init__(
        self,
        cool_off_s: float = 1.0,
        most_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cool_off_s = cool_off_s
        self.most_s = most_s
        self._clock = clock
        self._wait = 0.0  # the cool-off now; 0 when closed
        self._open_until = 0.0
        self._trial = False  # a half-open call is in flight
        self._why = ""

    @property
    def closed(self) -> bool:
        return self._wait == 0.0

    def admit(self) -> tuple[bool, str]:
        """(True, "") to call the member now, True with "trial" for the half-open call;
        (False, why) to go without it (open, or its trial still in flight)."""
        if self._wait == 0.0:
            return True, ""
        left = self._open_until - self._clock()
        if left <= 0 and not self._trial:
            self._trial = True
            return True, "trial"
        when = f"asked again in {left:.1f} s" if left > 0 else "a trial call is in flight"
        return False, f"not asked: it failed {self._why} ({when})"

    def succeeded(self) -> None:
        """The member answered: closed."""
        self._wait, self._trial = 0.0, False

    def failed(self, why: str, trial: bool = True) -> None:
        """The member timed out or failed (``why``): open for the next cool-off.

        ``trial`` False: a call let through while the breaker was closed. If the breaker
        is open already, the calls in flight when the member went down are failing one by
        one: one outage, one cool-off (doubled only by a failed trial), and the trial
        in flight, if any, is still the one."""
        if not trial and not self.closed:
            return
        self._wait = min(self.most_s, 2 * self._wait if self._wait else self.cool_off_s)
        self._open_until = self._clock() + self._wait
        self._trial, self._why = False, why

    def abandoned(self, trial: bool = True) -> None:
        """A call was cancelled before it could tell (its request went away): the next
        call may try the member if it was the trial (``trial``)."""
        if trial:
            self._trial = False
