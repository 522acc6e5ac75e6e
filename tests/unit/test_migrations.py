"""The ledger's Alembic migrations: a database written by release 0.1.0 upgrades intact."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ledger.migrate import current, drop_all, head, upgrade
from ledger.predlog import PredictionLog, metadata
from tests.unit.test_predlog import POSTGRES_URL, _served

#: Written by the prediction log of release 0.1.0 (commit c709685), see make_ledger_fixture.py.
FIXTURE = Path(__file__).resolve().parents[1] / "testdata" / "ledger-c709685.db"
TABLES = ("predictions", "outcomes")


def _contents(url: str) -> dict[str, set[tuple[object, ...]]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        out = {t: {tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {t}"))} for t in TABLES}
    engine.dispose()
    return out


def _release_rows() -> dict[str, list[dict[str, object]]]:
    with sqlite3.connect(FIXTURE) as db:
        db.row_factory = sqlite3.Row
        return {t: [dict(r) for r in db.execute(f"SELECT * FROM {t}")] for t in TABLES}


def test_a_release_database_upgrades_with_every_row_and_outcome(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    shutil.copy(FIXTURE, path)
    url = f"sqlite:///{path}"
    before = _contents(url)
    assert len(before["predictions"]) == 40 and len(before["outcomes"]) == 20
    log = PredictionLog(url)  # upgrades on open
    try:
        assert current(log.engine) == head()
        assert _contents(url) == before
        labelled = log.labelled()
        assert len(labelled) == 20
        report = log.report("xgboost", 0.2)
        assert sum(a["labelled"] for a in report["arms"].values()) == 20
        log.record(_served(["new-1"], ["D-new"]))
        assert log.flush(5)
        assert log.add_outcomes([("device_id", "D006", "fail")], "tester")[0]["status"] == (
            "replaced"
        )
    finally:
        log.close()


def test_the_migrated_schema_is_the_code_s_schema(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_a_database_made_by_create_all_is_stamped_not_recreated(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'created.db'}")
    metadata.create_all(engine)  # how the ledger was made before migrations
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO outcomes VALUES ('r', 'pass', 1.0)"))
    upgrade(engine)
    assert current(engine) == head()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM outcomes")).scalar() == 1


@pytest.mark.skipif(not POSTGRES_URL, reason="YE_TEST_POSTGRES_URL is not set (.ci/run sets it)")
def test_release_rows_upgrade_intact_on_postgresql() -> None:
    assert POSTGRES_URL is not None
    engine = sa.create_engine(POSTGRES_URL)
    drop_all(engine)
    upgrade(engine, "0001")  # the schema release 0.1.0 made
    rows = _release_rows()
    with engine.begin() as conn:
        for table, items in rows.items():
            columns = list(items[0])
            marks = ", ".join(f":{c}" for c in columns)
            statement = sa.text(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})")
            for item in items:
                if table == "predictions":
                    item = {
                        **item,
                        "cached": bool(item["cached"]),
                        "degraded": bool(item["degraded"]),
                    }
                conn.execute(statement, item)
    before = _contents(POSTGRES_URL)
    upgrade(engine)
    assert current(engine) == head()
    assert _contents(POSTGRES_URL) == before
    log = PredictionLog(POSTGRES_URL)
    try:
        assert len(log.labelled()) == 20
    finally:
        log.close()
        drop_all(engine)
        engine.dispose()
