"""The ledger's Alembic migrations: a database written by release 0.1.0 upgrades intact."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ledger.migrate import current, drop_all, head, upgrade
from ledger.predlog import PredictionLog, metadata
from tests.unit.conftest import POSTGRES_URL
from tests.unit.test_predlog import ARMS, _served

#: Written by the prediction log of release 0.1.0 (commit c709685), see make_ledger_fixture.py.
FIXTURE = Path(__file__).resolve().parents[1] / "testdata" / "ledger-c709685.db"
TABLES = ("predictions", "outcomes")


#: The 0.1.0 columns that every later schema keeps as they were.
KEPT = (
    "request_id, ts, arm, device_id, wafer_id, lot_id, features, prediction, probability, "
    "cached, degraded, latency_ms, model_versions"
)
OLD_MEMBERS = ("random_forest", "xgboost", "keras")


def _contents(url: str) -> dict[str, set[tuple[object, ...]]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        kept = conn.execute(sa.text(f"SELECT {KEPT} FROM predictions"))
        out = {
            "predictions": {tuple(r) for r in kept},
            "outcomes": {tuple(r) for r in conn.execute(sa.text("SELECT * FROM outcomes"))},
        }
    engine.dispose()
    return out


def _votes(url: str) -> dict[str, dict[str, float]]:
    """request id -> member votes, from the 0.1.0 columns or from the JSON column."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("predictions")}
        if "votes" in columns:
            rows = conn.execute(sa.text("SELECT request_id, votes FROM predictions"))
            out = {rid: json.loads(v) for rid, v in rows}
        else:
            p_columns = ", ".join(f"p_{m}" for m in OLD_MEMBERS)
            rows = conn.execute(sa.text(f"SELECT request_id, {p_columns} FROM predictions"))
            out = {
                rid: {m: p for m, p in zip(OLD_MEMBERS, ps, strict=True) if p is not None}
                for rid, *ps in rows
            }
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
    before, votes = _contents(url), _votes(url)
    assert len(before["predictions"]) == 40 and len(before["outcomes"]) == 20
    # 8 challenger rows with one vote, 4 ensemble rows without keras, 28 with three.
    assert sorted(len(v) for v in votes.values()) == [1] * 8 + [2] * 4 + [3] * 28
    log = PredictionLog(url)  # upgrades on open
    try:
        assert current(log.engine) == head()
        assert _contents(url) == before
        assert _votes(url) == votes
        labelled = log.labelled()
        assert len(labelled) == 20
        report = log.report(ARMS)
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
    upgrade(engine, "0002")  # the tables create_all made before migrations (commit 49beec2)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE alembic_version"))
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
    before, votes = _contents(POSTGRES_URL), _votes(POSTGRES_URL)
    upgrade(engine)
    assert current(engine) == head()
    assert _contents(POSTGRES_URL) == before
    assert _votes(POSTGRES_URL) == votes
    log = PredictionLog(POSTGRES_URL)
    try:
        assert len(log.labelled()) == 20
    finally:
        log.close()
        drop_all(engine)
        engine.dispose()
