"""The prediction log's database plumbing: the engine, SQLite's pragmas, the one insert, JSON.

``make_engine`` never keeps a broken or read-only connection for later;
``PredictionWrites`` writes a batch of prediction records (``ledger.tables.Served.records``)
in one statement straight to the driver and tells an outage (nothing can be written)
from rows refused on their own; ``strict_json`` sets aside records strict JSON cannot
hold before they reach the database.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from ledger.errors import safe_url
from ledger.tables import JSON_COLUMNS, Served, predictions
from ops.logs import redact


def make_engine(url: str) -> sa.Engine:
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


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


#: Told of records the database refused on their own: (record, why) pairs.
Refused = Callable[[Sequence[tuple[Any, str]]], None]


class PredictionWrites:
    """Prediction records into ``engine``'s ``predictions``, one statement per batch.

    A record is one list in ``predictions``' column order. ON CONFLICT DO NOTHING: a
    row replayed from the spill that did arrive is no error.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        columns = [c.name for c in predictions.columns]
        self._json_at = [columns.index(name) for name in JSON_COLUMNS]
        self.sqlite = engine.dialect.name == "sqlite"
        if self.sqlite:
            # One statement per batch: SQLite reads the rows from one JSON array.
            # Row-by-row executemany releases and re-takes the GIL per row, and
            # against a busy event loop 10,000 rows took 45 s instead of 60 ms.
            # ON CONFLICT, not OR IGNORE, which would also skip a row that breaks
            # NOT NULL.
            picks = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(columns)))
            self.sql = (
                f"INSERT INTO predictions ({', '.join(columns)}) "
                f"SELECT {picks} FROM json_each(?) WHERE true ON CONFLICT DO NOTHING"
            )
        else:
            marks = {"qmark": "?", "format": "%s", "pyformat": "%s", "numeric": ":{}"}
            mark = marks.get(engine.dialect.paramstyle, "%s")
            values = ", ".join(mark.format(i + 1) for i in range(len(columns)))
            self.sql = (
                f"INSERT INTO predictions ({', '.join(columns)}) VALUES ({values}) "
                "ON CONFLICT DO NOTHING"
            )

    def execute(
        self, conn: sa.Connection, records: list[list[Any]], payload: str | None = None
    ) -> None:
        """Insert ``records`` on ``conn``; ``payload`` is ``records`` as JSON when already
        encoded. Raises SQLAlchemy's errors as they come."""
        # Straight to the driver: SQLAlchemy's per-row parameter processing
        # cost 11% of the entry's CPU under load.
        if self.sqlite:
            conn.exec_driver_sql(self.sql, (payload or json.dumps(records),))
            return
        rows = []
        width = len(predictions.columns)
        for record in records:
            # A record spilled by an older release lacks the newest columns: NULL there.
            row = list(record) + [None] * (width - len(record))
            for at in self._json_at:
                row[at] = json.dumps(row[at])
            rows.append(tuple(row))
        conn.exec_driver_sql(self.sql, rows)

    def insert(self, records: list[list[Any]], payload: str | None = None) -> None:
        """One transaction; ``payload`` is ``records`` as JSON when already encoded."""
        with self.engine.begin() as conn:
            self.execute(conn, records, payload)

    def not_stored(self, records: list[list[Any]]) -> list[list[Any]]:
        """``records`` whose request id (their first column) the database does not have."""
        column = predictions.c.request_id
        ids = [r[0] for r in records]
        have: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                have.update(conn.execute(sa.select(column).where(column.in_(chunk))).scalars())
        return [r for r in records if r[0] not in have]

    def refuses(self) -> str | None:
        """None if the database takes a valid prediction row (rolled back), else the error.

        This tells an outage (nothing can be written) from rows refused on their own.
        """
        try:
            with self.engine.connect() as conn:
                self.execute(conn, [PROBE_RECORD])
                conn.rollback()
        except sa.exc.SQLAlchemyError as exc:
            return f"prediction log cannot write: {error_text(exc)}"
        return None

    def insert_isolating(
        self, records: list[list[Any]], payload: str | None, refused: Refused
    ) -> tuple[str | None, int]:
        """Insert; rows the database refuses on their own go to ``refused``.

        Returns (None, rows refused) once every row is written or refused, else (the
        error that says the database takes no writes at all, those rows).
        """
        if not records:
            return None, 0
        try:
            self.insert(records, payload)
            return None, 0
        except sa.exc.SQLAlchemyError as exc:
            error = error_text(exc)
        outage = self.refuses()
        if outage is not None:
            return outage, 0
        if len(records) == 1:
            refused([(records[0], error)])
            return None, 1
        half = len(records) // 2
        # Halves until the refused rows stand alone: log2(n) extra statements per bad row.
        first, alone = self.insert_isolating(records[:half], None, refused)
        if first is not None:
            return first, alone  # the database went away meanwhile; the caller keeps all
        second, more = self.insert_isolating(records[half:], None, refused)
        return second, alone + more


#: A valid row, inserted and rolled back to see whether the database takes writes.
PROBE_RECORD: list[Any] = next(
    Served(
        0.0, 0.0, ["yield-ensemble-probe"], [{}], np.zeros((1, 1), dtype=np.float32),
        [{"arm": "probe", "prediction": "pass", "probability": 1.0, "votes": {},
          "cached": False, "degraded": False}], {},
    ).records()
)  # fmt: skip


def strict_json(
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


def error_text(exc: BaseException) -> str:
    """``exc`` as "ClassName: message" with any URL password masked, cut to 500 characters."""
    return redact(f"{exc.__class__.__name__}: {exc}")[:500]
