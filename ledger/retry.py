"""Ledger transactions retried across a brief database outage, then a clean 503.

A PostgreSQL restart, a failover or a dropped connection lasts seconds; a feedback call
or a report read that meets one is run again, whole, with backoff, for up to
``YIELD_ENSEMBLE_LEDGER_RETRY_S`` (``LedgerSettings.ledger_retry_s``), and only then
answered 503 ``ledger_unavailable`` with ``Retry-After``. What is retried is a callable
that opens its own connection and transaction, so each attempt starts afresh: the pool
has dropped the broken connection (SQLAlchemy invalidates a connection that failed with
a disconnect, and pre-ping discards dead ones at checkout), and nothing of a failed
attempt is half-applied.

Exactly-once for writes: a transaction either committed or did not. The one unknown is
a commit whose acknowledgement was lost with the connection; the retried transaction
then reads what the database holds and decides again (``LedgerQueries.add_outcomes``
re-reads each outcome inside its transaction), so an outcome the lost commit recorded
is found there and answered ``unchanged``, never recorded twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from ensemble.errors import LedgerUnavailable
from ledger.errors import cause_line
from ops.logs import redact

logger = logging.getLogger("yield_ensemble")
T = TypeVar("T")
#: Retry-After of the 503 answered once the retries are spent, seconds.
RETRY_AFTER_S = 5
#: The first wait between attempts, doubled each time up to ``MOST_WAIT_S``, seconds.
FIRST_WAIT_S = 0.1
MOST_WAIT_S = 2.0
#: PostgreSQL SQLSTATEs after which the whole transaction may simply run again: the
#: connection failed (class 08), the server is shutting down or starting up (57P01-57P03),
#: too many connections (53300), a serialization failure or deadlock (40001, 40P01).
TRANSIENT_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300", "40001", "40P01")
#: Connection failures that are a setting to fix, not an outage to wait out.
MISCONFIGURED = ("authentication failed", "does not exist", "no pg_hba.conf entry")


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the database was out of reach for a moment, so that running
    the transaction again may succeed: a dropped connection (SQLAlchemy's disconnect
    detection), a PostgreSQL SQLSTATE of ``TRANSIENT_SQLSTATES``, a connection refused
    or reset before the server answered, SQLite busy or locked. Not: a statement timeout,
    a malformed query, a wrong password or database name, a missing table."""
    import sqlalchemy.exc as sx

    if not isinstance(exc, sx.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    state = getattr(orig, "sqlstate", None)
    if state:
        return str(state).startswith(TRANSIENT_SQLSTATES)
    if not isinstance(exc, sx.OperationalError):
        return False
    sqlite_name = getattr(orig, "sqlite_errorname", None)
    text = str(orig).lower()
    if sqlite_name is not None or "sqlite" in type(orig).__module__:
        return str(sqlite_name).startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text
    # A PostgreSQL driver's error before the server said anything (no SQLSTATE):
    # refused, reset, timed out, or a FATAL at start-up.
    return not any(word in text for word in MISCONFIGURED)


def retried(
    call: Callable[[], T],
    within_s: float | None = None,
    what: str = "ledger transaction",
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``call()``, run again while it fails ``transient``-ly, for up to ``within_s``
    seconds (default ``ledger_retry_s``) from its first failure, waiting 0.1 s, 0.2 s, ...
    up to 2 s between. An attempt started in time runs to its end: a report that takes
    3 s may answer 3 s after the deadline.

    ``call`` must be a whole transaction (or only reads): each attempt starts anew.
    Raises ``LedgerUnavailable`` (503, ``Retry-After: RETRY_AFTER_S``, the driver's first
    line with any URL password masked) once the time is spent; any other error at once.
    """
    if within_s is None:
        from ledger.settings import get_ledger_settings

        within_s = get_ledger_settings().ledger_retry_s
    deadline = None
    wait, attempts = FIRST_WAIT_S, 1
    while True:
        try:
            result = call()
        except Exception as exc:
            if not transient(exc):
                raise
            line = redact(cause_line(exc))
            if deadline is None:
                # From the first failure: a long read that met the outage late in its
                # run gets the whole time to see the database back.
                deadline = clock() + within_s
            left = deadline - clock()
            if left <= 0:
                error = LedgerUnavailable(
                    f"the ledger's database is unavailable now: {line} (tried {attempts} "
                    f"times over {within_s:g} s)"
                )
                error.retry_after_s = RETRY_AFTER_S
                logger.error("%s failed after %d attempts: %s", what, attempts, line)
                raise error from exc
            if attempts == 1:
                logger.warning("%s failed (%s); retrying for up to %.0f s", what, line, left)
            sleep(min(wait, left))
            wait, attempts = min(wait * 2, MOST_WAIT_S), attempts + 1
            continue
        if attempts > 1:
            logger.info("%s succeeded at attempt %d", what, attempts)
        return result
