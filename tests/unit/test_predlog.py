"""The prediction log on a real SQLite file: background writes, feedback, retention."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from ensemble.arms import Arm, build_arms
from ensemble.errors import LogBackedUp
from ledger.predlog import Durability, PredictionLog, Retention, Served, metadata
from tests.unit.conftest import VERSIONS


def _served(
    rids: list[str], devices: list[str | None], arm: str = "ensemble", ts: float | None = None
) -> Served:
    rows = np.arange(len(rids) * 2, dtype=np.float32).reshape(len(rids), 2) + np.float32(0.1)
    votes = (
        {"random_forest": 0.9, "xgboost": 0.2, "keras": 0.7}
        if arm == "ensemble"
        else {"xgboost": 0.2}
    )
    results = [
        {
            "prediction": "pass",
            "probability": 0.6,
            "votes": votes,
            "arm": arm,
            "cached": False,
            "degraded": False,
            "missing_members": [],
        }
        for _ in rids
    ]
    ids = [{"device_id": d, "wafer_id": "W1", "lot_id": None} for d in devices]
    return Served(time.time() if ts is None else ts, 3.5, rids, ids, rows, results, VERSIONS)


ARMS = build_arms([Arm("challenger", "xgboost", 0.1)], ["random_forest", "xgboost", "keras"])


def _rows(log: PredictionLog) -> list[sa.Row]:
    with log.engine.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM predictions ORDER BY request_id")).all()


def test_records_every_field_in_the_background(log: PredictionLog) -> None:
    log.record(_served(["a", "b"], ["D1", None]))
    assert log.flush(5)
    a, b = _rows(log)
    assert (a.request_id, a.device_id, a.wafer_id, a.lot_id, a.arm) == (
        "a",
        "D1",
        "W1",
        None,
        "ensemble",
    )
    # JSON floats that read back as exactly the float32 values the models saw.
    assert np.array_equal(
        np.asarray(json.loads(a.features), dtype=np.float32), np.float32([0.1, 1.1])
    )
    assert json.loads(a.features) == [float(np.float32(0.1)), float(np.float32(1.1))]
    assert json.loads(a.votes) == {"random_forest": 0.9, "xgboost": 0.2, "keras": 0.7}
    assert (a.prediction, a.probability, a.cached, a.degraded, a.latency_ms) == (
        "pass",
        0.6,
        False,
        False,
        3.5,
    )
    assert '"xgboost": "xgb:1"' in a.model_versions
    assert b.device_id is None
    assert np.array_equal(
        np.asarray(json.loads(b.features), dtype=np.float32), np.float32([2.1, 3.1])
    )
    assert log.pending_rows == 0 and log.status.written == 2


def test_sqlite_uses_wal(log: PredictionLog) -> None:
    if log.engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    with log.engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"


def test_challenger_rows_leave_uncomputed_votes_null(log: PredictionLog) -> None:
    log.record(_served(["c"], ["D9"], arm="challenger"))
    log.flush(5)
    (c,) = _rows(log)
    assert (c.arm, json.loads(c.votes)) == ("challenger", {"xgboost": 0.2})


def test_close_writes_everything_accepted(tmp_path: Path) -> None:
    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}", flush_interval_s=30)
    for i in range(200):
        log.record(_served([f"r{i}"], [f"D{i}"]))
    assert log.close(timeout=10).lost == 0
    reopened = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}")
    assert len(_rows(reopened)) == 200
    with pytest.raises(RuntimeError, match="closed"):
        log.record(_served(["late"], [None]))
    reopened.close()


def test_feedback_statuses_are_idempotent(log: PredictionLog) -> None:
    log.record(_served(["a", "b"], ["D1", "D2"]))
    log.flush(5)
    first = log.add_outcomes(
        [
            ("request_id", "a", "pass"),
            ("device_id", "D2", "fail"),
            ("request_id", "nope", "pass"),
            ("device_id", "D404", "fail"),
        ]
    )
    assert [s["status"] for s in first] == ["recorded", "recorded", "unknown", "unknown"]
    assert first[1]["request_id"] == "b"
    assert "no logged prediction" in first[3]["error"]
    again = log.add_outcomes([("request_id", "a", "pass"), ("request_id", "b", "pass")])
    assert [s["status"] for s in again] == ["unchanged", "replaced"]
    labelled = log.labelled()
    assert len(labelled) == 2
    assert labelled.actual_pass.tolist() == [True, True]


def test_device_feedback_goes_to_the_latest_prediction(log: PredictionLog) -> None:
    log.record(_served(["old"], ["D1"], ts=1000.0))
    log.record(_served(["new"], ["D1"], ts=2000.0))
    log.flush(5)
    (status,) = log.add_outcomes([("device_id", "D1", "fail")])
    assert status["request_id"] == "new"


def test_the_same_id_twice_in_one_call_keeps_the_last(log: PredictionLog) -> None:
    log.record(_served(["a"], ["D1"]))
    log.flush(5)
    statuses = log.add_outcomes([("request_id", "a", "pass"), ("request_id", "a", "fail")])
    assert [s["status"] for s in statuses] == ["recorded", "replaced"]
    assert log.labelled().actual_pass.tolist() == [False]


def test_windows_and_arm_filters(log: PredictionLog) -> None:
    log.record(_served(["e1", "e2"], ["D1", "D2"], ts=100.0))
    log.record(_served(["c1"], ["D3"], arm="challenger", ts=200.0))
    log.flush(5)
    log.add_outcomes([("request_id", r, "pass") for r in ("e1", "e2", "c1")])
    assert log.served() == {"ensemble": 2, "challenger": 1}
    assert log.served(since=150) == {"challenger": 1}
    assert log.served(until=150, arm="ensemble") == {"ensemble": 2}
    assert len(log.labelled(arm="challenger")) == 1
    assert np.isnan(log.labelled(arm="challenger").votes["keras"]).all()
    assert len(log.labelled(since=300)) == 0


def test_retention_by_age_and_rows(tmp_path: Path) -> None:
    log = PredictionLog(
        f"sqlite:///{tmp_path / 'log.db'}", retention=Retention(max_age_s=100, max_rows=2)
    )
    now = time.time()
    for i, age in enumerate([1000, 50, 40, 30]):
        log.record(_served([f"r{i}"], [None], ts=now - age))
    log.flush(5)
    log.add_outcomes([("request_id", "r0", "pass")])
    log.prune()  # the writer prunes on its own hourly; this applies the setting now
    # r0 by age, r1 by the row limit
    assert [r.request_id for r in _rows(log)] == ["r2", "r3"]
    with log.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM outcomes")).scalar() == 0
    log.close()


def test_an_unwritable_database_without_a_spill_holds_rows_and_retries(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    log = PredictionLog(
        f"sqlite:///{db}",
        flush_interval_s=0.05,
        retry_backoff_s=0.05,
        durability=Durability(spill_dir=None, max_pending_rows=2, stall_s=0.2),
    )
    assert log.writable() is None and log.accepting() is None
    with log.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE predictions"))
    log.record(_served(["a"], [None]))
    deadline = time.monotonic() + 5
    while log.status.database_error is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "predictions" in (log.writable() or "")
    assert "predictions" in (log.accepting() or "")
    assert log.pending_rows == 1  # kept for the retry, not dropped
    log.check_room()
    log.record(_served(["b"], [None]))
    with pytest.raises(LogBackedUp, match="2 unwritten predictions"):
        log.check_room()
    time.sleep(0.3)
    assert log.stalled_for() > 0.2  # what fails /livez
    with log.engine.begin() as conn:
        metadata.create_all(conn)
    assert log.flush(5)
    assert log.writable() is None and log.stalled_for() == 0
    assert [r.request_id for r in _rows(log)] == ["a", "b"]
    assert log.status.dead_lettered == 0
    log.close()


def test_a_row_the_database_refuses_goes_to_the_dead_letter_alone(
    log: PredictionLog, tmp_path: Path
) -> None:
    good = _served([f"g{i}" for i in range(6)], [f"D{i}" for i in range(6)])
    bad = _served(["nan", "null"], ["D8", "D9"])
    bad.results = [{**bad.results[0], "probability": float("nan")}, {**bad.results[1], "arm": None}]
    log.record(good)
    log.record(bad)
    log.record(_served(["after"], ["D10"]))
    assert log.flush(5)
    assert sorted(r.request_id for r in _rows(log)) == sorted([*good.request_ids, "after"])
    assert log.status.dead_lettered == 2 and log.status.lost == 0
    assert log.dead_letter is not None
    entries = [
        json.loads(line)
        for f in sorted(log.dead_letter.directory.glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    assert {e["record"][0] for e in entries} == {"nan", "null"}
    assert "strict JSON" in next(e["error"] for e in entries if e["record"][0] == "nan")
    # The writer goes on; a replay finds the rows still refused and keeps them.
    log.record(_served(["later"], ["D11"]))
    assert log.flush(5) and "later" in {r.request_id for r in _rows(log)}
    assert log.replay_dead_letter() == (0, 2)
    assert log.dead_letter.size()[0] == 2


def test_rows_spill_while_the_database_is_down_and_are_replayed(tmp_path: Path) -> None:
    url, spill = f"sqlite:///{tmp_path / 'log.db'}", tmp_path / "spill"
    durability = Durability(spill_dir=spill)
    log = PredictionLog(url, flush_interval_s=0.05, retry_backoff_s=0.05, durability=durability)
    with log.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE predictions RENAME TO predictions_away"))
    log.record(_served(["s1", "s2"], ["D1", "D2"]))
    assert log.flush(5)  # durable: in the spill
    assert log.pending_rows == 0 and log.status.spilled == 2
    assert log.spill is not None and log.spill.size()[0] == 2
    assert log.accepting() is None  # the spill takes the rows: still ready
    log.close()  # a restart while the database is down keeps the spill
    with sa.create_engine(url).begin() as conn:
        conn.execute(sa.text("ALTER TABLE predictions_away RENAME TO predictions"))
    reopened = PredictionLog(url, flush_interval_s=0.05, durability=durability)
    deadline = time.monotonic() + 5
    while reopened.status.replayed < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(r.request_id for r in _rows(reopened)) == ["s1", "s2"]
    assert reopened.status.replayed == 2 and reopened.spill.size() == (0, 0)
    reopened.close()


def test_a_replayed_row_that_did_arrive_is_not_written_twice(log: PredictionLog) -> None:
    served = _served(["dup"], ["D1"])
    log.record(served)
    assert log.flush(5)
    assert log._insert_isolating(list(served.records())) == (None, 0)
    assert [r.request_id for r in _rows(log)] == ["dup"] and log.status.dead_lettered == 0


def test_outcomes_keep_who_sent_them_and_what_they_replaced(log: PredictionLog) -> None:
    log.record(_served(["a", "b"], ["D1", "D2"]))
    log.flush(5)
    log.add_outcomes([("request_id", "a", "pass"), ("request_id", "b", "pass")], "line-3")
    log.add_outcomes([("device_id", "D1", "fail")], "mes")
    log.add_outcomes([("device_id", "D1", "fail")], "someone")  # unchanged: no event
    history = log.outcome_history()
    assert history["by_sender"] == {
        "line-3": {"outcomes": 2, "replaced": 0},
        "mes": {"outcomes": 1, "replaced": 1},
    }
    (change,) = history["latest_replacements"]
    assert (change["request_id"], change["old"], change["new"], change["sent_by"]) == (
        "a",
        "pass",
        "fail",
        "mes",
    )
    assert log.report(ARMS)["ground_truth"]["replaced"] == 1


def test_only_an_unreachable_or_unreadable_database_is_unavailable() -> None:
    from ledger.errors import unavailable

    def wrapped(error_class, orig):  # type: ignore[no-untyped-def]
        return error_class("SELECT 1", {}, orig)

    down = wrapped(sa.exc.OperationalError, Exception("connection refused\nmore detail"))
    assert unavailable(down) == "the ledger's database is unavailable now: connection refused"
    garbage = wrapped(sa.exc.DatabaseError, Exception("file is not a database"))
    assert (
        unavailable(garbage) == "the ledger's database is unavailable now: file is not a database"
    )
    # A query the database calls malformed, bad data, or any other error is a bug: a 500.
    assert unavailable(wrapped(sa.exc.ProgrammingError, Exception("syntax error"))) is None
    assert unavailable(wrapped(sa.exc.IntegrityError, Exception("duplicate key"))) is None
    assert unavailable(ValueError("boom")) is None


def test_no_database_password_in_errors_or_log_lines(tmp_path: Path) -> None:
    import logging

    from ledger.errors import safe_url
    from ops.logs import JsonFormatter, TextFormatter

    secret = "s3cr@t-pw"
    url = f"postgresql+psycopg://yield:{secret}@127.0.0.1:1/yield"
    assert secret not in safe_url(url) and "127.0.0.1" in safe_url(url)
    # A URL SQLAlchemy cannot parse (":" missing after the scheme), the password still hidden.
    for typo in (url.replace("://", "//"), url.replace("://", ":/"), url.replace("://", "")):
        assert secret not in safe_url(typo) and "***@127.0.0.1" in safe_url(typo), typo
    try:
        raise RuntimeError(f"cannot open {url}")
    except RuntimeError:
        import sys

        record = logging.LogRecord("ledger", logging.ERROR, __file__, 1, "log at %s", (url,),
                                   sys.exc_info())  # fmt: skip
    for formatter in (JsonFormatter(), TextFormatter()):
        line = formatter.format(record)
        assert secret not in line and "yield:***@127.0.0.1" in line


def test_the_assigned_arm_is_logged_apart_and_a_drifted_split_is_flagged(
    log: PredictionLog,
) -> None:
    """Devices assigned to the challenger but served by the ensemble (its member down)
    count as assigned to the challenger: the split stays whole. A split that did drift
    (too few challenger devices for a 10% share) is a sample-ratio mismatch."""
    from ensemble.batch import Batch

    def batch(n: int, arm: int, assigned: int) -> Batch:
        b = Batch.empty(n, ["random_forest", "xgboost", "keras"], ["ensemble", "challenger"])
        b.arm[:], b.probability[:], b.passed[:] = arm, 0.6, True
        b.assigned = np.full(n, assigned)
        b.rules = {"ensemble": ("majority:1", 0.5), "challenger": ("single:1", 0.5)}
        return b

    def served(prefix: str, n: int, arm: int, assigned: int) -> Served:
        rids = [f"{prefix}{i}" for i in range(n)]
        ids = [{"device_id": r, "wafer_id": None, "lot_id": None} for r in rids]
        rows = np.zeros((n, 2), dtype=np.float32)
        return Served(time.time(), 1.0, rids, ids, rows, batch(n, arm, assigned), VERSIONS)

    log.record(served("e", 900, 0, 0))
    log.record(served("c", 100, 0, 1))  # assigned challenger, served by the ensemble
    assert log.flush(10)
    with log.engine.connect() as conn:
        pairs = conn.execute(sa.text(
            "SELECT arm, assigned_arm, count(*) FROM predictions GROUP BY arm, assigned_arm"
        )).all()  # fmt: skip
    assert sorted(map(tuple, pairs)) == [
        ("ensemble", "challenger", 100),
        ("ensemble", "ensemble", 900),
    ]
    whole = log.report(ARMS)["sample_ratio"]
    assert whole["assigned"] == {"ensemble": 900, "challenger": 100}
    assert whole["p_value"] == pytest.approx(1.0) and not whole["mismatch"]
    log.record(served("e2", 900, 0, 0))  # now 1,800 ensemble against 100 challenger
    assert log.flush(10)
    report = log.report(ARMS)
    drifted = report["sample_ratio"]
    assert drifted["mismatch"] and drifted["p_value"] < 1e-6
    assert drifted["test"].startswith("chi-square goodness of fit")
    assert "Sample-ratio mismatch" in report["conclusion"]
    from ledger.html_report import render

    assert "<b>MISMATCH</b>" in render({**report, "ground_truth": []})


def test_readiness_asks_the_database_only_when_the_log_has_not_written_lately(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch written moments ago says the database takes writes: no probe row then (it
    was the round trip that made probes miss their 0.5 s under load). Idle, or after a
    failed write, the probe row is written again."""
    import ledger.writer

    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}", flush_interval_s=0.05,
                        durability=Durability(spill_dir=None))  # fmt: skip
    probes: list[int] = []
    real = log._writes.refuses
    monkeypatch.setattr(log._writes, "refuses", lambda: probes.append(1) or real())
    assert log.accepting() is None and probes == [1]  # nothing written yet
    log.record(_served(["a"], ["D1"]))
    assert log.flush(5)
    assert log.accepting() is None and probes == [1]  # written just now
    monkeypatch.setattr(ledger.writer, "WROTE_RECENTLY_S", 0.0)
    assert log.accepting() is None and probes == [1, 1]  # not lately: asked again
    monkeypatch.setattr(ledger.writer, "WROTE_RECENTLY_S", 60.0)
    with log.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE predictions"))
    log.record(_served(["b"], ["D2"]))
    deadline = time.monotonic() + 5
    while log.status.database_error is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "predictions" in (log.accepting() or "")  # the failed write counts, not the old one
    log.close()
