"""``/predict_stdf`` of a generated file end to end, against ``/predict_wafer`` of the same
parts-by-tests matrix, on one server (``python -m bench.stdf --serve``).

Trains a model from a 2,000-part file of the same tests (``yield-ensemble train --stdf``, in
a BENTOML_HOME of its own), serves it with the prediction cache off (so every run calls the
members) and the body limit raised to 128 MB, then posts in turn, ``repeat`` times after one
warm-up round: the raw file, the gzipped file, and the ``/predict_wafer`` JSON of the same
rows with the same ids (encoded once, before timing). Each time is the client's, from the
first byte sent to the last byte of the answer read; medians. Bodies go out in 1 MB pieces
with their Content-Length: httpx's own write of one large body copies what is left of it
after every send (httpcore 1.0, ``buffer = buffer[n:]``), which took 4 s of a 49 MB post.
"""

from __future__ import annotations

import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from stdf.decode import decode
from stdf.testmap import TestMap
from tests.serving import ROOT, serve

TRAIN_PARTS = 2_000
OCTETS = {"Content-Type": "application/octet-stream"}
PIECE = 1 << 20


def _env(home: Path, data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIELD_ENSEMBLE_")}
    env.update(
        BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="true", TF_CPP_MIN_LOG_LEVEL="2",
        YIELD_ENSEMBLE_DATA_DIR=str(data), YIELD_ENSEMBLE_CACHE_MAXSIZE="0",
        YIELD_ENSEMBLE_MAX_BODY_MB="128",
    )  # fmt: skip
    return env


def _wafer_body(raw: bytes, test_map: TestMap) -> bytes:
    """The file's dies as one /predict_wafer request: its feature rows and its ids."""
    parts = decode(raw, max_bytes=1 << 31)
    return json.dumps(
        {
            "features": test_map.rows(parts).tolist(),
            "device_id": [str(p) for p in parts.part_id],
            "wafer_id": str(parts.wafer[0]),
            "lot_id": str(parts.lot[0]),
            "die_x": parts.x.tolist(),
            "die_y": parts.y.tolist(),
        }
    ).encode()


def end_to_end(raw: bytes, n_parts: int, n_tests: int, repeat: int, tiny: bool) -> dict[str, Any]:
    """Medians (ms) of the three requests and their ratios to ``/predict_wafer``."""
    from bench.stdf import generate

    with tempfile.TemporaryDirectory(prefix="bench-stdf-") as tmp:
        home, data = Path(tmp) / "home", Path(tmp) / "data"
        training = Path(tmp) / "train.stdf"
        training.write_bytes(generate(TRAIN_PARTS, n_tests, seed=1, fail_share=0.1))
        command = [sys.executable, "-m", "train.cli", "train", "--stdf", str(training)]
        started = time.perf_counter()
        subprocess.run(command + (["--tiny", "--folds", "2"] if tiny else []), cwd=ROOT,
                       env=_env(home, data), check=True, capture_output=True)  # fmt: skip
        trained_s = time.perf_counter() - started
        test_map = TestMap.choose(decode(training.read_bytes(), max_bytes=1 << 31))
        bodies = {
            "/predict_stdf, raw file": (raw, OCTETS),
            "/predict_stdf, gzipped file": (gzip.compress(raw, compresslevel=6), OCTETS),
            "/predict_wafer, same matrix (JSON)": (
                _wafer_body(raw, test_map),
                {"Content-Type": "application/json"},
            ),
        }
        server = serve("service:YieldEnsemble", _env(home, data), Path(tmp) / "serve.log")
        try:
            times = _post_in_turn(server.url, bodies, repeat, n_parts)
        finally:
            server.stop()
    medians = {name: statistics.median(t) * 1000 for name, t in times.items()}
    wafer = medians["/predict_wafer, same matrix (JSON)"]
    for name, ms in medians.items():
        print(f"  {name:<36} {ms:8.0f} ms  ({ms / wafer:.2f}x /predict_wafer)")
    return {
        "parts": n_parts, "tests": n_tests, "models": "tiny" if tiny else "full",
        "trained_in_s": trained_s, "repeat": repeat, "cache": "off",
        "body_bytes": {name: len(body) for name, (body, _) in bodies.items()},
        "median_ms": medians, "ratio_to_wafer": {n: ms / wafer for n, ms in medians.items()},
        "load_average_1min": os.getloadavg()[0],
    }  # fmt: skip


def _post_in_turn(
    url: str, bodies: dict[str, tuple[bytes, dict[str, str]]], repeat: int, n_parts: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in bodies}
    pieces = {name: [body[i : i + PIECE] for i in range(0, len(body), PIECE)]
              for name, (body, _) in bodies.items()}  # fmt: skip
    sized = {name: {**headers, "Content-Length": str(len(body))}
             for name, (body, headers) in bodies.items()}  # fmt: skip
    with httpx.Client(base_url=url, timeout=300) as http:
        answers = {}
        for name in bodies:  # warm-up, and the answers agree
            r = http.post(name.split(",")[0], content=iter(pieces[name]), headers=sized[name])
            assert r.status_code == 200, f"{name}: {r.status_code} {r.text[:500]}"
            answers[name] = r.json()["columns"]["prediction"]
        assert all(len(a) == n_parts for a in answers.values())
        assert len({tuple(a) for a in answers.values()}) == 1, "the routes disagree"
        for _ in range(repeat):
            for name in bodies:
                start = time.perf_counter()
                r = http.post(name.split(",")[0], content=iter(pieces[name]), headers=sized[name])
                times[name].append(time.perf_counter() - start)
                assert r.status_code == 200, f"{name}: {r.status_code} {r.text[:500]}"
    return times
