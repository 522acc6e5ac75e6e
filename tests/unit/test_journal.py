"""The write-ahead journal: what a dead process answered is stored once by the next one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ensemble.errors import LogBackedUp
from ledger.journal import ROWS_UP_TO, Journal, Recorded, entry, orphans
from ledger.migrate import upgrade
from ledger.predlog import Durability, PredictionLog
from tests.unit.test_predlog import _served

ROOT = Path(__file__).resolve().parents[2]


def _ids(url: str) -> list[str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = [r for (r,) in conn.execute(sa.text("SELECT request_id FROM predictions"))]
    engine.dispose()
    return sorted(rows)


def test_a_killed_process_rows_are_recovered_once(tmp_path: Path) -> None:
    url, spill = f"sqlite:///{tmp_path / 'log.db'}", tmp_path / "spill"
    # A process accepts rows, stores some, then dies (SIGKILL) with the rest in memory.
    code = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from ledger.predlog import Durability, PredictionLog
        from tests.unit.test_predlog import _served
        log = PredictionLog({url!r}, flush_interval_s=600, durability=Durability(spill_dir=Path({str(spill)!r})))
        log.record(_served(["a.0", "a.1"], ["d1", "d2"]))
        assert log.flush(10)
        log.record(_served(["b.0"], ["d3"]))
        log.record(_served(["c.0", "c.1", "c.2"], [None, None, None]))
        big = [f"e.{{i}}" for i in range({ROWS_UP_TO + 1})]  # journaled as its Served
        log.record(_served(big, [None] * len(big)))
        os.kill(os.getpid(), signal.SIGKILL)
    """)  # noqa: E501
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == -9, run.stderr
    assert _ids(url) == ["a.0", "a.1"]
    log = PredictionLog(url, durability=Durability(spill_dir=spill))
    assert log.flush(10)
    log.close()
    big = sorted(f"e.{i}" for i in range(ROWS_UP_TO + 1))
    assert _ids(url) == ["a.0", "a.1", "b.0", "c.0", "c.1", "c.2", *big]
    assert not list((spill / "journal").glob("*.journal*"))


def test_a_small_request_is_journaled_as_its_records_a_large_one_as_itself(
    tmp_path: Path,
) -> None:
    small = _served(["a.0", "a.1"], ["d1", "d2"])
    big_ids = [f"b.{i}" for i in range(ROWS_UP_TO + 1)]
    big = _served(big_ids, [None] * len(big_ids))
    accepted = entry(small)
    assert isinstance(accepted, Recorded) and accepted.records() == list(small.records())
    assert entry(big) is big
    journal = Journal(tmp_path)
    journal.append(1, Journal.encode(accepted))
    journal.append(2, Journal.encode(big))
    os.close(journal._fd)
    journal.path.rename(journal.path.with_name(f"999999999-1{journal.path.suffix}"))
    ((_, read),) = orphans(tmp_path)
    assert [type(e).__name__ for e in read] == ["Recorded", "Served"]
    assert [r for e in read for r in e.records()] == [*small.records(), *big.records()]


def test_rows_already_stored_are_not_written_twice(tmp_path: Path) -> None:
    url, spill = f"sqlite:///{tmp_path / 'log.db'}", tmp_path / "spill"
    first = PredictionLog(url, durability=Durability(spill_dir=spill))
    first.record(_served(["a.0"], ["d1"]))
    assert first.flush(10)
    first.close()
    # A journal of a dead process holding a stored row and a new one, its last entry cut.
    journal = Journal(spill / "journal")
    journal.append(1, Journal.encode(_served(["a.0"], ["d1"])))
    journal.append(2, Journal.encode(_served(["b.0"], ["d2"])))
    os.close(journal._fd)
    with open(journal.path, "ab") as f:
        f.write(b"\x40\x00\x00")  # the process died inside a write
    dead = journal.path.with_name(f"999999999-1{journal.path.suffix}")
    journal.path.rename(dead)
    second = PredictionLog(url, durability=Durability(spill_dir=spill))
    assert second.flush(10)
    second.close()
    assert _ids(url) == ["a.0", "b.0"]
    assert second.status.replayed == 1


def test_a_live_process_journal_is_left_alone(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append(1, Journal.encode(_served(["a.0"], ["d1"])))
    Journal(tmp_path)  # a second writer in this process: neither is the other's orphan
    assert list(orphans(tmp_path)) == []
    journal.stored(1)
    assert journal.path.stat().st_size == 0


def test_a_full_disk_is_said_once_and_serving_goes_on(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    os.close(journal._fd)
    journal._fd = os.open("/dev/full", os.O_WRONLY)
    assert journal.append(1, Journal.encode(_served(["a.0"], ["d1"]))) is False
    assert journal.failed is not None and "No space" in journal.failed


def test_an_unusable_directory_leaves_the_log_working_without_a_journal(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}",
                        durability=Durability(spill_dir=not_a_dir / "spill"))  # fmt: skip
    assert log.journal is None
    log.record(_served(["a.0"], ["d1"]))
    assert log.flush(10)
    log.close()
    assert _ids(f"sqlite:///{tmp_path / 'log.db'}") == ["a.0"]


def test_a_row_with_nowhere_durable_to_go_is_refused_not_answered(tmp_path: Path) -> None:
    """The database down, the spill full and the journal's disk full: a row accepted would
    live in memory only (a stop would lose an answered prediction), so it is refused."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    durability = Durability(spill_dir=tmp_path / "spill", spill_max_bytes=1)
    log = PredictionLog(url, flush_interval_s=0.05, retry_backoff_s=0.05, durability=durability)
    assert log.journal is not None
    with log.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE predictions RENAME TO predictions_away"))
    log.record(_served(["a.0"], ["d1"]))  # database and spill fail; the journal holds it
    deadline = time.monotonic() + 5
    while "spill fails" not in (log.accepting() or "") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "spill fails" in (log.accepting() or "")
    log.check_room()  # the journal still takes rows: a stop would not lose them
    os.close(log.journal._fd)
    log.journal._fd = os.open("/dev/full", os.O_WRONLY)
    with pytest.raises(LogBackedUp, match=r"journal fails .*No space") as refused:
        log.record(_served(["b.0"], ["d2"]))
    assert "the database refuses writes" in str(refused.value)
    assert "would exceed 1 bytes" in str(refused.value)
    assert log.pending_rows == 1  # b.0 was not taken
    with pytest.raises(LogBackedUp, match="not serving predictions it cannot record"):
        log.check_room()  # and nothing more is served until a place comes back
    assert "journal fails" in (log.accepting() or "")  # readiness says the same
    with log.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE predictions_away RENAME TO predictions"))
    assert log.flush(5)
    log.check_room()  # the database takes rows again: serving goes on, journal or not
    assert log.accepting() is None
    log.record(_served(["c.0"], ["d3"]))
    assert log.flush(5)
    assert log.close().lost == 0
    assert _ids(url) == ["a.0", "c.0"]


def _orphan(directory: Path, request_id: str) -> Path:
    """A journal left by a process that is gone (a pid no process has)."""
    from ledger.journal import _HEADER, SUFFIX

    directory.mkdir(parents=True, exist_ok=True)
    blob = Journal.encode(entry(_served([request_id], ["d0"])))
    path = directory / f"4194300-1{SUFFIX}"
    path.write_bytes(_HEADER.pack(len(blob), 1) + blob)
    return path


def _until(check: Any, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(check())


def test_refusals_end_when_the_database_is_back_though_nothing_was_queued(tmp_path: Path) -> None:
    """Start-up recovery finds the database refusing and the spill full, with nothing
    queued: the writer probes again by itself, so serving resumes (and the dead process's
    journal is stored) once the database is back, not at the next restart."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = sa.create_engine(url)
    upgrade(engine)
    with engine.begin() as conn:  # every insert refused; reads still work
        conn.exec_driver_sql(
            "CREATE TRIGGER down BEFORE INSERT ON predictions "
            "BEGIN SELECT RAISE(ABORT, 'down'); END"
        )
    orphan = _orphan(tmp_path / "spill" / "journal", "orphan.0")
    durability = Durability(spill_dir=tmp_path / "spill", spill_max_bytes=1)
    log = PredictionLog(url, flush_interval_s=0.05, retry_backoff_s=0.05, durability=durability)
    assert log.journal is not None
    assert _until(lambda: log.status.database_error is not None and log._spill_error is not None)
    good = log.journal._fd
    log.journal._fd = os.open("/dev/full", os.O_WRONLY)
    with pytest.raises(LogBackedUp, match="journal fails"):
        log.record(_served(["refused.0"], ["d1"]))
    os.close(log.journal._fd)
    log.journal._fd = good
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER down")
    assert _until(lambda: log.accepting() is None), log.accepting()
    log.check_room()
    log.record(_served(["after.0"], ["d2"]))
    assert log.flush(5) and _until(lambda: not orphan.exists())
    assert log.close().lost == 0
    assert _ids(url) == ["after.0", "orphan.0"]
    engine.dispose()


def test_a_dead_process_journal_waits_while_the_ledger_cannot_be_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = sa.create_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE predictions RENAME TO away")
    orphan = _orphan(tmp_path / "spill" / "journal", "orphan.0")
    log = PredictionLog(url, flush_interval_s=0.05, retry_backoff_s=0.05,
                        durability=Durability(spill_dir=tmp_path / "spill"))  # fmt: skip
    time.sleep(0.5)  # start-up recovery and a few idle rounds: the file waits, unclaimed
    assert orphan.exists() and log._thread.is_alive()
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE away RENAME TO predictions")
    assert _until(lambda: not orphan.exists())
    assert log.close().lost == 0
    assert _ids(url) == ["orphan.0"]
    engine.dispose()
