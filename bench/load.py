"""Closed-loop load generator, run as its own process so its CPU is measured apart.

    python -m bench.load --url http://127.0.0.1:3000 --concurrency 64 --duration 30

Each of ``concurrency`` clients sends single-row ``/predict`` requests back to
back over keep-alive, each with a row no one sent before (cache misses). Bodies
are serialised before the clock starts. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from typing import Any

import aiohttp
import numpy as np

from train.synthetic import feature_rows


async def _run(url: str, concurrency: int, duration: float, bodies: list[bytes]) -> dict[str, Any]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    next_row = 0
    deadline = 0.0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal next_row
        while time.perf_counter() < deadline:
            body = bodies[next_row % len(bodies)]
            next_row += 1
            t0 = time.perf_counter()
            try:
                async with session.post(
                    "/predict", data=body, headers={"Content-Type": "application/json"}
                ) as r:
                    await r.read()
                    status = r.status
            except aiohttp.ClientError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            if status == 200:
                latencies.append(time.perf_counter() - t0)
            else:
                errors[str(status)] = errors.get(str(status), 0) + 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:
        cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        deadline = wall0 + duration
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        wall = time.perf_counter() - wall0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    ms = np.asarray(latencies) * 1000
    return {
        "concurrency": concurrency,
        "duration_s": wall,
        "requests": len(latencies),
        "requests_per_s": len(latencies) / wall,
        "median_ms": float(np.median(ms)) if len(ms) else None,
        "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "client_cpu_s": cpu,
        "client_cpu_share_of_one_core": cpu / wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rows = feature_rows(args.rows, seed=args.seed)
    bodies = [json.dumps({"features": r}).encode() for r in rows]
    print(json.dumps(asyncio.run(_run(args.url, args.concurrency, args.duration, bodies))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
