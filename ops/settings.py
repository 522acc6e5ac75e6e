"""Operations settings: API keys, the body limit, logs, tracing, entry workers.

Read once from ``YIELD_ENSEMBLE_*`` variables at start-up (``ensemble.settings.load``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from ensemble.settings import CONFIG, load


class OpsSettings(BaseSettings):
    """Operations knobs. Each is set by ``YIELD_ENSEMBLE_<NAME>``."""

    model_config = CONFIG

    entry_workers: int = Field(
        1, ge=1, le=32, description="Processes of the entry service (validation, cache, vote)."
    )
    api_keys: str | None = Field(
        None,
        description="API keys, comma-separated id:role+role:secret (roles predict, feedback, "
        "report, admin).",
    )
    api_keys_file: Path | None = Field(
        None, description="A file of API keys, one id:role+role:secret per line (# comments)."
    )
    predict_requires_key: bool = Field(
        False, description="Require a key with the predict role on /predict and /predict_batch."
    )
    max_body_mb: float = Field(
        32,
        gt=0,
        description="Largest request body, expanded if compressed; a larger one is answered 413.",
    )
    keepalive_s: float = Field(
        75,
        gt=0,
        le=3600,
        description="How long an idle keep-alive connection stays open: above the proxy in "
        "front's (nginx, cloud load balancers: 60 s), so no request races the close.",
    )
    header_timeout_s: float = Field(
        10,
        gt=0,
        le=300,
        description="How long a client may take to send a request's headers once it started.",
    )
    tracing: bool = Field(
        False,
        description="OpenTelemetry spans for /predict, /predict_batch, /feedback and member "
        "calls (BentoML's tracing config picks the exporter); off saves ~2 ms per request.",
    )
    log_format: Literal["json", "text"] = Field(
        "json", description="Service logs: one JSON object per line, or text for development."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Service log level; DEBUG adds each request's features."
    )


@functools.cache
def get_ops_settings() -> OpsSettings:
    """The operations settings, validated once; SettingsError naming the bad variable."""
    return load(OpsSettings)
