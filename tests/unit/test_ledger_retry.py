"""Ledger transactions across a lost database connection (``ledger.retry``): retried
whole until the database is back, exactly once for outcomes even when a commit's
acknowledgement is lost, and a clean 503 with Retry-After once the time is spent.

PostgreSQL cases run through a proxy (``tests.unit.pg_proxy``) a test stops, starts or has
lose a commit's answer, and with backends killed by ``pg_terminate_backend``; SQLite
cases hold its write lock from another connection."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import ledger.queries as queries_module
from ensemble.errors import LedgerUnavailable
from entry.answers import failed
from ledger.engine import make_engine
from ledger.migrate import drop_all
from ledger.predlog import Durability, PredictionLog, outcome_events, outcomes
from ledger.queries import LedgerQueries
from ledger.retry import RETRY_AFTER_S, retried, transient
from ledger.settings import get_ledger_settings
from tests.unit.conftest import POSTGRES_URL, log_devices
from tests.unit.pg_proxy import PgProxy

needs_pg = pytest.mark.skipif(not POSTGRES_URL, reason="YE_TEST_POSTGRES_URL is not set")


@pytest.fixture
def retry_s(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """YIELD_ENSEMBLE_LEDGER_RETRY_S=3 for the test."""
    monkeypatch.setenv("YIELD_ENSEMBLE_LEDGER_RETRY_S", "3")
    get_ledger_settings.cache_clear()
    yield
    get_ledger_settings.cache_clear()


def _history(engine: sa.Engine) -> dict[str, list[tuple[str | None, str]]]:
    e = outcome_events.c
    chains: dict[str, list[tuple[str | None, str]]] = {}
    with engine.connect() as conn:
        for rid, previous, actual in conn.execute(
            sa.select(e.request_id, e.previous, e.actual).order_by(e.id)
        ):
            chains.setdefault(rid, []).append((previous, actual))
    return chains


def _outcomes(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(outcomes.c.request_id, outcomes.c.actual)).all())


# -- PostgreSQL, through a proxy --------------------------------------------------------


class Ledger(LedgerQueries):
    """The outcome writes and reads of a prediction log, on an engine of their own."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)


@pytest.fixture
def pg(tmp_path: Path, retry_s: None) -> Iterator[tuple[PredictionLog, Ledger, PgProxy]]:
    """A prediction log on PostgreSQL, and its outcome writes reaching the same database
    through a proxy (only they: the log's writer commits nothing through it)."""
    assert POSTGRES_URL
    drop_all(sa.create_engine(POSTGRES_URL))
    url = sa.engine.make_url(POSTGRES_URL)
    proxy = PgProxy((url.host or "127.0.0.1", url.port or 5432))
    via = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    log = PredictionLog(POSTGRES_URL, flush_interval_s=0.05,
                        durability=Durability(spill_dir=tmp_path))  # fmt: skip
    ledger = Ledger(via)
    yield log, ledger, proxy
    proxy.stop()
    ledger.engine.dispose()
    log.close()


@needs_pg
def test_a_lost_commit_acknowledgement_records_each_outcome_once(
    pg: tuple[PredictionLog, Ledger, PgProxy],
) -> None:
    """The server commits, the client's connection drops before the answer: the retried
    transaction reads the committed outcomes and answers them unchanged; no event twice."""
    log, ledger, proxy = pg
    log_devices(log, ["D1", "D2"])
    ledger.add_outcomes([("device_id", "D1", "fail")], "line")  # D1 had an outcome before
    proxy.lose_next_commit_ack()
    items = [("device_id", "D1", "pass"), ("device_id", "D2", "fail")]
    statuses = ledger.add_outcomes(items, "line")
    assert proxy.commits_lost == 1
    # The lost commit did record them; the retry found them there.
    assert [s["status"] for s in statuses] == ["unchanged", "unchanged"]
    assert _history(log.engine) == {"r-D1": [(None, "fail"), ("fail", "pass")],
                                "r-D2": [(None, "fail")]}  # fmt: skip
    assert _outcomes(log.engine) == {"r-D1": "pass", "r-D2": "fail"}


@needs_pg
def test_a_connection_killed_mid_transaction_is_retried_whole(
    pg: tuple[PredictionLog, Ledger, PgProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    """pg_terminate_backend between the transaction's reads and its writes (the server's
    restart does the same): nothing of the first attempt stays, the second records."""
    log, ledger, _ = pg
    log_devices(log, ["D1", "D2", "D3"])
    original, killed = queries_module._lock, []

    def kill_then_lock(conn: sa.Connection, request_ids: Any) -> None:
        if not killed:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with log.engine.connect() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            killed.append(pid)
        original(conn, request_ids)

    monkeypatch.setattr(queries_module, "_lock", kill_then_lock)
    items = [("device_id", d, "pass") for d in ("D1", "D2", "D3")]
    statuses = ledger.add_outcomes(items, "line")
    assert killed and [s["status"] for s in statuses] == ["recorded"] * 3
    assert _history(log.engine) == {f"r-{d}": [(None, "pass")] for d in ("D1", "D2", "D3")}


@needs_pg
def test_every_pooled_connection_killed_between_calls_is_no_error(
    pg: tuple[PredictionLog, Ledger, PgProxy],
) -> None:
    """What a database restart leaves in the pool: dead connections, found and replaced."""
    log, ledger, _ = pg
    log_devices(log, ["D1"])
    with log.engine.connect() as conn:
        conn.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ))  # fmt: skip
    assert ledger.add_outcomes([("device_id", "D1", "pass")])[0]["status"] == "recorded"
    assert ledger.accuracy_by_arm() == {"ensemble": (1, 1)}


@needs_pg
def test_a_database_back_within_the_retry_time_answers(
    pg: tuple[PredictionLog, Ledger, PgProxy],
) -> None:
    """Connections dropped and refused for 1 s (a restart), then back: recorded, late."""
    log, ledger, proxy = pg
    log_devices(log, ["D1"])
    proxy.stop()
    threading.Timer(1.0, proxy.start).start()
    started = time.monotonic()
    statuses = ledger.add_outcomes([("device_id", "D1", "pass")])
    assert statuses[0]["status"] == "recorded" and time.monotonic() - started >= 0.9
    assert _history(log.engine) == {"r-D1": [(None, "pass")]}


@needs_pg
def test_a_database_away_past_the_retry_time_answers_503_with_retry_after(
    pg: tuple[PredictionLog, Ledger, PgProxy],
) -> None:
    log, ledger, proxy = pg
    log_devices(log, ["D1"])
    proxy.stop()
    started = time.monotonic()
    with pytest.raises(LedgerUnavailable) as caught:
        ledger.add_outcomes([("device_id", "D1", "pass")])
    took = time.monotonic() - started
    assert 3.0 <= took < 8.0  # YIELD_ENSEMBLE_LEDGER_RETRY_S=3, plus the last attempt
    response = failed(caught.value)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(RETRY_AFTER_S)
    text = bytes(response.body).decode()
    assert "Connection refused" in text
    password = sa.engine.make_url(POSTGRES_URL or "").password or "no password"
    assert f":{password}@" not in text and "password" not in text.lower()
    assert _history(log.engine) == {}


@needs_pg
def test_transient_tells_an_outage_from_a_mistake(tmp_path: Path) -> None:
    """Real errors of a real server: what is retried and what is answered at once."""
    assert POSTGRES_URL
    url = sa.engine.make_url(POSTGRES_URL)

    def error(engine_url: Any, sql: str = "SELECT 1") -> BaseException:
        engine = sa.create_engine(engine_url, connect_args={"connect_timeout": 2})
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(sql)
        except sa.exc.DBAPIError as exc:
            return exc
        finally:
            engine.dispose()
        raise AssertionError(f"{sql} did not fail")

    proxy = PgProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.stop()  # a port nobody listens on now
    assert transient(error(url.set(host="127.0.0.1", port=proxy.port)))
    assert transient(error(url, "SELECT pg_terminate_backend(pg_backend_pid())"))
    assert not transient(error(url.set(password="not-the-password")))
    assert not transient(error(url.set(database="no_such_database_here")))
    assert not transient(error(url, "SET statement_timeout = 10; SELECT pg_sleep(1)"))
    assert not transient(error(url, "SELECT * FROM no_such_table"))


# -- SQLite ---------------------------------------------------------------------------


@pytest.fixture
def lite(tmp_path: Path, retry_s: None) -> Iterator[PredictionLog]:
    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}", flush_interval_s=0.05,
                        durability=Durability(spill_dir=tmp_path / "spill"))  # fmt: skip
    # Give up on the lock after 50 ms instead of 10 s, so the retries are what waits.
    sa.event.listen(log.engine, "connect", lambda c, _: c.execute("PRAGMA busy_timeout=50"))
    yield log
    log.close()


def _hold_write_lock(path: str, seconds: float) -> threading.Thread:
    """Another connection holding SQLite's write lock for ``seconds``."""
    taken = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        taken.set()
        time.sleep(seconds)
        conn.execute("ROLLBACK")
        conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    taken.wait(5)
    return thread


def test_sqlite_locked_for_a_moment_is_retried(lite: PredictionLog) -> None:
    log_devices(lite, ["D1"])
    holder = _hold_write_lock(lite.engine.url.database or "", 1.0)
    statuses = lite.add_outcomes([("device_id", "D1", "pass")])
    holder.join()
    assert statuses[0]["status"] == "recorded"
    assert _history(lite.engine) == {"r-D1": [(None, "pass")]}


def test_sqlite_locked_past_the_retry_time_answers_503(lite: PredictionLog) -> None:
    log_devices(lite, ["D1"])
    holder = _hold_write_lock(lite.engine.url.database or "", 4.5)
    try:
        with pytest.raises(LedgerUnavailable, match="database is locked") as caught:
            lite.add_outcomes([("device_id", "D1", "pass")])
    finally:
        holder.join()
    assert failed(caught.value).headers["Retry-After"] == str(RETRY_AFTER_S)
    assert _history(lite.engine) == {}


# -- retried itself -------------------------------------------------------------------


def _operational(message: str) -> sa.exc.OperationalError:
    return sa.exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError(message))


def test_retried_backs_off_and_gives_up_at_the_deadline() -> None:
    """The time counts from the first failure: a first attempt that ran 4 s (a long
    report) before the connection dropped still gets its 5 s of retries."""
    now, waits, calls = [0.0], [], []

    def sleep(s: float) -> None:
        waits.append(s)
        now[0] += s

    def call() -> None:
        if not calls:
            now[0] += 4.0
        calls.append(now[0])
        raise _operational("database is locked")

    with pytest.raises(LedgerUnavailable) as caught:
        retried(call, 5.0, sleep=sleep, clock=lambda: now[0])
    assert waits[:6] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 1.9])
    assert sum(waits) == pytest.approx(5.0) and len(calls) == len(waits) + 1
    assert caught.value.retry_after_s == RETRY_AFTER_S
    assert f"tried {len(calls)} times over 5 s" in str(caught.value)


def test_retried_answers_at_once_what_no_wait_mends() -> None:
    calls = []

    def call() -> None:
        calls.append(1)
        raise sa.exc.ProgrammingError("SELECT x", {}, sqlite3.ProgrammingError("no column x"))

    with pytest.raises(sa.exc.ProgrammingError):
        retried(call, 5.0, sleep=lambda s: pytest.fail("slept"))
    assert calls == [1]
    assert failed(sa.exc.ProgrammingError("q", {}, Exception("x"))).status_code == 500
    for mistake in ("no such table: outcomes", "file is not a database"):
        with pytest.raises(sa.exc.OperationalError):
            retried(lambda m=mistake: (_ for _ in ()).throw(_operational(m)), 5.0)


def test_no_secret_reaches_the_503() -> None:
    def call() -> None:
        raise _operational("database is locked at postgresql://ops:hunter2-secret@db:5432/x")

    with pytest.raises(LedgerUnavailable) as caught:
        retried(call, 0.0)
    body = bytes(failed(caught.value).body).decode()
    assert "hunter2-secret" not in body and "ops:***@db" in body


def test_no_retry_when_the_setting_is_0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YIELD_ENSEMBLE_LEDGER_RETRY_S", "0")
    get_ledger_settings.cache_clear()
    calls = []

    def call() -> None:
        calls.append(1)
        raise _operational("database is locked")

    try:
        with pytest.raises(LedgerUnavailable):
            retried(call)
    finally:
        get_ledger_settings.cache_clear()
    assert calls == [1]


# -- /feedback around the transaction -------------------------------------------------


def test_feedback_committed_then_a_lost_database_still_answers_its_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outcomes are committed; the accuracy gauges' read after it meets the database
    gone: the answer says recorded (a 503 would have the client send them again)."""
    import asyncio
    from types import SimpleNamespace

    import prometheus_client as pc

    from entry.feedback import feedback
    from ops.metrics import ServiceMetrics

    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}", flush_interval_s=0.05,
                        durability=Durability(spill_dir=tmp_path / "spill"))  # fmt: skip
    log_devices(log, ["D1"])

    def gone() -> None:
        raise _operational("unable to open database file")

    monkeypatch.setattr(log, "accuracy_by_arm", gone)

    async def read(call: Any, *args: Any) -> Any:
        return call(*args)

    metrics = ServiceMetrics(pc.CollectorRegistry())
    runtime = SimpleNamespace(log=log, metrics=metrics, feedback=read)
    try:
        answer = asyncio.run(feedback(runtime, "f1", [{"device_id": "D1", "actual": "pass"}]))
        assert answer["counts"]["recorded"] == 1
        assert _history(log.engine) == {"r-D1": [(None, "pass")]}
        # Any other error is a bug, and stays one.
        monkeypatch.setattr(log, "accuracy_by_arm", lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            asyncio.run(feedback(runtime, "f2", [{"device_id": "D1", "actual": "fail"}]))
    finally:
        log.close()
