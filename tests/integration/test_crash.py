"""An answered prediction survives the death of the process that answered it.

The entry worker is SIGKILLed while its rows wait in memory for the writer (a 30 s flush
interval makes the window wide); BentoML starts a new worker, whose writer stores the
dead worker's journal (``ledger.journal``): every prediction answered 200 is in the log.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.integration.conftest import running

pytestmark = pytest.mark.integration
ROW = [1.2, 100.0, 2000.0, 25.0, 50.0, 0.95]


def _entry_worker(serve_pid: int) -> psutil.Process:
    for child in psutil.Process(serve_pid).children(recursive=True):
        line = " ".join(child.cmdline())
        if "worker.service" in line and "--service-name yield_" not in line.replace(
            "--service-name yield_ensemble", ""
        ):
            return child
    raise AssertionError("no entry worker found")


def _logged(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {rid for (rid,) in conn.execute("SELECT request_id FROM predictions")}


def _recovered(log: str) -> int:
    """Rows the writers said they recovered from dead processes' journals, summed."""
    return sum(int(n) for n in re.findall(r"recovered (\d+) rows journaled by a process", log))


def test_answered_predictions_survive_a_killed_entry_worker(
    model_home: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    with running(model_home, tmp_path, data_dir=str(data),
                 prediction_log_flush_interval_s="30") as srv:  # fmt: skip
        answered: list[str] = []
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            for i in range(40):
                r = client.post("/predict", json={"features": ROW, "device_id": f"k{i}"})
                assert r.status_code == 200
                answered.append(r.json()["request_id"])
            wafer = {"features": [ROW] * 300, "device_id": [f"w{i}" for i in range(300)]}
            r = client.post("/predict_wafer", json=wafer)
            assert r.status_code == 200
            answered += [f"{r.json()['request_id']}.{i}" for i in range(300)]
        assert not _logged(data / "predictions.db") & set(answered)  # all still in memory
        worker = _entry_worker(srv.proc.pid)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        deadline = time.monotonic() + 90
        missing = set(answered)
        while missing and time.monotonic() < deadline:
            time.sleep(1)
            missing = set(answered) - _logged(data / "predictions.db")
        assert not missing, f"{len(missing)} of {len(answered)} answered predictions lost"
        # The writer logs its recovery after the rows are committed: wait for the line.
        log = srv.log_when(lambda text: _recovered(text) >= len(answered))
        assert _recovered(log) == len(answered), log[-3000:]
        # The new worker serves, and nothing was written twice.
        r = httpx.post(f"{srv.url}/predict", json={"features": ROW}, timeout=30)
        assert r.status_code == 200
        with sqlite3.connect(data / "predictions.db") as conn:
            (n,) = conn.execute("SELECT COUNT(*) FROM predictions").fetchone()
        assert n <= len(answered) + 1
