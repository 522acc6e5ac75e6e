"""Load beyond capacity queues or is refused cleanly before work starts, on a real server.

Wafers that would fill the prediction log's memory take turns: a single die never gets a
503 behind them, no die is answered degraded, and a wafer that cannot get its turn is
refused with 429 and Retry-After, never half-served.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest

from ensemble.schema import DEFAULT_FEATURES
from tests.integration.conftest import running

pytestmark = pytest.mark.integration

DIES = 2_000


def _wafer(seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    rows = rng.normal([1.2, 100, 2000, 25, 50, 0.95], [0.05, 5, 50, 5, 5, 0.02],
                      size=(DIES, len(DEFAULT_FEATURES)))  # fmt: skip
    return {
        "features": rows.round(4).tolist(),
        "device_id": [f"w{seed}-{i}" for i in range(DIES)],
        "wafer_id": f"W{seed}",
    }


def test_wafers_take_turns_and_single_dies_never_starve(model_home: Path, tmp_path: Path) -> None:
    settings = {
        "challenger_fraction": "0",
        "cache_maxsize": "0",
        # A log that holds 1.5 wafers in memory and writes every 2 s: four concurrent
        # wafers would fill it (before: singles answered 503 "holds ... unwritten").
        "prediction_log_max_pending_rows": str(int(DIES * 1.5)),
        "prediction_log_flush_interval_s": "2",
    }
    with running(model_home, tmp_path, **settings) as srv:

        async def load() -> tuple[list[httpx.Response], list[httpx.Response]]:
            async with httpx.AsyncClient(base_url=srv.url, timeout=90) as client:
                wafers = [
                    asyncio.create_task(client.post("/predict_wafer", json=_wafer(s)))
                    for s in range(4)
                ]
                singles = []
                for i in range(40):
                    body = {"features": [1.2, 100, 2000, 25, 50, 0.95], "device_id": f"s{i}"}
                    singles.append(await client.post("/predict", json=body))
                    await asyncio.sleep(0.1)
                return list(await asyncio.gather(*wafers)), singles

        wafers, singles = asyncio.run(load())
        assert [r.status_code for r in singles] == [200] * len(singles), [
            r.text[:200] for r in singles if r.status_code != 200
        ]
        assert not any(r.json()["degraded"] for r in singles)
        for r in wafers:
            assert r.status_code in (200, 429), r.text[:300]
            if r.status_code == 200:
                assert r.json()["degraded"] is False and r.json()["count"] == DIES
            else:
                assert int(r.headers["retry-after"]) >= 1
        assert sum(r.status_code == 200 for r in wafers) >= 2
