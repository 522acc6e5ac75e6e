"""Measure a served system: cold start, sequential latency, a wafer batch, memory.

    python -m bench [--requests 1000] [--out bench/results]

Trains the default models into the BentoML store if it has none, starts
`bentoml serve` on a free port, drives it from this process over keep-alive
HTTP, and writes JSON plus a Markdown table. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

from train.synthetic import feature_rows

ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = {"yield-ensemble": "service:YieldEnsemble"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _memory(root: psutil.Process) -> dict[str, float]:
    """RSS and PSS (MB) of the serve process and all its children."""
    rss = pss = 0.0
    processes = []
    for proc in [root, *root.children(recursive=True)]:
        try:
            info = proc.memory_full_info()
        except psutil.Error:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
        processes.append({"cmd": " ".join(proc.cmdline()[-4:])[:120], "rss_mb": info.rss / 2**20})
    return {"rss_mb": rss / 2**20, "pss_mb": pss / 2**20, "processes": processes}  # type: ignore[dict-item]


def measure(system: str, target: str, n_requests: int, log: Path) -> dict[str, Any]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{system} exited; see {log}")
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
            cold_start = time.perf_counter() - start
            rows = feature_rows(n_requests + 50, seed=0)
            warm_up, rows = rows[n_requests:], rows[:n_requests]
            for row in warm_up:  # rows never sent again, so the measured ones all miss
                http.post("/predict", json={"features": row})
            latencies, errors = [], 0
            for row in rows:  # distinct rows: cache misses
                t0 = time.perf_counter()
                r = http.post("/predict", json={"features": row})
                latencies.append((time.perf_counter() - t0) * 1000)
                errors += r.status_code != 200
            hits = []
            for _ in range(500):  # the same row again: a cache hit after the first
                t0 = time.perf_counter()
                r = http.post("/predict", json={"features": rows[0]})
                hits.append((time.perf_counter() - t0) * 1000)
                errors += r.status_code != 200
            wafer = {"devices": [{"features": r} for r in (rows * 10)[:10_000]]}
            batch_ms = []
            for _ in range(10):
                t0 = time.perf_counter()
                r = http.post("/predict_batch", json=wafer)
                batch_ms.append((time.perf_counter() - t0) * 1000)
                errors += r.status_code != 200
        memory = _memory(psutil.Process(proc.pid))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    return {
        "system": system,
        "cold_start_s": cold_start,
        "sequential": {
            "n": n_requests,
            "median_ms": statistics.median(latencies),
            "p99_ms": _percentile(latencies, 99),
            "errors": errors,
        },
        "cache_hit": {
            "n": len(hits),
            "median_ms": statistics.median(hits),
            "p99_ms": _percentile(hits, 99),
        },
        "batch_10000": {"runs": 10, "median_ms": statistics.median(batch_ms)},
        "memory": memory,
    }


def _table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| system | cold start to /readyz | sequential median | sequential p99 | "
        "cache hit median / p99 | 10,000-device batch (median of 10) | RSS all processes | PSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['system']} | {r['cold_start_s']:.1f} s | {r['sequential']['median_ms']:.2f} ms "
            f"| {r['sequential']['p99_ms']:.2f} ms "
            f"| {r['cache_hit']['median_ms']:.2f} / {r['cache_hit']['p99_ms']:.2f} ms "
            f"| {r['batch_10000']['median_ms']:.0f} ms "
            f"| {r['memory']['rss_mb']:.0f} MB | {r['memory']['pss_mb']:.0f} MB |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    subprocess.run(
        [sys.executable, "-m", "train.cli", "train", "--if-missing"], cwd=ROOT, check=True
    )
    args.out.mkdir(parents=True, exist_ok=True)
    results = [
        measure(name, target, args.requests, args.out / f"{name}.log")
        for name, target in SYSTEMS.items()
    ]
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        },
        "results": results,
    }
    (args.out / "latest.json").write_text(json.dumps(report, indent=2))
    table = _table(results)
    (args.out / "latest.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
