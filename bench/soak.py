"""A production day in ten minutes: two replicas on one PostgreSQL, faults on the way.

    python -m bench.soak --database-url postgresql+psycopg://yield:yield@127.0.0.1/yield_soak \
        [--duration 600] [--pg-cluster "15 main"]

Starts two replicas (``bentoml serve``, each its own data directory, one shared ledger)
and sends mixed traffic to both for ``--duration`` seconds: single dies, 2,000-die
wafers, feedback on answered dies and A/B report reads, while a prober asks /readyz of
each replica every second. A third of the way in, one member worker of replica A is
SIGKILLed; two thirds in, PostgreSQL is restarted (``pg_ctlcluster ... restart``). At
the end it waits for the logs to drain and prints, and writes to
``bench/results/soak.json``: predictions answered 200 against rows logged (equal), 5xx
answers (0), readiness failures outside the database restart (0), and p50/p99 per route.
Not part of the tests: it takes the whole duration and restarts the database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import sqlalchemy as sa

from tests.serving import ROOT, Server, serve
from train.synthetic import feature_rows

KEY = "soak:admin:soak-admin-secret-000000001"
AUTH = {"Authorization": "Bearer soak-admin-secret-000000001"}
#: Seconds around the database restart in which a replica may be unready.
RESTART_GRACE_S = 30.0


class Tally:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.status: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.answered: set[str] = set()
        self.unready: list[tuple[str, float]] = []

    def note(self, route: str, started: float, r: httpx.Response | None) -> None:
        self.latency[route].append((time.perf_counter() - started) * 1000)
        self.status[route][r.status_code if r is not None else 0] += 1


async def _client(url: str, tally: Tally, stop: float, seed: int, ids: list[str]) -> None:
    rng = random.Random(seed)
    rows = feature_rows(4000, seed=seed)
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        while time.monotonic() < stop:
            kind = rng.choices(["single", "wafer", "feedback", "report"], [80, 6, 10, 4])[0]
            started = time.perf_counter()
            r = None
            try:
                if kind == "single":
                    dev = f"s{seed}-{rng.randrange(10**9)}"
                    r = await http.post("/predict", json={"features": rng.choice(rows),
                                                          "device_id": dev})  # fmt: skip
                    if r.status_code == 200:
                        tally.answered.add(r.json()["request_id"])
                        ids.append(dev)
                elif kind == "wafer":
                    pick = rng.sample(range(len(rows)), 2000)
                    body = {
                        "features": [rows[i] for i in pick],
                        "wafer_id": f"W{seed}-{rng.randrange(10**6)}",
                    }
                    r = await http.post("/predict_wafer", json=body)
                    if r.status_code == 200:
                        rid = r.json()["request_id"]
                        tally.answered.update(f"{rid}.{i}" for i in range(2000))
                elif kind == "feedback" and ids:
                    outcomes = [{"device_id": d, "actual": rng.choice(["pass", "fail"])}
                                for d in rng.sample(ids, min(20, len(ids)))]  # fmt: skip
                    r = await http.post("/feedback", json={"outcomes": outcomes}, headers=AUTH)
                elif kind == "report":
                    r = await http.get("/ab/report", headers=AUTH)
            except httpx.HTTPError:
                r = None
            tally.note(kind, started, r)


async def _prober(name: str, url: str, tally: Tally, stop: float) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=2) as http:
        while time.monotonic() < stop:
            try:
                ok = (await http.get("/readyz")).status_code == 200
            except httpx.HTTPError:
                ok = False
            if not ok:
                tally.unready.append((name, time.monotonic()))
            await asyncio.sleep(1)


def _kill_a_member(server: Server) -> str:
    for child in psutil.Process(server.proc.pid).children(recursive=True):
        line = " ".join(child.cmdline())
        if "--service-name yield_xgboost" in line:
            child.send_signal(signal.SIGKILL)
            return line
    return "no member found"


async def _run(urls: dict[str, str], servers: dict[str, Server], args: Any) -> dict[str, Any]:
    tally = Tally()
    start = time.monotonic()
    stop = start + args.duration
    events: dict[str, float] = {}

    async def faults() -> None:
        await asyncio.sleep(args.duration / 3)
        events["member_killed"] = time.monotonic()
        _kill_a_member(servers["a"])
        await asyncio.sleep(args.duration / 3)
        events["database_restart"] = time.monotonic()
        await asyncio.to_thread(
            subprocess.run, ["pg_ctlcluster", *args.pg_cluster.split(), "restart"], check=True
        )
        events["database_back"] = time.monotonic()

    ids: list[str] = []
    tasks = [_client(urls["ab"[i % 2]], tally, stop, i, ids) for i in range(args.clients)]
    tasks += [_prober(n, u, tally, stop) for n, u in urls.items()]
    await asyncio.gather(*tasks, faults())
    restart = (
        events.get("database_restart", 0) - 1,
        events.get("database_back", 0) + RESTART_GRACE_S,
    )
    outside = [(n, t) for n, t in tally.unready if not restart[0] <= t <= restart[1]]
    return {"tally": tally, "unready_outside_restart": outside, "events": events, "start": start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--pg-cluster", default="15 main")
    args = parser.parse_args()
    # The default models, as `make serve` trains them when the store has none.
    subprocess.run([sys.executable, "-m", "train.cli", "train", "--if-missing"], cwd=ROOT,
                   check=True)  # fmt: skip
    engine = sa.create_engine(args.database_url)
    from ledger.migrate import drop_all

    drop_all(engine)
    servers: dict[str, Server] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for name in ("a", "b"):
                env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", "TF_CPP_MIN_LOG_LEVEL": "2",
                       "YIELD_ENSEMBLE_DATABASE_URL": args.database_url,
                       "YIELD_ENSEMBLE_DATA_DIR": f"{tmp}/{name}",
                       "YIELD_ENSEMBLE_API_KEYS": KEY}  # fmt: skip
                servers[name] = serve("service:YieldEnsemble", env, Path(tmp) / f"{name}.log")
            urls = {n: s.url for n, s in servers.items()}
            out = asyncio.run(_run(urls, servers, args))
            # Let both replicas drain their logs (and their spills) into the database.
            tally = out["tally"]
            deadline = time.monotonic() + 120
            logged: set[str] = set()
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    column = sa.text("SELECT request_id FROM predictions")
                    logged = {r for (r,) in conn.execute(column)}
                if tally.answered <= logged:
                    break
                time.sleep(2)
        finally:
            for server in servers.values():
                with contextlib.suppress(Exception):
                    server.stop()
    five = {r: sum(n for s, n in st.items() if s >= 500) for r, st in tally.status.items()}
    result = {
        "duration_s": args.duration,
        "answered": len(tally.answered),
        "logged_of_answered": len(tally.answered & logged),
        "lost": len(tally.answered - logged),
        "status": {r: dict(st) for r, st in tally.status.items()},
        "5xx": five,
        "unready_outside_restart": len(out["unready_outside_restart"]),
        "unready_total": len(tally.unready),
        "latency_ms": {
            r: {"n": len(v), "p50": float(np.percentile(v, 50)), "p99": float(np.percentile(v, 99))}
            for r, v in tally.latency.items()
        },
        "events_s": {k: v - out["start"] for k, v in out["events"].items()},
    }
    print(json.dumps(result, indent=2))
    (ROOT / "bench" / "results" / "soak.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
