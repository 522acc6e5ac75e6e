"""A tiny run of the benchmark's own tools, so `python -m bench` cannot silently rot."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.integration


def test_load_generator_against_the_server(server) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.load",
            "--url",
            server.url,
            "--concurrency",
            "4",
            "--duration",
            "1",
            "--rows",
            "2000",
            "--seed",
            "3",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    run = json.loads(out.strip().splitlines()[-1])
    assert run["requests"] > 10 and run["errors"] == 0
    assert 0 < run["median_ms"] <= run["p99_ms"]
    assert run["client_cpu_s"] > 0


def test_prediction_log_throughput_tool(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run(
        [sys.executable, "-m", "bench.predlog", "--rows", "4000", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "rows/s written" in out
    runs = json.loads((tmp_path / "predlog.json").read_text())
    assert [r["rows"] for r in runs] == [1000, 4000] and all(r["rows_per_s"] > 0 for r in runs)


def test_dashboard_read_tool(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run(
        [sys.executable, "-m", "bench.dashboard", "--wafers", "20", "--dies", "50",
         "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout  # fmt: skip
    assert "/dashboard/wafers/W0/map" in out
    run = json.loads((tmp_path / "dashboard-sqlite.json").read_text())
    # Two of the 20 wafers are sent twice: every die counts once.
    assert run["predictions"] == 22 * 50
    assert run["wafer_sent_twice"] == {"wafer_id": "W0", "dies": 50, "predictions": 100}
    assert all(ms > 0 for ms in run["median_ms"].values())
