"""The prediction log's writer: batches in a background thread, never stalls, never loses silently.

The request path only appends to an in-memory queue. A writer thread inserts in
batches (one statement per batch). A row the database refuses on its own goes to
the dead letter; while the database takes no writes at all, rows go to the on-disk
spill and are replayed when it is back (``ledger.spool``). ``close()`` flushes what
is left and says what was lost. Over 300 lines because it is one state machine
(queue, thread, spill, dead letter) whose parts share the same lock and counters.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from ensemble.errors import LogBackedUp
from ledger.errors import safe_url
from ledger.spool import Spool
from ledger.tables import JSON_COLUMNS, Served, outcomes, predictions
from ops.gc_tuning import return_freed_memory
from ops.logs import redact

logger = logging.getLogger("ledger.predlog")
#: After writing this many rows at once, hand freed heap back to the OS: a wafer's rows
#: (~40 MB of Python objects and JSON) otherwise stay in this thread's malloc arena.
TRIM_AFTER_ROWS = 5_000


@dataclass
class Retention:
    """Keep predictions younger than ``max_age_s`` and at most ``max_rows`` (None: no limit)."""

    max_age_s: float | None = None
    max_rows: int | None = None
    every_s: float = 3600.0


@dataclass
class Durability:
    """Where rows wait when the database does not take them, and how long is too long.

    ``spill_dir`` holds rows while the database is down (at most ``spill_max_bytes``)
    and its ``dead-letter`` folder the rows the database refused; ``max_pending_rows``
    bounds the rows held in memory; a writer that moves no row for ``stall_s``
    seconds is stalled (``/livez`` then fails).
    """

    spill_dir: Path | None = None
    spill_max_bytes: int | None = 1 << 30
    max_pending_rows: int = 200_000
    stall_s: float = 60.0


@dataclass
class LogStatus:
    """What the writer has done since start, for metrics, health and the exit code."""

    written: int = 0
    spilled: int = 0
    replayed: int = 0
    dead_lettered: int = 0
    lost: int = 0
    database_error: str | None = None


#: Told what the writer did with how many rows: written, spilled, replayed, dead_letter, lost.
LogEvent = Callable[[str, int], None]


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
        self.engine = _engine(url)
        self._sqlite = self.engine.dialect.name == "sqlite"
        from ledger.migrate import upgrade

        upgrade(self.engine)
        columns = [c.name for c in predictions.columns]
        self._json_at = [columns.index(name) for name in JSON_COLUMNS]
        if self._sqlite:
            # One statement per batch: SQLite reads the rows from one JSON array.
            # Row-by-row executemany releases and re-takes the GIL per row, and
            # against a busy event loop 10,000 rows took 45 s instead of 60 ms.
            # ON CONFLICT: a row replayed from the spill that did arrive is no error
            # (not OR IGNORE, which would also skip a row that breaks NOT NULL).
            picks = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(columns)))
            self._insert_sql = (
                f"INSERT INTO predictions ({', '.join(columns)}) "
                f"SELECT {picks} FROM json_each(?) WHERE true ON CONFLICT DO NOTHING"
            )
        else:
            marks = {"qmark": "?", "format": "%s", "pyformat": "%s", "numeric": ":{}"}
            mark = marks.get(self.engine.dialect.paramstyle, "%s")
            values = ", ".join(mark.format(i + 1) for i in range(len(columns)))
            self._insert_sql = (
                f"INSERT INTO predictions ({', '.join(columns)}) VALUES ({values}) "
                "ON CONFLICT DO NOTHING"
            )
        self.flush_interval_s = flush_interval_s
        self.retention = retention or Retention()
        self.durability = durability or Durability()
        spill_dir = self.durability.spill_dir
        self.spill = Spool(spill_dir, self.durability.spill_max_bytes) if spill_dir else None
        self.dead_letter = Spool(spill_dir / "dead-letter") if spill_dir else None
        self.retry_backoff_s = retry_backoff_s
        self.on_event = on_event
        self.status = LogStatus()
        self._queue: deque[tuple[int, Served]] = deque()
        self._cond = threading.Condition()
        self._enqueued = 0  # sequence number of the last accepted request
        self._done = 0  # every request up to this number is in the database or the spill
        self._pending_rows = 0
        self._closing = False
        self._flush_requested = False
        self._progress_at = time.monotonic()
        self._next_prune = 0.0
        self._next_replay = 0.0
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
        """Accept one request's predictions; returns at once."""
        with self._cond:
            if self._closing:
                raise RuntimeError("prediction log is closed")
            self._enqueued += 1
            self._queue.append((self._enqueued, served))
            self._pending_rows += len(served.request_ids)
            # No wake-up: the writer comes every flush interval. Woken at once, it
            # took the GIL from the response still being encoded for these rows.

    def check_room(self) -> None:
        """Raise LogBackedUp when the log may not take more rows (checked before serving)."""
        if self._pending_rows >= self.durability.max_pending_rows:
            raise LogBackedUp(
                f"the prediction log holds {self._pending_rows} unwritten predictions and "
                f"can neither write nor spill them ({self.status.database_error}); "
                "not serving predictions it cannot record"
            )

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything accepted so far is in the database or the spill."""
        with self._cond:
            target = self._enqueued
            self._flush_requested = True
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def close(self, timeout: float = 30.0) -> LogStatus:
        """Flush, stop the writer and release the database; ``status.lost`` counts lost rows.

        Rows the database does not take at close go to the spill. Rows still in
        memory after ``timeout`` are lost and added to ``status.lost``.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        left = self._pending_rows
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
        return self._database_refuses()

    def accepting(self) -> str | None:
        """None while served rows have a durable place to go, else why not (for /readyz).

        The database taking writes is enough; while it does not, the spill is.
        """
        if not self._thread.is_alive():
            return "prediction log writer is not running"
        if self._pending_rows >= self.durability.max_pending_rows:
            return f"prediction log holds {self._pending_rows} unwritten rows in memory"
        refused = self._database_refuses()
        if refused is None:
            return None
        if self.spill is None:
            return refused
        if self._spill_error is not None:
            return f"{refused}; and the spill fails: {self._spill_error}"
        return None

    def _database_refuses(self) -> str | None:
        """None if the database takes a valid prediction row (rolled back), else the error.

        This tells an outage (nothing can be written) from rows refused on their own.
        """
        try:
            with self.engine.connect() as conn:
                self._execute_insert(conn, [_PROBE_RECORD])
                conn.rollback()
        except sa.exc.SQLAlchemyError as exc:
            return f"prediction log cannot write: {_error_text(exc)}"
        return None

    # -- writer thread ---------------------------------------------------------

    def _run(self) -> None:
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
                self._maybe_prune()
            except Exception:  # the writer must outlive any fault; /livez watches it
                logger.exception("prediction log writer fault")
                self._pause()

    def _pause(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._closing, self.retry_backoff_s)

    def _write(self, batch: list[tuple[int, Served]], closing: bool) -> bool:
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
        records, payload, refused = _strict_json(records)
        if refused:
            self._to_dead_letter(refused)
        error, refused_alone = self._insert_isolating(records, payload)
        if error is None:
            self._set_database_error(None)
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
        self, records: list[list[Any]], payload: str | None = None
    ) -> tuple[str | None, int]:
        """Insert; rows the database refuses on their own go to the dead letter.

        Returns (None, rows dead-lettered) once every row is written or dead-lettered,
        else (the error that says the database takes no writes at all, those rows).
        """
        if not records:
            return None, 0
        try:
            self._insert(records, payload)
            return None, 0
        except sa.exc.SQLAlchemyError as exc:
            error = _error_text(exc)
        outage = self._database_refuses()
        if outage is not None:
            return outage, 0
        if len(records) == 1:
            self._to_dead_letter([(records[0], error)])
            return None, 1
        half = len(records) // 2
        # Halves until the refused rows stand alone: log2(n) extra statements per bad row.
        first, refused = self._insert_isolating(records[:half])
        if first is not None:
            return first, refused  # the database went away meanwhile; the caller keeps all
        second, more = self._insert_isolating(records[half:])
        return second, refused + more

    def _insert(self, records: list[list[Any]], payload: str | None = None) -> None:
        """One transaction; ``payload`` is ``records`` as JSON when already encoded."""
        with self.engine.begin() as conn:
            self._execute_insert(conn, records, payload)

    def _execute_insert(
        self, conn: sa.Connection, records: list[list[Any]], payload: str | None = None
    ) -> None:
        # Straight to the driver: SQLAlchemy's per-row parameter processing
        # cost 11% of the entry's CPU under load.
        if self._sqlite:
            conn.exec_driver_sql(self._insert_sql, (payload or json.dumps(records),))
            return
        rows = []
        width = len(predictions.columns)
        for record in records:
            # A record spilled by an older release lacks the newest columns: NULL there.
            row = list(record) + [None] * (width - len(record))
            for at in self._json_at:
                row[at] = json.dumps(row[at])
            rows.append(tuple(row))
        conn.exec_driver_sql(self._insert_sql, rows)

    def _replay_spill(self) -> None:
        """Write back one spilled segment, oldest first, when the database takes writes."""
        if self.spill is None or time.monotonic() < self._next_replay:
            return
        segment = self.spill.claim_oldest()
        if segment is None:
            return
        records, unreadable = [], []
        for record, why in segment.records():
            if why is None:
                records.append(record)
            else:
                unreadable.append((record, why))
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

    def _to_dead_letter(self, refused: Sequence[tuple[Any, str]]) -> None:
        now = time.time()
        entries = [
            json.dumps({"failed_at": now, "error": why, "record": record}, default=repr)
            for record, why in refused
        ]
        ids = [r[0] if isinstance(r, list) and r else "?" for r, _ in refused]
        try:
            if self.dead_letter is None:
                raise OSError("no spill directory is configured")
            self.dead_letter.append(entries)
        except OSError as exc:
            self.status.lost += len(entries)
            self._emit("lost", len(entries))
            logger.error("prediction log lost %d refused rows %s (%s): %s", len(entries),
                         ids[:10], refused[0][1], exc)  # fmt: skip
            return
        self.status.dead_lettered += len(entries)
        self._emit("dead_letter", len(entries))
        logger.error("prediction log refused %d rows %s, kept in %s: %s", len(entries), ids[:10],
                     self.dead_letter.directory, refused[0][1])  # fmt: skip

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
        if self.dead_letter is None:
            return 0, 0
        self.dead_letter.recover()
        segments = []
        while (segment := self.dead_letter.claim_oldest()) is not None:
            segments.append(segment)
        written = refused = 0
        for segment in segments:
            keep = []
            for entry, why in segment.records():
                record = entry.get("record") if why is None else None
                good, _, _ = _strict_json([record] if isinstance(record, list) else [])
                error = None
                if good:
                    try:
                        self._insert(good)
                    except sa.exc.SQLAlchemyError as exc:
                        error = _error_text(exc)
                if good and error is None:
                    written += 1
                else:
                    refused += 1
                    keep.append(entry if why is None else {"error": why, "record": entry})
            self.dead_letter.release(segment, [json.dumps(k, default=repr) for k in keep])
        return written, refused

    def _maybe_prune(self) -> None:
        r = self.retention
        if (r.max_age_s is None and r.max_rows is None) or time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + r.every_s
        try:
            self.prune()
        except sa.exc.SQLAlchemyError as exc:
            logger.error("prediction log retention failed: %s", exc)

    def prune(self, now: float | None = None) -> int:
        """Apply the retention setting now; returns the predictions deleted."""
        r, deleted = self.retention, 0
        with self.engine.begin() as conn:
            if r.max_age_s is not None:
                cutoff = (now or time.time()) - r.max_age_s
                old = sa.delete(predictions).where(predictions.c.ts < cutoff)
                deleted += conn.execute(old).rowcount
            if r.max_rows is not None:
                keep_from = conn.execute(
                    sa.select(predictions.c.ts)
                    .order_by(predictions.c.ts.desc())
                    .offset(r.max_rows - 1)
                    .limit(1)
                ).scalar()
                if keep_from is not None:
                    deleted += conn.execute(
                        sa.delete(predictions).where(predictions.c.ts < keep_from)
                    ).rowcount
            # Outcomes whose prediction is gone, including any that raced with this prune.
            known = sa.select(predictions.c.request_id)
            conn.execute(sa.delete(outcomes).where(outcomes.c.request_id.not_in(known)))
        if deleted:
            logger.info("prediction log retention deleted %d predictions", deleted)
        return deleted


def _engine(url: str) -> sa.Engine:
    """An engine that never keeps a broken or read-only connection for later.

    Raises ValueError naming the URL without its password when SQLAlchemy cannot use it
    (its own error quotes the URL whole)."""
    try:
        sa.engine.make_url(url)
    except Exception as exc:
        raise ValueError(
            f"not a database URL SQLAlchemy can use: {safe_url(url)} ({type(exc).__name__})"
        ) from None
    if url.startswith("sqlite"):
        # No pool: each use opens the file anew, so a database that was read-only
        # or missing is written as soon as it is writable again.
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    args = {"connect_timeout": 5, "options": "-c statement_timeout=30000"}
    return sa.create_engine(url, pool_pre_ping=True, connect_args=args)


#: A valid row, inserted and rolled back to see whether the database takes writes.
_PROBE_RECORD: list[Any] = next(
    Served(
        0.0, 0.0, ["yield-ensemble-probe"], [{}], np.zeros((1, 1), dtype=np.float32),
        [{"arm": "probe", "prediction": "pass", "probability": 1.0, "votes": {},
          "cached": False, "degraded": False}], {},
    ).records()
)  # fmt: skip


def _strict_json(
    records: list[list[Any]],
) -> tuple[list[list[Any]], str | None, list[tuple[Any, str]]]:
    """``records`` that strict JSON can hold, their JSON, and the others with the reason.

    One ``dumps`` for the whole batch in the usual case; row by row only when it fails.
    """
    try:
        return records, json.dumps(records, allow_nan=False), []
    except (TypeError, ValueError):
        pass
    good, refused = [], []
    for record in records:
        try:
            json.dumps(record, allow_nan=False)
            good.append(record)
        except (TypeError, ValueError) as exc:
            refused.append((record, f"not storable as strict JSON: {exc}"))
    return good, None, refused


def _error_text(exc: BaseException) -> str:
    return redact(f"{exc.__class__.__name__}: {exc}")[:500]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()
