"""The prediction log: every served prediction, written in the background, joined to outcomes.

SQLite (WAL) by default; any SQLAlchemy URL, PostgreSQL included, so several
replicas can share one log. ``PredictionLog`` is the writer (``ledger.writer``) and
the queries (``ledger.queries``) over one engine; the tables are in ``ledger.tables``.
"""

from __future__ import annotations

from ensemble.errors import LogBackedUp
from ledger.policy import Durability, LogEvent, LogStatus, Retention
from ledger.queries import LedgerQueries
from ledger.tables import (
    CHUNK,
    JSON_COLUMNS,
    Served,
    metadata,
    outcome_events,
    outcomes,
    predictions,
)
from ledger.writer import LogWriter

__all__ = [
    "CHUNK",
    "JSON_COLUMNS",
    "Durability",
    "LogBackedUp",
    "LogEvent",
    "LogStatus",
    "PredictionLog",
    "Retention",
    "Served",
    "metadata",
    "outcome_events",
    "outcomes",
    "predictions",
]


class PredictionLog(LogWriter, LedgerQueries):
    """Background-batched writer and reader of the prediction log."""
