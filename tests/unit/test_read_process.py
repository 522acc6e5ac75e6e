"""The ledger reads' own process (entry.read_process): same answers as in the entry worker,
errors kept as they were raised, a dead process replaced."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ensemble.errors import Internal, LedgerUnavailable, Unavailable
from entry.read_process import ReadProcess, ReadProcessLost, on_engine, report
from ledger.dashboard import groups
from ledger.predlog import PredictionLog
from ledger.queries import LedgerQueries, UnknownArm
from tests.unit.test_predlog import ARMS, _served


def _pid(_queries: Any) -> int:
    return os.getpid()


def _die(_queries: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _unknown_arm(_queries: Any) -> None:
    raise UnknownArm("nope", ["ensemble"])


def _ledger_down(_queries: Any) -> None:
    error = LedgerUnavailable("the database refused: connection refused")
    error.retry_after_s = 7
    raise error


class _Unsendable(Exception):
    def __init__(self) -> None:
        super().__init__("held a lock")
        self.lock = __import__("threading").Lock()


def _unsendable(_queries: Any) -> None:
    raise _Unsendable()


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PredictionLog]:
    path = tmp_path_factory.mktemp("reads") / "log.db"
    log = PredictionLog(f"sqlite:///{path}", flush_interval_s=0.05)
    log.record(_served(["a", "b", "c"], ["D1", "D2", "D3"]))
    log.record(_served(["d"], ["D4"], arm="challenger"))
    assert log.flush(5)
    log.add_outcomes([("request_id", "a", "pass"), ("request_id", "d", "fail")])
    yield log
    log.close()


@pytest.fixture(scope="module")
def reads(logged: PredictionLog) -> Iterator[ReadProcess]:
    process = ReadProcess(logged.url, 1, "text", "WARNING")
    ready = process.start()
    assert ready is not None and ready.result(timeout=60)
    yield process
    process.close()


def test_reads_run_in_another_process_with_the_same_answers(
    logged: PredictionLog, reads: ReadProcess
) -> None:
    assert reads.call(_pid) != os.getpid()
    in_thread = ReadProcess(logged.url, 0, local=logged)
    assert in_thread.call(_pid) == os.getpid()
    for process in (reads, in_thread):
        assert process.call(LedgerQueries.accuracy_by_arm) == logged.accuracy_by_arm()
    mine = report(logged, ARMS, None, None, None)
    theirs = reads.call(report, ARMS, None, None, None)
    assert theirs["arms"] == mine["arms"] and theirs["ground_truth"] == mine["ground_truth"]
    kwargs: dict[str, Any] = dict(by="wafer_id", since=None, until=None, lot_id=None,
                                  limit=10, offset=0)  # fmt: skip
    by_wafer = reads.call(on_engine, groups, what="test", **kwargs)
    assert by_wafer == groups(logged.engine, **kwargs)
    assert "W1" in str(by_wafer)


def test_a_read_error_arrives_as_raised(reads: ReadProcess) -> None:
    with pytest.raises(UnknownArm, match="no arm 'nope'"):
        reads.call(_unknown_arm)
    with pytest.raises(LedgerUnavailable, match="connection refused") as raised:
        reads.call(_ledger_down)
    assert raised.value.status == 503 and raised.value.retry_after_s == 7
    with pytest.raises(Internal, match="_Unsendable"):
        reads.call(_unsendable)
    assert reads.call(_pid) != os.getpid()  # the process lives on


def test_a_dead_read_process_fails_its_read_with_503_and_is_replaced(
    logged: PredictionLog,
) -> None:
    process = ReadProcess(logged.url, 1, "text", "WARNING")
    try:
        first = process.call(_pid)
        with pytest.raises(ReadProcessLost) as lost:
            process.call(_die)
        assert lost.value.status == 503 and lost.value.headers() == {"Retry-After": "1"}
        second = process.call(_pid)
        assert second not in (first, os.getpid())
        assert process.call(LedgerQueries.accuracy_by_arm) == logged.accuracy_by_arm()
    finally:
        process.close()
    with pytest.raises(Unavailable, match="shutting down"):
        process.call(_pid)


def test_a_read_process_killed_while_idle_is_replaced_for_the_next_read(
    logged: PredictionLog,
) -> None:
    """Killed between reads (out of memory, an operator's kill -9), the pool is broken
    before any read is sent: the next read gets a new process, never a 500 (it was
    BrokenProcessPool from submit, every read after it too)."""
    import time

    import psutil

    process = ReadProcess(logged.url, 1, "text", "WARNING")
    try:
        first = process.call(_pid)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while psutil.pid_exists(first) and time.monotonic() < deadline:
            time.sleep(0.05)  # the pool's manager thread reaps it and marks the pool broken
        time.sleep(0.2)
        second = process.call(_pid)
        assert second not in (first, os.getpid())
        assert process.call(LedgerQueries.accuracy_by_arm) == logged.accuracy_by_arm()
    finally:
        process.close()


def test_the_read_process_is_in_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from ledger.settings import LedgerSettings

    assert LedgerSettings().read_processes == 1
    monkeypatch.setenv("YIELD_ENSEMBLE_READ_PROCESSES", "0")
    assert LedgerSettings().read_processes == 0
    monkeypatch.setenv("YIELD_ENSEMBLE_READ_PROCESSES", "-1")
    with pytest.raises(ValueError, match="read_processes"):
        LedgerSettings()


def test_a_read_process_exits_with_its_worker_even_a_killed_one(logged: PredictionLog) -> None:
    import subprocess
    import sys
    import time

    import psutil

    code = (
        "import os, sys, time\n"
        "from entry.read_process import ReadProcess\n"
        f"r = ReadProcess({logged.url!r}, 1, 'text', 'WARNING')\n"
        "r.start().result(60)\n"
        "from tests.unit.test_read_process import _pid\n"
        "print(r.call(_pid), flush=True)\n"
        "time.sleep(120)\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).parents[2])  # fmt: skip
    assert worker.stdout is not None
    child = psutil.Process(int(worker.stdout.readline()))
    os.kill(child.pid, signal.SIGTERM)  # a server's stop signals the whole group
    time.sleep(0.3)
    assert child.is_running() and child.status() != psutil.STATUS_ZOMBIE
    worker.kill()  # SIGKILL: no atexit, no shutdown of the pool
    worker.wait(10)
    child.wait(10)  # psutil.TimeoutExpired if it outlived its worker


def test_where_no_process_can_start_reads_run_in_threads(
    logged: PredictionLog, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import concurrent.futures

    def no_locks(*args: Any, **kwargs: Any) -> None:
        raise OSError(38, "Function not implemented")  # SemLock without /dev/shm

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", no_locks)
    monkeypatch.setattr("entry.read_process.ProcessPoolExecutor", no_locks)
    process = ReadProcess(logged.url, 1, local=logged)
    assert process.start() is None and process.processes == 0
    assert "cannot start here (OSError" in caplog.text
    assert process.call(_pid) == os.getpid()
    assert process.call(LedgerQueries.accuracy_by_arm) == logged.accuracy_by_arm()


def test_close_ends_the_read_process_before_it_returns(logged: PredictionLog) -> None:
    import psutil

    process = ReadProcess(logged.url, 1, "text", "WARNING")
    child = psutil.Process(process.call(_pid))
    process.close()
    assert not child.is_running()  # ended and reaped, its locks handed back
