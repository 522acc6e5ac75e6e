"""Reads cannot take a replica out of service (issue 23, item 4).

Many clients reading the A/B report and the dashboards at once queue in the reads' own
threads; readiness probes and feedback have threads of their own and keep being answered,
and predictions keep being answered.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import AUTH, running

pytestmark = pytest.mark.integration
ROW = [1.2, 100.0, 2000.0, 25.0, 50.0, 0.95]


def test_a_crowd_of_reads_leaves_probes_and_predictions_alone(
    model_home: Path, tmp_path: Path
) -> None:
    with running(model_home, tmp_path, challenger_fraction="0.1") as srv:
        with httpx.Client(base_url=srv.url, timeout=120) as client:
            for w in range(6):  # 24,000 logged predictions for the reads to go over
                wafer = {"features": [ROW] * 4000, "wafer_id": f"RL{w}",
                         "device_id": [f"rl{w}-{i}" for i in range(4000)]}  # fmt: skip
                assert client.post("/predict_wafer", json=wafer).status_code == 200

        async def load() -> tuple[list[int], list[int], list[int], list[dict[str, int]]]:
            stop = time.monotonic() + 12  # ~48 probes, ~240 predictions under 24 readers
            reads: list[int] = []
            probes: list[int] = []
            predictions: list[int] = []
            feedback: list[dict[str, int]] = []
            async with httpx.AsyncClient(base_url=srv.url, timeout=60) as http:

                async def reader(i: int) -> None:
                    paths = ["/ab/report", "/dashboard/wafers", f"/dashboard/wafers/RL{i % 6}/map"]
                    while time.monotonic() < stop:
                        r = await http.get(paths[i % 3], headers=AUTH)
                        reads.append(r.status_code)

                async def prober() -> None:
                    while time.monotonic() < stop:
                        try:
                            r = await http.get("/readyz", timeout=2)
                            probes.append(r.status_code)
                        except httpx.HTTPError:
                            probes.append(0)
                        await asyncio.sleep(0.25)

                async def predictor() -> None:
                    while time.monotonic() < stop:
                        r = await http.post("/predict", json={"features": ROW})
                        predictions.append(r.status_code)
                        await asyncio.sleep(0.05)

                async def sender() -> None:
                    k = 0
                    while time.monotonic() < stop:
                        outcome = {"device_id": f"rl0-{k}", "actual": "fail"}
                        r = await http.post("/feedback", json={"outcomes": [outcome]},
                                            headers=AUTH)  # fmt: skip
                        feedback.append(r.json()["counts"] if r.status_code == 200 else {})
                        k += 1

                await asyncio.gather(
                    *(reader(i) for i in range(24)), prober(), predictor(), sender()
                )
            return reads, probes, predictions, feedback

        reads, probes, predictions, feedback = asyncio.run(load())
        assert reads and set(reads) <= {200}, sorted(set(reads))
        assert probes and set(probes) == {200}, f"{probes.count(200)} of {len(probes)} ready"
        assert predictions and set(predictions) == {200}
        # Every outcome sent was answered and recorded (a new one each time).
        assert feedback and all(c.get("recorded") == 1 for c in feedback), feedback[:5]
