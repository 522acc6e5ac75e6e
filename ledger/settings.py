"""The ledger's settings: where the prediction log lives and how it keeps rows safe.

Read once from ``YIELD_ENSEMBLE_*`` variables at start-up (``ensemble.settings.load``).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

from ensemble.settings import CONFIG, load


def default_data_dir() -> Path:
    """Where the prediction log lives by default: an absolute path, the same from any directory."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).absolute() / "yield-ensemble"


class LedgerSettings(BaseSettings):
    """The prediction log's knobs. Each is set by ``YIELD_ENSEMBLE_<NAME>``."""

    model_config = CONFIG

    data_dir: Path = Field(
        default_factory=lambda: default_data_dir(),
        description="Directory of the SQLite prediction log and its spill (default: "
        "$XDG_DATA_HOME/yield-ensemble, i.e. ~/.local/share/yield-ensemble, whatever the "
        "working directory).",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the prediction log, e.g. postgresql+psycopg://... "
        "(default: SQLite in data_dir).",
    )
    prediction_log_flush_interval_s: float = Field(
        0.2, gt=0, le=60, description="Longest a served prediction waits to be written."
    )
    prediction_log_retention_days: float | None = Field(
        180, gt=0, description="Delete logged predictions older than this (empty: keep all)."
    )
    prediction_log_max_rows: int | None = Field(
        None, ge=1, description="Keep at most this many logged predictions (default no limit)."
    )
    prediction_log_spill_dir: Path | None = Field(
        None,
        description="Where rows wait on disk while the database is down, and refused rows "
        "(dead-letter/) are kept (default: data_dir/spill).",
    )
    prediction_log_spill_max_mb: float = Field(
        1024, gt=0, description="Most disk the spill may use (~360 B per row)."
    )
    prediction_log_max_pending_rows: int = Field(
        100_000,
        ge=1,
        description="Most rows held in memory when neither the database nor the spill takes "
        "them; beyond it predictions answer 503 (~0.5 kB per row).",
    )
    prediction_log_stall_s: float = Field(
        60, gt=0, description="A log writer that moves no row this long fails /livez."
    )
    ledger_retry_s: float = Field(
        15,
        ge=0,
        le=120,
        description="How long, from its first failure, a feedback write or a report or "
        "dashboard read is retried across a lost database connection (a restart, a "
        "failover) before it answers 503 with Retry-After (0: no retry).",
    )
    read_processes: int = Field(
        1,
        ge=0,
        le=8,
        description="Processes of its own for the A/B report and dashboard reads, so their "
        "CPU never shares the entry worker's with predictions and probes (~60 MB each; 0: "
        "in the entry worker's threads).",
    )
    drift_window_s: float = Field(
        86400, gt=0, description="The drift gauges judge the lots served in this many seconds."
    )
    drift_interval_s: float = Field(
        300, ge=0, description="Seconds between updates of the drift gauges (0: never)."
    )

    @property
    def spill_dir(self) -> Path:
        """Where the prediction log spills: ``prediction_log_spill_dir``, else data_dir/spill."""
        return (self.prediction_log_spill_dir or self.data_dir / "spill").resolve()

    @property
    def log_url(self) -> str:
        """Where the prediction log lives: ``database_url``, else SQLite in ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'predictions.db').resolve()}"


@functools.cache
def get_ledger_settings() -> LedgerSettings:
    """The ledger's settings, validated once; SettingsError naming the bad variable."""
    return load(LedgerSettings)
