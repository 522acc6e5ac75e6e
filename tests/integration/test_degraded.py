"""Members really slowed, failing or mismatched, in real servers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from .conftest import ROOT, base_env, metric, running, sample, scrape, trained_decision

pytestmark = pytest.mark.integration
REQUEST = sample("predict.json")


#: Every request reaches the members: no cache, no challenger arm.
NO_SHORTCUTS = {"cache_maxsize": "0", "challenger_fraction": "0"}


def _chaos(**members: dict[str, object]) -> str:
    return json.dumps(members)


def test_members_run_in_parallel(model_home: Path, tmp_path: Path) -> None:
    """Each member sleeps 400 ms: the ensemble answers in about 400 ms, not 1200."""
    slow = {"delay_ms": 400}
    chaos = _chaos(random_forest=slow, xgboost=slow, keras=slow)
    with running(model_home, tmp_path, chaos=chaos, member_timeout_s="5", **NO_SHORTCUTS) as srv:
        httpx.post(f"{srv.url}/predict", json=REQUEST, timeout=10)  # warm the connections
        latencies = []
        for _ in range(5):
            start = time.perf_counter()
            r = httpx.post(f"{srv.url}/predict", json=REQUEST, timeout=10)
            latencies.append(time.perf_counter() - start)
            assert r.status_code == 200 and not r.json()["degraded"]
        assert min(latencies) >= 0.4
        assert sorted(latencies)[2] < 0.8, latencies  # sequential calls would take >= 1.2 s


def test_failed_member_degrades_and_timeout_degrades(model_home: Path, tmp_path: Path) -> None:
    chaos = _chaos(keras={"fail": True}, xgboost={"delay_ms": 3000})
    # With a 5 s timeout only keras is missing; xgboost is slow but answers.
    with running(model_home, tmp_path, chaos=chaos, member_timeout_s="5", **NO_SHORTCUTS) as srv:
        body = httpx.post(f"{srv.url}/predict", json=REQUEST, timeout=20).json()
        assert body["degraded"] is True and body["missing_members"] == ["keras"]
        assert set(body["votes"]) == {"random_forest", "xgboost"}
        two = {m: np.array([v]) for m, v in body["votes"].items()}
        passed, expected = trained_decision(model_home).combiner().combine(two)
        assert body["probability"] == pytest.approx(expected[0], abs=1e-6)
        assert body["prediction"] == ("pass" if passed[0] else "fail")
        batch = httpx.post(
            f"{srv.url}/predict_batch", json={"devices": [REQUEST, REQUEST]}, timeout=20
        ).json()
        assert batch["degraded"]
        assert [r["missing_members"] for r in batch["results"]] == [["keras"], ["keras"]]
        assert httpx.get(f"{srv.url}/livez").status_code == 200
        m = scrape(srv.url)
        assert metric(m, "yield_ensemble_degraded_predictions_total", missing_member="keras") == 3
        assert (
            metric(m, "yield_ensemble_member_failures_total", member="keras", reason="error") == 2
        )
        assert (
            metric(m, "yield_ensemble_member_failures_total", member="xgboost", reason="error") == 0
        )
        slow = metric(m, "yield_ensemble_member_call_duration_seconds_sum", member="xgboost")
        assert slow >= 6.0  # two calls of >= 3 s each


def test_two_members_down_is_503(model_home: Path, tmp_path: Path) -> None:
    chaos = _chaos(keras={"fail": True}, xgboost={"delay_ms": 3000})
    # A 1 s timeout leaves xgboost out too: only one member answers.
    with running(model_home, tmp_path, chaos=chaos, member_timeout_s="1", **NO_SHORTCUTS) as srv:
        start = time.perf_counter()
        r = httpx.post(f"{srv.url}/predict", json=REQUEST, timeout=20)
        assert time.perf_counter() - start < 2.5
        assert r.status_code == 503
        error = r.json()["error"]
        assert "1 of 3 member models answered" in error
        assert "keras" in error and "xgboost: timed out" in error
        m = scrape(srv.url)
        assert metric(m, "yield_ensemble_errors_total", kind="members_unavailable") == 1
        assert (
            metric(m, "yield_ensemble_member_failures_total", member="xgboost", reason="timeout")
            == 1
        )


def test_bad_setting_stops_start_up(model_home: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bentoml", "serve", "service:YieldEnsemble", "--port", "0"],
        cwd=ROOT,
        env=base_env(model_home, member_timeout_s="soon"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "YIELD_ENSEMBLE_MEMBER_TIMEOUT_S" in proc.stdout + proc.stderr


def test_schema_mismatch_refuses_to_start(model_home: Path, tmp_path: Path) -> None:
    """A RandomForest trained on other features, saved with the other members' version."""
    home = tmp_path / "home"
    subprocess.run(["cp", "-r", str(model_home), str(home)], check=True)
    script = (
        "import bentoml, numpy as np\n"
        "from sklearn.ensemble import RandomForestClassifier\n"
        "old = bentoml.models.get('yield-random-forest:latest')\n"
        "meta = dict(old.info.metadata)\n"
        "meta['features'] = {'names': ['vdd_v', 'idd_ma'], 'dtypes': [], 'min': [], 'max': []}\n"
        "x = np.random.default_rng(0).normal(size=(50, 2)); y = (x[:, 0] > 0).astype(int)\n"
        "bentoml.sklearn.save_model('yield-random-forest', RandomForestClassifier(3).fit(x, y),"
        " metadata=meta)\n"
    )
    subprocess.run([sys.executable, "-c", script], env=base_env(home), check=True, cwd=ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "bentoml", "serve", "service:YieldEnsemble", "--port", "0"],
        cwd=ROOT,
        env=base_env(home),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode != 0
    assert "member 'random_forest' expects ['vdd_v', 'idd_ma']" in (proc.stdout + proc.stderr)
