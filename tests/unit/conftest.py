"""Fixtures the unit tests share."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ledger.migrate import drop_all, upgrade

#: A PostgreSQL database the tests may empty; `.ci/run` sets it, without it the
#: PostgreSQL cases are skipped.
POSTGRES_URL = os.environ.get("YE_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An empty ledger at the newest schema, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    elif POSTGRES_URL:
        engine = sa.create_engine(POSTGRES_URL)
        drop_all(engine)
    else:
        pytest.skip("YE_TEST_POSTGRES_URL is not set (.ci/run sets it)")
    upgrade(engine)
    yield engine
    engine.dispose()
