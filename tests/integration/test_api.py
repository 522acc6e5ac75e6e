"""The REST API of a real `bentoml serve`, as a yield dashboard calls it."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest

from models.families import member_names
from train.synthetic import generate

from .conftest import ROOT, Server, sample, trained_decision

pytestmark = pytest.mark.integration


def test_readme_curl_request(server: Server) -> None:
    # The exact command in the README, run by curl.
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-i",
            "-X",
            "POST",
            f"{server.url}/predict",
            "-H",
            "Content-Type: application/json",
            "-d",
            '{"features": [1.2, 100, 2000, 25, 50, 0.95]}',
        ],
        capture_output=True,
        check=True,
    ).stdout.decode()
    head, body = out.split("\r\n\r\n", 1)
    assert head.startswith("HTTP/1.1 200")
    result = httpx.Response(200, content=body).json()
    assert result["prediction"] in ("pass", "fail")
    assert result["request_id"] in head  # same as X-BentoML-Request-ID
    assert (ROOT / "README.md").read_text().count("[1.2, 100, 2000, 25, 50, 0.95]") >= 1


def test_predict_shape_and_vote(server: Server, model_home: Path) -> None:
    r = httpx.post(f"{server.url}/predict", json=sample("predict.json"))
    assert r.status_code == 200
    body = r.json()
    assert body["request_id"] == r.headers["x-bentoml-request-id"]
    assert set(body["votes"]) == set(member_names())  # every member's worker answered
    assert len(set(body["votes"].values())) == 3  # three different models
    # The majority vote as trained: calibrated members, the fitted threshold.
    majority = trained_decision(model_home).combiner()
    assert (body["combiner"], body["threshold"]) == (majority.key, majority.threshold)
    assert body["combiner"].startswith("majority:1@")
    passed, probability = majority.combine({m: np.array([v]) for m, v in body["votes"].items()})
    assert body["probability"] == pytest.approx(probability[0], abs=1e-6)
    assert body["prediction"] == ("pass" if passed[0] else "fail")
    assert body["arm"] == "ensemble" and body["degraded"] is False
    assert set(body["model_versions"]) == set(member_names())


def test_named_features_equal_positional(server: Server) -> None:
    named = sample("predict_named.json")
    positional = {"features": list(named["features"].values())}  # type: ignore[union-attr]
    a = httpx.post(f"{server.url}/predict", json=named).json()
    b = httpx.post(f"{server.url}/predict", json=positional).json()
    assert a["device_id"] == "W0007-X+03Y-02"
    assert a["votes"] == b["votes"]


def test_wafer_batch_of_10000_in_order(server: Server) -> None:
    wafer = generate(10_000, seed=11)
    features = (
        wafer[["vdd_v", "idd_ma", "freq_mhz", "temp_c", "test_time_ms", "neighbor_yield"]]
        .to_numpy()
        .tolist()
    )
    devices = [
        {"device_id": d, "features": f} for d, f in zip(wafer.device_id, features, strict=True)
    ]
    r = httpx.post(f"{server.url}/predict_batch", json={"devices": devices}, timeout=60)
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == 10_000
    assert [x["device_id"] for x in body["results"]] == wafer.device_id.tolist()
    # Row order: a single-device call for a few sampled rows gives the same votes.
    for i in (0, 4321, 9999):
        single = httpx.post(f"{server.url}/predict", json={"features": features[i]}).json()
        assert single["votes"] == pytest.approx(body["results"][i]["votes"], abs=1e-6)
    accuracy = np.mean(
        [
            (x["prediction"] == "pass") == bool(y)
            for x, y in zip(body["results"], wafer.passed, strict=True)
        ]
    )
    assert accuracy > 0.8  # tiny models, still far above the 18% majority baseline


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/predict", {"features": [1.2, 100, 2000, 25, 50]}, "features"),
        ("/predict", {"features": [1.2, 100, "fast", 25, 50, 0.95]}, "features[2] (freq_mhz)"),
        ("/predict", {"features": {"vdd_v": 1.2}}, "features.idd_ma"),
        ("/predict", {"features": {"vdd": 1.2}}, "features.vdd"),
        ("/predict", {"features": "1.2,100"}, "features"),
        ("/predict", {"features": [1.2, 100, 2000, 25, 50, 0.95], "device_id": ""}, "device_id"),
        ("/predict_batch", {"devices": []}, "devices"),
        ("/predict_batch", {"devices": [{"features": [1, 2]}]}, "devices[0].features"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    server: Server, path: str, payload: dict[str, object], field: str
) -> None:
    r = httpx.post(f"{server.url}{path}", json=payload)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert field in r.json()["error"]


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ('{"features": [1.2, 100, NaN, 25, 50, 0.95]}', "freq_mhz"),
        ('{"features": [1.2, 100, Infinity, 25, 50, 0.95]}', "freq_mhz"),
        ('{"features": [1.2, 100', "json"),
        ("{}", "features"),
        ('{"devices": "wafer"}', "features"),
    ],
)
def test_malformed_requests_are_4xx(server: Server, body: str, word: str) -> None:
    r = httpx.post(
        f"{server.url}/predict", content=body, headers={"Content-Type": "application/json"}
    )
    assert 400 <= r.status_code < 500, r.text
    assert word in r.text.lower()


def test_oversize_batch_is_rejected(model_home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from .conftest import running

    with running(model_home, tmp_path, max_batch_devices="5") as srv:
        devices = [{"features": [1.2, 100, 2000, 25, 50, 0.95]}] * 6
        r = httpx.post(f"{srv.url}/predict_batch", json={"devices": devices})
        assert r.status_code == 422 and "at most 5 devices" in r.json()["error"]


def test_probes_and_metrics(server: Server) -> None:
    assert httpx.get(f"{server.url}/livez").status_code == 200
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    metrics = httpx.get(f"{server.url}/metrics")
    assert metrics.status_code == 200 and "bentoml_service_request_total" in metrics.text


def test_concurrent_load_has_no_errors(server: Server) -> None:
    """16 concurrent clients, 960 requests: far past BentoML's default 100-call session recycle."""

    async def client(http: httpx.AsyncClient, seed: int) -> list[int]:
        rng = np.random.default_rng(seed)
        codes = []
        for _ in range(60):
            row = [1.2 + rng.normal(0, 0.03), 100, 2000 + rng.normal(0, 50), 25, 50, 0.9]
            r = await http.post(f"{server.url}/predict", json={"features": row})
            codes.append(r.status_code)
            if r.status_code == 200:
                assert not r.json()["degraded"], r.text
        return codes

    async def run() -> list[int]:
        async with httpx.AsyncClient(timeout=30) as http:
            results = await asyncio.gather(*(client(http, s) for s in range(16)))
        return [c for codes in results for c in codes]

    codes = asyncio.run(run())
    assert len(codes) == 960 and set(codes) == {200}
