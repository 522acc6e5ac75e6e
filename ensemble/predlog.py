"""The prediction log: every served prediction, written in the background, joined to outcomes.

SQLite (WAL) by default; any SQLAlchemy URL, PostgreSQL included, so several
replicas can share one log. The request path only appends to an in-memory
queue; a writer thread inserts in batches and ``close()`` flushes what is left.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from ensemble.report import Labelled, build_report
from ensemble.settings import MEMBERS

logger = logging.getLogger(__name__)

#: Ids per ``IN (...)`` query, well under every database's parameter limit.
CHUNK = 500
OUTCOMES = ("pass", "fail")

metadata = sa.MetaData()
predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("ts", sa.Float, nullable=False, index=True),
    sa.Column("arm", sa.String(16), nullable=False),
    sa.Column("device_id", sa.String(256)),
    sa.Column("wafer_id", sa.String(256)),
    sa.Column("lot_id", sa.String(256)),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("p_random_forest", sa.Float),
    sa.Column("p_xgboost", sa.Float),
    sa.Column("p_keras", sa.Float),
    sa.Column("prediction", sa.String(4), nullable=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("cached", sa.Boolean, nullable=False),
    sa.Column("degraded", sa.Boolean, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("model_versions", sa.Text, nullable=False),
    sa.Index("ix_predictions_device_ts", "device_id", "ts"),
)
outcomes = sa.Table(
    "outcomes",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("actual", sa.String(4), nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
)
VOTE_COLUMNS = {member: f"p_{member}" for member in MEMBERS}


@dataclass
class Served:
    """One request's served predictions, as the request path hands them over."""

    ts: float
    latency_ms: float
    request_ids: Sequence[str]
    ids: Sequence[Mapping[str, str | None]]
    rows: np.ndarray
    results: Sequence[Mapping[str, Any]]
    model_versions: Mapping[str, str]

    def records(self) -> Iterator[list[Any]]:
        """One list per device, in ``predictions`` column order; features as a float list."""
        versions = json.dumps(self.model_versions, sort_keys=True)
        # float64 of a float32 is exact, and its repr round-trips to the same float32.
        features = np.asarray(self.rows, dtype=np.float64).tolist()
        for rid, ids, row, r in zip(
            self.request_ids, self.ids, features, self.results, strict=True
        ):
            votes = r["votes"]
            yield [
                rid,
                self.ts,
                r["arm"],
                ids.get("device_id"),
                ids.get("wafer_id"),
                ids.get("lot_id"),
                row,
                *(votes.get(m) for m in VOTE_COLUMNS),
                r["prediction"],
                r["probability"],
                r["cached"],
                r["degraded"],
                self.latency_ms,
                versions,
            ]


@dataclass
class Retention:
    """Keep predictions younger than ``max_age_s`` and at most ``max_rows`` (None: no limit)."""

    max_age_s: float | None = None
    max_rows: int | None = None
    every_s: float = 3600.0


@dataclass
class _Stats:
    written: int = 0
    write_errors: int = 0
    last_error: str | None = None
    pruned: int = 0


class PredictionLog:
    """Background-batched writer and reader of the prediction log."""

    def __init__(
        self,
        url: str,
        *,
        flush_interval_s: float = 0.2,
        retention: Retention | None = None,
        retry_backoff_s: float = 1.0,
        on_written: Callable[[int], None] | None = None,
    ) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.engine = sa.create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)
        columns = [c.name for c in predictions.columns]
        self._features_at = columns.index("features")
        self._sqlite = self.engine.dialect.name == "sqlite"
        if self._sqlite:
            # One statement per batch: SQLite reads the rows from one JSON array.
            # Row-by-row executemany releases and re-takes the GIL per row, and
            # against a busy event loop 10,000 rows took 45 s instead of 60 ms.
            picks = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(columns)))
            self._insert_sql = (
                f"INSERT INTO predictions ({', '.join(columns)}) SELECT {picks} FROM json_each(?)"
            )
        else:
            marks = {"qmark": "?", "format": "%s", "pyformat": "%s", "numeric": ":{}"}
            mark = marks.get(self.engine.dialect.paramstyle, "%s")
            values = ", ".join(mark.format(i + 1) for i in range(len(columns)))
            self._insert_sql = f"INSERT INTO predictions ({', '.join(columns)}) VALUES ({values})"
        self.flush_interval_s = flush_interval_s
        self.retention = retention or Retention()
        self.retry_backoff_s = retry_backoff_s
        self.on_written = on_written
        self.stats = _Stats()
        self._queue: deque[tuple[int, Served]] = deque()
        self._cond = threading.Condition()
        self._enqueued = 0  # sequence number of the last accepted request
        self._done = 0  # every request up to this number is in the database
        self._pending_rows = 0
        self._closing = False
        self._flush_requested = False
        self._failures_closing = 0
        self._next_prune = 0.0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    @property
    def pending_rows(self) -> int:
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

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything accepted so far is written; False on timeout."""
        with self._cond:
            target = self._enqueued
            self._flush_requested = True
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def close(self, timeout: float = 30.0) -> bool:
        """Flush, stop the writer and release the database; False if rows were left unwritten."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        left = self._pending_rows
        if left:
            logger.error("prediction log closed with %d rows unwritten: %s", left, self.url)
        self.engine.dispose()
        return left == 0

    def writable(self) -> str | None:
        """None when the writer runs and the database takes writes, else why not."""
        if not self._thread.is_alive():
            return "prediction log writer is not running"
        if self.stats.last_error is not None:
            return f"prediction log cannot write: {self.stats.last_error}"
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(outcomes).where(outcomes.c.request_id == ""))
        except sa.exc.SQLAlchemyError as exc:
            return f"prediction log cannot write: {exc.__class__.__name__}: {exc}"
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
                if not batch and self._closing:
                    return
            if batch:
                self._write(batch)
            self._maybe_prune()

    def _write(self, batch: list[tuple[int, Served]]) -> None:
        records = [rec for _, served in batch for rec in served.records()]
        try:
            with self.engine.begin() as conn:
                # Straight to the driver: SQLAlchemy's per-row parameter processing
                # cost 11% of the entry's CPU under load.
                if self._sqlite:
                    conn.exec_driver_sql(self._insert_sql, (json.dumps(records),))
                else:
                    at = self._features_at
                    rows = [(*r[:at], json.dumps(r[at]), *r[at + 1 :]) for r in records]
                    conn.exec_driver_sql(self._insert_sql, rows)
        except sa.exc.SQLAlchemyError as exc:
            self.stats.write_errors += 1
            self.stats.last_error = f"{exc.__class__.__name__}: {exc}"[:500]
            logger.error(
                "prediction log write of %d rows failed, will retry: %s",
                len(records),
                self.stats.last_error,
            )
            with self._cond:  # keep the batch queued; retry after a pause
                if self._closing:
                    self._failures_closing += 1
                    if self._failures_closing >= 3:
                        self._queue.clear()  # give up at shutdown; close() reports the loss
                        return
                self._cond.wait_for(lambda: False, self.retry_backoff_s)
            return
        self.stats.last_error = None
        self.stats.written += len(records)
        with self._cond:
            for _ in batch:
                self._queue.popleft()
            self._pending_rows -= len(records)
            self._done = batch[-1][0]
            self._cond.notify_all()
        if self.on_written is not None:
            self.on_written(len(records))

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
        self.stats.pruned += deleted
        if deleted:
            logger.info("prediction log retention deleted %d predictions", deleted)
        return deleted

    # -- feedback and reports --------------------------------------------------

    def add_outcomes(self, items: Sequence[tuple[str, str, str]]) -> list[dict[str, Any]]:
        """Record ``(kind, id, actual)`` outcomes, kind ``request_id`` or ``device_id``.

        Returns one status per item: ``recorded``, ``unchanged``, ``replaced`` or
        ``unknown``. A device id resolves to that device's latest prediction.
        """
        by_device = self._latest_requests([i for k, i, _ in items if k == "device_id"])
        asked = [i for k, i, _ in items if k == "request_id"]
        rid_column = predictions.c.request_id
        known = {rid for (rid,) in self._select_in([rid_column], rid_column, asked)}
        rids = [
            by_device.get(i) if k == "device_id" else (i if i in known else None)
            for k, i, _ in items
        ]
        c = outcomes.c
        previous: dict[str, str] = dict(
            self._select_in([c.request_id, c.actual], c.request_id, [r for r in rids if r])
        )
        now, upserts, statuses = time.time(), {}, []
        for (kind, ident, actual), rid in zip(items, rids, strict=True):
            if rid is None:
                statuses.append(
                    {
                        kind: ident,
                        "status": "unknown",
                        "error": f"no logged prediction for this {kind}",
                    }
                )
                continue
            before = previous.get(rid)
            if before is None:
                status = "recorded"
            else:
                status = "unchanged" if before == actual else "replaced"
            previous[rid] = actual
            if status != "unchanged":
                upserts[rid] = {"request_id": rid, "actual": actual, "received_at": now}
            statuses.append({kind: ident, "request_id": rid, "status": status})
        if upserts:
            self._upsert_outcomes(list(upserts.values()))
        return statuses

    def _upsert_outcomes(self, rows: list[dict[str, Any]]) -> None:
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        else:
            raise RuntimeError(f"prediction log supports sqlite and postgresql, not {dialect}")
        stmt = insert(outcomes)
        stmt = stmt.on_conflict_do_update(
            index_elements=[outcomes.c.request_id],
            set_={"actual": stmt.excluded.actual, "received_at": stmt.excluded.received_at},
        )
        with self.engine.begin() as conn:
            for part in _chunks(rows, CHUNK * 10):
                conn.execute(stmt, part)

    def _select_in(
        self, columns: Sequence[sa.Column[Any]], key: sa.Column[Any], values: Sequence[str]
    ) -> Iterator[Any]:
        """Rows of ``columns`` whose ``key`` is among ``values``, asked CHUNK ids at a time."""
        with self.engine.connect() as conn:
            for part in _chunks(sorted(set(values)), CHUNK):
                yield from conn.execute(sa.select(*columns).where(key.in_(part)))

    def _latest_requests(self, device_ids: Sequence[str]) -> dict[str, str]:
        latest: dict[str, tuple[float, str]] = {}
        c = predictions.c
        for dev, ts, rid in self._select_in(
            [c.device_id, c.ts, c.request_id], c.device_id, device_ids
        ):
            if dev not in latest or (ts, rid) > latest[dev]:
                latest[dev] = (ts, rid)
        return {dev: rid for dev, (_, rid) in latest.items()}

    def _window(
        self, q: sa.Select[Any], since: float | None, until: float | None, arm: str | None
    ) -> sa.Select[Any]:
        if since is not None:
            q = q.where(predictions.c.ts >= since)
        if until is not None:
            q = q.where(predictions.c.ts < until)
        if arm is not None:
            q = q.where(predictions.c.arm == arm)
        return q

    def served(
        self, since: float | None = None, until: float | None = None, arm: str | None = None
    ) -> dict[str, int]:
        q = sa.select(predictions.c.arm, sa.func.count()).group_by(predictions.c.arm)
        with self.engine.connect() as conn:
            return dict(conn.execute(self._window(q, since, until, arm)).all())

    def report(
        self,
        challenger: str,
        challenger_fraction: float,
        since: float | None = None,
        until: float | None = None,
        arm: str | None = None,
    ) -> dict[str, Any]:
        """The A/B report (``ensemble.report``) over predictions in [since, until)."""
        return build_report(
            self.labelled(since, until, arm),
            self.served(since, until, arm),
            MEMBERS,
            challenger,
            challenger_fraction,
            window={"since": since, "until": until, "arm": arm},
        )

    def accuracy_by_arm(self) -> dict[str, tuple[int, int]]:
        """arm -> (correct, labelled) over every labelled prediction in the log."""
        correct = sa.func.sum(sa.case((predictions.c.prediction == outcomes.c.actual, 1), else_=0))
        q = (
            sa.select(predictions.c.arm, correct, sa.func.count())
            .join(outcomes, outcomes.c.request_id == predictions.c.request_id)
            .group_by(predictions.c.arm)
        )
        with self.engine.connect() as conn:
            return {arm: (int(k or 0), int(n)) for arm, k, n in conn.execute(q)}

    def labelled(
        self, since: float | None = None, until: float | None = None, arm: str | None = None
    ) -> Labelled:
        """Predictions with a recorded outcome, in time order."""
        cols = [predictions.c.ts, predictions.c.arm, predictions.c.prediction, outcomes.c.actual]
        votes = [predictions.c[c] for c in VOTE_COLUMNS.values()]
        q = sa.select(*cols, *votes).join(
            outcomes, outcomes.c.request_id == predictions.c.request_id
        )
        with self.engine.connect() as conn:
            rows = conn.execute(self._window(q, since, until, arm).order_by(predictions.c.ts)).all()
        n = len(rows)
        cols_t = list(zip(*rows, strict=True)) if rows else [()] * (4 + len(votes))
        return Labelled(
            ts=np.asarray(cols_t[0], dtype=float).reshape(n),
            arm=np.asarray(cols_t[1], dtype=object).reshape(n),
            served_pass=np.asarray([p == "pass" for p in cols_t[2]], dtype=bool).reshape(n),
            actual_pass=np.asarray([a == "pass" for a in cols_t[3]], dtype=bool).reshape(n),
            votes={
                m: np.asarray(
                    [np.nan if v is None else v for v in cols_t[4 + i]], dtype=float
                ).reshape(n)
                for i, m in enumerate(VOTE_COLUMNS)
            },
        )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
