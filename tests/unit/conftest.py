"""Fixtures the unit tests share."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from ensemble.drift import Reference
from ensemble.schema import DEFAULT_FEATURES
from ledger.migrate import drop_all, upgrade
from ledger.predlog import Durability, PredictionLog, Served
from train.reference import fit_reference
from train.synthetic import generate

#: A PostgreSQL database the tests may empty; `.ci/run` sets it, without it the
#: PostgreSQL cases are skipped.
POSTGRES_URL = os.environ.get("YE_TEST_POSTGRES_URL")


#: The model versions the unit tests' logged predictions name.
VERSIONS = {"random_forest": "rf:1", "xgboost": "xgb:1", "keras": "nn:1"}


def empty_ledger_url(backend: str, tmp_path: Path) -> str:
    """The URL of an empty ledger: ``backend`` "sqlite", a new file under ``tmp_path`` (in a
    directory still to be made), or "postgresql", the test database with every table
    dropped; skips the test without YE_TEST_POSTGRES_URL."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'sub' / 'ledger.db'}"
    if not POSTGRES_URL:
        pytest.skip("YE_TEST_POSTGRES_URL is not set (.ci/run sets it)")
    engine = sa.create_engine(POSTGRES_URL)
    drop_all(engine)  # each test starts from empty tables
    engine.dispose()
    return POSTGRES_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An empty ledger at the newest schema, on SQLite and on PostgreSQL."""
    url = empty_ledger_url(request.param, tmp_path)
    if url.startswith("sqlite"):
        (tmp_path / "sub").mkdir()
    engine = sa.create_engine(url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PredictionLog]:
    """A prediction log writing every 0.05 s to an empty ledger, on SQLite and on PostgreSQL."""
    url = empty_ledger_url(request.param, tmp_path)
    log = PredictionLog(
        url, flush_interval_s=0.05, durability=Durability(spill_dir=tmp_path / "spill")
    )
    yield log
    log.close()


def log_devices(log: PredictionLog, devices: list[str]) -> None:
    """One logged prediction per device id (request id ``r-<device>``, wafer W1, pass),
    written before it returns."""
    results = [
        {"prediction": "pass", "probability": 0.6, "votes": {"xgboost": 0.6}, "arm": "ensemble",
         "cached": False, "degraded": False}
        for _ in devices
    ]  # fmt: skip
    ids = [{"device_id": d, "wafer_id": "W1", "lot_id": None} for d in devices]
    rows = np.zeros((len(devices), 2), dtype=np.float32)
    log.record(Served(1000.0, 1.0, [f"r-{d}" for d in devices], ids, rows, results, VERSIONS))
    assert log.flush(10)


def default_rows(frame: Any) -> np.ndarray:
    """The default features' columns of a synthetic ``frame``, (n, 6) float32."""
    return frame[list(DEFAULT_FEATURES)].to_numpy(np.float32)


@pytest.fixture(scope="module")
def reference() -> Reference:
    """Reference distributions of 6,400 synthetic training rows (seed 3) and 1,600 held out."""
    data = generate(8000, seed=3)
    x = default_rows(data)
    idx = np.random.default_rng(3).permutation(len(x))
    train, held = idx[:6400], idx[6400:]
    return fit_reference(DEFAULT_FEATURES, x[train], x[held], data["wafer_id"].to_numpy()[train])
