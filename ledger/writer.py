"""The prediction log's writer: batches in a background thread, never stalls, never loses silently.

The request path only appends to an in-memory queue; a writer thread inserts in batches
(``ledger.engine``). A row the database refuses on its own goes to the dead letter; while
the database takes no writes, rows go to the on-disk spill (``ledger.spool``), replayed
when it is back. Every accepted request is journaled first (``ledger.journal``); ``close()``
says what was lost. Retention, and when a prediction is refused: ``ledger.policy``.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ensemble.errors import LogBackedUp
from ledger.dead_letter import DeadLetter
from ledger.engine import PredictionWrites, make_engine, storable
from ledger.journal import Journal, Recorded, entry, recover
from ledger.policy import REFUSAL, Durability, LogEvent, LogStatus, Pruner, Retention, memory_only
from ledger.spool import Spool
from ledger.tables import Served
from ops.gc_tuning import return_freed_memory

logger = logging.getLogger("ledger.predlog")
#: A batch written this recently (seconds) tells readiness the database takes writes.
WROTE_RECENTLY_S = 5.0
#: After writing this many rows at once, hand freed heap back to the OS: a wafer's rows
#: (~40 MB of Python objects and JSON) otherwise stay in this thread's malloc arena.
TRIM_AFTER_ROWS = 5_000


class LogWriter:
    """The write side: accept rows at once, write them in the background, never lose one."""

    def __init__(
        self,
        url: str,
        *,
        flush_interval_s: float = 0.2,
        retention: Retention | None = None,
        durability: Durability | None = None,
        retry_backoff_s: float = 1.0,
        on_event: LogEvent | None = None,
    ) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.engine = make_engine(url)
        from ledger.migrate import upgrade

        upgrade(self.engine)
        self._writes = PredictionWrites(self.engine)
        self.flush_interval_s = flush_interval_s
        self.retention = retention or Retention()
        self._pruner = Pruner(self.engine, self.retention)
        self.durability = durability or Durability()
        spill_dir = self.durability.spill_dir
        self.spill = Spool(spill_dir, self.durability.spill_max_bytes) if spill_dir else None
        self.dead_letter = Spool(spill_dir / "dead-letter") if spill_dir else None
        self._dead = DeadLetter(self.dead_letter)
        self.journal = Journal.open(spill_dir / "journal") if spill_dir else None
        self.retry_backoff_s = retry_backoff_s
        self.on_event = on_event
        self.status = LogStatus()
        self._queue: deque[tuple[int, Served | Recorded]] = deque()
        self._cond = threading.Condition()
        self._enqueued = 0  # sequence number of the last accepted request
        self._done = 0  # every request up to this number is in the database or the spill
        self._pending_rows = 0
        self._closing = False
        self._flush_requested = False
        self._progress_at = time.monotonic()
        self._written_at = -math.inf  # when the database last took a batch of rows
        self._next_replay = self._next_look = 0.0  # when _replay_spill, _look_again go next
        self._spill_error: str | None = None
        if self.spill is not None:
            self.spill.recover()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    @property
    def pending_rows(self) -> int:
        """Rows accepted and held in memory, not yet in the database or the spill."""
        return self._pending_rows

    def record(self, served: Served) -> None:
        """Accept one request's predictions: journaled (``ledger.journal``), so they survive
        this process's death, then queued for the writer (a small request as its records,
        ``ledger.journal.entry``)."""
        n = len(served.request_ids)
        accepted = entry(served)
        blob = Journal.encode(accepted) if self.journal is not None else b""
        with self._cond:
            if self._closing:
                raise RuntimeError("prediction log is closed")
            if self.journal is not None and not self.journal.append(self._enqueued + 1, blob):
                if why := self._memory_only():
                    raise LogBackedUp(f"{why}; {REFUSAL}")
                self._emit("journal_failed", n)
            self._enqueued += 1
            self._queue.append((self._enqueued, accepted))
            self._pending_rows += n
            # No wake-up: woken at once, the writer took the GIL from the response.

    def check_room(self) -> None:
        """Raise LogBackedUp when the log may not take more rows (checked before serving):
        it holds ``max_pending_rows`` in memory, or a row would be held in memory only."""
        if self._pending_rows >= self.durability.max_pending_rows:
            raise LogBackedUp(f"the prediction log holds {self._pending_rows} unwritten "
                              "predictions and can neither write nor spill them "
                              f"({self.status.database_error}); {REFUSAL}")  # fmt: skip
        if why := self._memory_only():
            raise LogBackedUp(f"{why}; {REFUSAL}")

    def _memory_only(self) -> str | None:
        """``ledger.policy.memory_only`` as the writer last found the three places."""
        journal = self.journal.failed if self.journal is not None else "not open"
        return memory_only(self.status.database_error, self._spill_error, journal, self.spill)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything accepted so far is in the database or the spill."""
        with self._cond:
            target = self._enqueued
            self._flush_requested = True
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def close(self, timeout: float = 30.0) -> LogStatus:
        """Flush, stop the writer and release the database. Rows the database does not take
        go to the spill; rows still in memory after ``timeout`` are lost (``status.lost``)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        left = self._pending_rows
        if self.journal is not None:
            with self._cond:
                self.journal.close(everything_stored=not left)
        if left:
            self.status.lost += left
            logger.error("prediction log closed with %d rows lost: %s", left, self.safe_url)
        self.engine.dispose()
        return self.status

    @property
    def safe_url(self) -> str:
        """The database URL with any password hidden, for logs."""
        return self.engine.url.render_as_string(hide_password=True)

    def stalled_for(self) -> float:
        """Seconds the writer has held rows without moving any (0 when it keeps up)."""
        if not self._thread.is_alive():
            return float("inf")
        if not self._pending_rows:
            return 0.0
        return time.monotonic() - self._progress_at

    def writable(self) -> str | None:
        """None when the writer runs and the database takes writes, else why not."""
        if not self._thread.is_alive():
            return "prediction log writer is not running"
        return self._writes.refuses()

    def accepting(self) -> str | None:
        """None while served rows have a durable place to go, else why not (for /readyz):
        the database, else the spill. A batch written in the last ``WROTE_RECENTLY_S`` says
        the database takes writes (no probe row then: under load its round trip was late)."""
        if not self._thread.is_alive():
            return "prediction log writer is not running"
        if self._pending_rows >= self.durability.max_pending_rows:
            return f"prediction log holds {self._pending_rows} unwritten rows in memory"
        if why := self._memory_only():  # predictions are refused: say so until they are not
            return why
        recent = time.monotonic() - self._written_at < WROTE_RECENTLY_S
        if recent and self.status.database_error is None:
            return None
        refused = self._writes.refuses()
        if refused is None or self.spill is None:
            return refused
        if self._spill_error is not None:
            return f"{refused}; and the spill fails: {self._spill_error}"
        return None

    def _run(self) -> None:
        self._recover_journals()
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._closing or self._flush_requested, self.flush_interval_s
                )
                self._flush_requested = False
                batch = list(self._queue)
                closing = self._closing
                if not batch and closing:
                    return
            try:
                if batch:
                    if not self._write(batch, closing) and closing:
                        return  # nowhere to put the rows: close() counts them as lost
                else:
                    self._progress_at = time.monotonic()
                    self._replay_spill()
                    self._look_again()
                self._pruner.when_due()
            except Exception:  # the writer must outlive any fault; /livez watches it
                logger.exception("prediction log writer fault")
                self._pause()

    def _look_again(self) -> None:
        """Idle, every ``retry_backoff_s``: if rows could only be held in memory, probe the
        database and spill (no write clears them); store journals left by dead processes."""
        if time.monotonic() < self._next_look:
            return
        self._next_look = time.monotonic() + self.retry_backoff_s
        if self._memory_only():
            if self._writes.refuses() is None:
                self._set_database_error(None)
            elif self.spill is not None and self.spill.room() is None:
                self._spill_error = None
        self._recover_journals()

    def _pause(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._closing, self.retry_backoff_s)

    def _write(self, batch: list[tuple[int, Served | Recorded]], closing: bool) -> bool:
        """Move ``batch`` out of memory; False when it had to stay there."""
        records = [rec for _, served in batch for rec in served.records()]
        outcome, stored = self._store(records, spill_on_outage=True)
        if outcome == "held":
            logger.error("prediction log holds %d rows in memory: %s", self._pending_rows,
                         self.status.database_error)  # fmt: skip
            if not closing:
                self._pause()
            return False
        with self._cond:
            for _ in batch:
                self._queue.popleft()
            self._pending_rows -= len(records)
            self._done = batch[-1][0]
            if self.journal is not None:
                self.journal.stored(self._done)
            self._progress_at = time.monotonic()
            self._cond.notify_all()
        self._emit(outcome, stored)  # after the bookkeeping: listeners read pending_rows
        if outcome == "written":
            self._replay_spill()
        if len(records) >= TRIM_AFTER_ROWS:
            del records
            return_freed_memory()
        return True

    def _store(self, records: list[list[Any]], spill_on_outage: bool) -> tuple[str, int]:
        """Write ``records``: ("written" | "spilled" | "held", rows written or spilled).

        Rows refused on their own go to the dead letter and are not counted.
        """
        records, rows, refused = storable(records)
        if refused:
            self._to_dead_letter(refused)
        error, refused_alone = self._insert_isolating(records, rows)
        if error is None:
            self._set_database_error(None)
            self._written_at = time.monotonic()
            return "written", len(records) - refused_alone
        self._set_database_error(error)
        if not spill_on_outage or self.spill is None:
            return "held", 0
        try:
            self.spill.append([json.dumps(r) for r in records])
        except OSError as exc:
            self._spill_error = f"{exc.__class__.__name__}: {exc}"
            logger.error("prediction log spill failed: %s", exc)
            return "held", 0
        self._spill_error = None
        self.status.spilled += len(records)
        logger.warning("prediction log spilled %d rows to %s: %s", len(records),
                       self.spill.directory, error)  # fmt: skip
        return "spilled", len(records)

    def _insert_isolating(
        self, records: list[list[Any]], rows: list[tuple[Any, ...]] | None = None
    ) -> tuple[str | None, int]:
        """``PredictionWrites.insert_isolating``; refused rows go to the dead letter."""
        return self._writes.insert_isolating(records, rows, self._to_dead_letter)

    def _replay_spill(self) -> None:
        """Write back one spilled segment, oldest first, when the database takes writes."""
        if self.spill is None or time.monotonic() < self._next_replay:
            return
        segment = self.spill.claim_oldest()
        if segment is None:
            return
        records, unreadable = segment.readable()
        if unreadable:
            self._to_dead_letter(unreadable)
        outcome, stored = self._store(records, spill_on_outage=False)
        if outcome == "held":  # still down: put it back, try again later
            self.spill.release(segment, segment.lines)
            self._next_replay = time.monotonic() + self.retry_backoff_s
            return
        self.spill.release(segment)
        self.status.replayed += len(records)
        self._emit("written", stored)
        self._emit("replayed", len(records))
        logger.info("prediction log replayed %d spilled rows", len(records))

    def _recover_journals(self) -> None:
        """Store the journaled rows of processes that died (``ledger.journal.recover``)."""
        if self.journal is None:
            return
        for outcome, stored, recovered in recover(self.journal, self._writes, self._store):
            self.status.replayed += recovered
            if outcome == "written":
                self._emit("written", stored)
            self._emit("replayed", recovered)

    def _to_dead_letter(self, refused: Sequence[tuple[Any, str]]) -> None:
        kind = self._dead.keep(refused)
        if kind == "lost":
            self.status.lost += len(refused)
        else:
            self.status.dead_lettered += len(refused)
        self._emit(kind, len(refused))

    def _set_database_error(self, error: str | None) -> None:
        if error is None and self.status.database_error is not None:
            logger.info("prediction log database takes writes again")
        self.status.database_error = error

    def _emit(self, kind: str, rows: int) -> None:
        if kind == "written":
            self.status.written += rows
        if self.on_event is not None and rows:
            self.on_event(kind, rows)

    def replay_dead_letter(self) -> tuple[int, int]:
        """Try every dead-lettered row again: (written, still refused)."""
        return self._dead.replay(self._writes.insert)

    def prune(self, now: float | None = None) -> int:
        """Apply the retention setting now; returns the predictions deleted."""
        return self._pruner.run(now)
