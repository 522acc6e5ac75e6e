"""The prediction log's database plumbing: the engine, SQLite's pragmas, the insert, its rows.

``make_engine`` never keeps a broken or read-only connection for later;
``PredictionWrites`` writes a batch of prediction records (``ledger.tables.Served.records``)
in one transaction straight to the driver and tells an outage (nothing can be written)
from rows refused on their own; ``storable`` sets aside records strict JSON cannot
hold before they reach the database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain
from math import isfinite
from typing import Any

import numpy as np
import sqlalchemy as sa

from ensemble.responses import strict_json
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
    """Prediction records into ``engine``'s ``predictions``, a few statements per batch.

    A record is one list in ``predictions``' column order (``storable`` turns records into
    the rows bound here). ON CONFLICT DO NOTHING: a row replayed from the spill that did
    arrive is no error.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        head = f"INSERT INTO predictions ({', '.join(_COLUMNS)}) VALUES "
        if self.sqlite:
            # Multi-row VALUES of bound parameters, SQLITE_ROWS_PER_STATEMENT rows each:
            # the driver releases the GIL once per statement, not per row (row-by-row
            # executemany against a busy event loop took 45 s for 10,000 rows, each row
            # waiting for the GIL), and SQLite parses no JSON. 10,000 rows: 62 ms, against
            # 235-357 ms through json_each (the form before) and 86 ms by executemany,
            # measured on one connection in memory.
            self._head, self._one = head, "(" + ", ".join("?" * _WIDTH) + ")"
            self.sql = self._sqlite_sql(SQLITE_ROWS_PER_STATEMENT)
        else:
            marks = {"qmark": "?", "format": "%s", "pyformat": "%s", "numeric": ":{}"}
            mark = marks.get(engine.dialect.paramstyle, "%s")
            values = ", ".join(mark.format(i + 1) for i in range(_WIDTH))
            self.sql = f"{head}({values}) ON CONFLICT DO NOTHING"

    def _sqlite_sql(self, n: int) -> str:
        return f"{self._head}{', '.join([self._one] * n)} ON CONFLICT DO NOTHING"

    def execute(
        self,
        conn: sa.Connection,
        records: list[list[Any]],
        rows: list[tuple[Any, ...]] | None = None,
    ) -> None:
        """Insert ``records`` on ``conn``; ``rows`` is ``storable``'s rows for them when
        already made. Raises SQLAlchemy's errors as they come, ValueError or TypeError
        for a record ``storable`` would refuse."""
        if rows is None:
            rows = [_row(record) for record in records]
        # Straight to the driver: SQLAlchemy's per-row parameter processing
        # cost 11% of the entry's CPU under load.
        if not self.sqlite:
            conn.exec_driver_sql(self.sql, rows)
            return
        per = SQLITE_ROWS_PER_STATEMENT
        for start in range(0, len(rows), per):
            chunk = rows[start : start + per]
            sql = self.sql if len(chunk) == per else self._sqlite_sql(len(chunk))
            conn.exec_driver_sql(sql, tuple(chain.from_iterable(chunk)))

    def insert(self, records: list[list[Any]], rows: list[tuple[Any, ...]] | None = None) -> None:
        """One transaction; ``rows`` is ``storable``'s rows for ``records`` when made."""
        with self.engine.begin() as conn:
            if self.sqlite:
                conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_WRITER_CACHE_KB}")
            self.execute(conn, records, rows)

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
        self, records: list[list[Any]], rows: list[tuple[Any, ...]] | None, refused: Refused
    ) -> tuple[str | None, int]:
        """Insert; rows the database refuses on their own go to ``refused``.

        Returns (None, rows refused) once every row is written or refused, else (the
        error that says the database takes no writes at all, those rows).
        """
        if not records:
            return None, 0
        try:
            self.insert(records, rows)
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
        low, high = (None, None) if rows is None else (rows[:half], rows[half:])
        first, alone = self.insert_isolating(records[:half], low, refused)
        if first is not None:
            return first, alone  # the database went away meanwhile; the caller keeps all
        second, more = self.insert_isolating(records[half:], high, refused)
        return second, alone + more


#: A valid row, inserted and rolled back to see whether the database takes writes.
PROBE_RECORD: list[Any] = next(
    Served(
        0.0, 0.0, ["yield-ensemble-probe"], [{}], np.zeros((1, 1), dtype=np.float32),
        [{"arm": "probe", "prediction": "pass", "probability": 1.0, "votes": {},
          "cached": False, "degraded": False}], {},
    ).records()
)  # fmt: skip


def storable(
    records: list[list[Any]],
) -> tuple[list[list[Any]], list[tuple[Any, ...]], list[tuple[Any, str]]]:
    """``records`` the ledger can hold, their rows to bind, and the others with the reason.

    A row is its record padded with NULLs to ``predictions``' width (a record spilled by
    an older release lacks the newest columns), the JSON columns (``JSON_COLUMNS``) as
    compact JSON text. A record is refused when a value is not a JSON scalar where one
    belongs, or strict JSON cannot hold it (NaN, infinity): the rule ``json.dumps(record,
    allow_nan=False)`` applied before; the JSON text is ``ensemble.responses.strict_json``'s.
    """
    bulk = _bulk_rows(records)
    if bulk is not None:
        return records, bulk, []
    good, rows, refused = [], [], []
    for record in records:
        try:
            rows.append(_row(record))
        except (TypeError, ValueError) as exc:
            refused.append((record, f"not storable as strict JSON: {exc}"))
        else:
            good.append(record)
    return good, rows, refused


#: The writer's SQLite page cache (KiB, SQLite's default: 2,000): a 10,000-row batch
#: touches more pages of the table and its five indexes than that holds, and spilled
#: them mid-transaction. With 16 MiB, 10,000 rows into a 120,000-row ledger: 136 ms of
#: CPU against 149-162 (median of 12 batches; ``bench.predlog`` in the note). Only the
#: writer's connection (each use opens one) sets it; reads keep the default.
SQLITE_WRITER_CACHE_KB = 16_384
#: Rows per INSERT statement on SQLite (20 columns: 10,000 bound parameters, under
#: SQLite's default limit of 32,766 since 3.32).
SQLITE_ROWS_PER_STATEMENT = 500
_COLUMNS = [c.name for c in predictions.columns]
_JSON_AT = tuple(_COLUMNS.index(name) for name in JSON_COLUMNS)
_WIDTH = len(_COLUMNS)
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _row(record: Sequence[Any]) -> tuple[Any, ...]:
    """``record`` as a row to bind (see ``storable``); ValueError or TypeError saying why not."""
    row = list(record)
    if len(row) < _WIDTH:
        row += [None] * (_WIDTH - len(row))
    for at in _JSON_AT:
        row[at] = strict_json(row[at]).decode()
    kinds = set(map(type, row))
    if not kinds <= _SCALARS:
        raise TypeError(f"not a JSON scalar: {sorted(k.__name__ for k in kinds - _SCALARS)}")
    if float in kinds and not all(isfinite(v) for v in row if type(v) is float):
        raise ValueError("Out of range float values are not JSON compliant")
    return tuple(row)


def _bulk_rows(records: list[list[Any]]) -> list[tuple[Any, ...]] | None:
    """``storable``'s rows for ``records`` made a column at a time (10,000 rows: ~4x less
    CPU than a row at a time), or None when any record is not of the plain shape the
    writer makes (full width, scalars, finite floats, the JSON columns lists of numbers
    and dicts of numbers by identifier): then ``storable`` goes row by row, and says why.

    The JSON columns are encoded in one call each and the text cut at the boundaries
    between its elements: numbers and identifiers hold no brackets, braces or commas.
    """
    if not records or set(map(len, records)) != {_WIDTH}:
        return None
    columns: list[Sequence[Any]] = list(zip(*records, strict=True))
    for at, column in enumerate(columns):
        if at in _JSON_AT:
            texts = _json_texts(column)
            if texts is None:
                return None
            columns[at] = texts
            continue
        kinds = set(map(type, column))
        if not kinds <= _SCALARS or (float in kinds and not _finite(column, kinds)):
            return None
    return list(zip(*columns, strict=True))


def _finite(values: Sequence[Any], kinds: set[type]) -> bool:
    """Whether every float of ``values`` (of ``kinds``) is finite; False may be a sum
    that overflowed, or a column mixing floats with other kinds: the caller checks again."""
    try:
        return kinds <= {float, int} and isfinite(sum(values))
    except OverflowError:  # an int too large for a float
        return False


def _json_texts(column: Sequence[Any]) -> list[str] | None:
    """Each list of numbers, or dict of numbers by identifier, of ``column`` as its compact
    JSON text (``strict_json``'s); None for any other value."""
    kinds = set(map(type, column))
    if kinds == {list}:
        cells, opening, closing = list(chain.from_iterable(column)), "[", "]"
    elif kinds == {dict}:
        keys = set(chain.from_iterable(column))
        if not all(type(k) is str and k.isidentifier() for k in keys):
            return None
        if any("NaN" in k or "Infinity" in k for k in keys):
            return None  # strict_json would encode the whole column with the standard library
        cells, opening, closing = list(chain.from_iterable(map(dict.values, column))), "{", "}"
    else:
        return None
    cell_kinds = set(map(type, cells))
    if cells and not _finite(cells, cell_kinds):
        return None
    text = strict_json(list(column)).decode()
    parts = text[2:-2].split(f"{closing},{opening}")
    if len(parts) != len(column):
        return None
    return [f"{opening}{part}{closing}" for part in parts]


def error_text(exc: BaseException) -> str:
    """``exc`` as "ClassName: message" with any URL password masked, cut to 500 characters."""
    return redact(f"{exc.__class__.__name__}: {exc}")[:500]
