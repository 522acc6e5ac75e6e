"""What the prediction log keeps, and where: its retention and its durability settings.

``Retention``: how long predictions stay (``prune`` applies it). ``Durability``: where
rows wait when the database does not take them, and how long a stall may last.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ledger.tables import outcomes, predictions

logger = logging.getLogger("ledger.predlog")


@dataclass
class Retention:
    """Keep predictions younger than ``max_age_s`` and at most ``max_rows`` (None: no limit)."""

    max_age_s: float | None = None
    max_rows: int | None = None
    every_s: float = 3600.0

    @property
    def limited(self) -> bool:
        """Whether there is anything to prune at all."""
        return self.max_age_s is not None or self.max_rows is not None


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


def prune(engine: sa.Engine, retention: Retention, now: float | None = None) -> int:
    """Apply ``retention`` now; returns the predictions deleted (outcomes follow them).

    ``now``: Unix seconds (default: the clock). Raises SQLAlchemy's errors.
    """
    r, deleted = retention, 0
    with engine.begin() as conn:
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


class Pruner:
    """Applies ``retention`` to ``engine`` when it is due (every ``retention.every_s``), from
    the writer's thread; a failure is logged and tried again when next due."""

    def __init__(self, engine: sa.Engine, retention: Retention) -> None:
        self.engine, self.retention, self._next = engine, retention, 0.0

    def when_due(self) -> None:
        r = self.retention
        if not r.limited or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + r.every_s
        try:
            self.run()
        except sa.exc.SQLAlchemyError as exc:
            logger.error("prediction log retention failed: %s", exc)

    def run(self, now: float | None = None) -> int:
        """Apply the retention now (``prune``); returns the predictions deleted."""
        return prune(self.engine, self.retention, now)


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


#: The end of every refusal by the log: it does not answer what it cannot record.
REFUSAL = "not serving predictions it cannot record"


def memory_only(
    database_error: str | None, spill_error: str | None, journal_error: str | None, spill: Any
) -> str | None:
    """Why a served row would be held in this process's memory only, else None: the
    database refuses writes, the spill failed and the journal failed (each error as its
    text, None when it works). Such a row is lost if the process stops before the
    database is back, so the log refuses to serve it (``LogWriter.check_room``). A log
    without a spill (``spill`` None: library use) holds rows in memory by design: None."""
    if spill is None or database_error is None or spill_error is None or journal_error is None:
        return None
    return (
        f"the database refuses writes ({database_error}), the spill fails ({spill_error}) "
        f"and the journal fails ({journal_error})"
    )
