"""Cache and sticky A/B split through a real server, with the default 10% challenger."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from train.synthetic import feature_rows

from .conftest import Server, running

pytestmark = pytest.mark.integration


def _wafer(n: int) -> dict[str, object]:
    rows = feature_rows(n, seed=5)
    return {
        "devices": [
            {"device_id": f"L7-W{i // 700:03d}-D{i}", "features": r} for i, r in enumerate(rows)
        ]
    }


def test_split_share_stickiness_across_restart_and_cache(model_home: Path, tmp_path: Path) -> None:
    wafer = _wafer(10_000)  # the split hashes device ids: the share is exact, not sampled
    with running(model_home, tmp_path) as srv:
        first = httpx.post(f"{srv.url}/predict_batch", json=wafer, timeout=120).json()["results"]
        arms = [r["arm"] for r in first]
        share = arms.count("challenger") / len(arms)
        assert 0.09 <= share <= 0.11, share
        for r in first:
            if r["arm"] == "challenger":
                assert list(r["votes"]) == ["xgboost"]
            else:
                assert len(r["votes"]) == 3
        assert not any(r["cached"] for r in first)
        again = httpx.post(f"{srv.url}/predict_batch", json=wafer, timeout=120).json()["results"]
        assert all(r["cached"] for r in again)
        assert [r["prediction"] for r in again] == [r["prediction"] for r in first]
    with running(model_home, tmp_path) as restarted:
        after = httpx.post(f"{restarted.url}/predict_batch", json=wafer, timeout=120).json()
        assert [r["arm"] for r in after["results"]] == arms  # same arm after a restart
        assert not any(r["cached"] for r in after["results"])  # the cache did not survive


def test_single_request_cache_hit(server: Server) -> None:
    request = {"features": [1.19, 101.5, 1987.0, 85, 52.5, 0.625]}  # no other test sends it
    a = httpx.post(f"{server.url}/predict", json=request).json()
    b = httpx.post(f"{server.url}/predict", json=request).json()
    assert (a["cached"], b["cached"]) == (False, True)
    assert a["request_id"] != b["request_id"]
    assert {k: a[k] for k in ("prediction", "probability", "votes")} == {
        k: b[k] for k in ("prediction", "probability", "votes")
    }
