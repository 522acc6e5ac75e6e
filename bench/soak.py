"""A production day in ten minutes: two replicas on one PostgreSQL, faults on the way.

    python -m bench.soak --database-url postgresql+psycopg://yield:yield@127.0.0.1/yield_soak \
        [--duration 600] [--pg-cluster "15 main"] [--db-down-s 5] [--log-dir DIR]

Starts two replicas (``bentoml serve``, each its own data directory, one shared ledger)
and sends mixed traffic to both for ``--duration`` seconds: single dies and 2,000-die
wafers from ``--clients`` clients, feedback on answered dies from one more and A/B
report reads from another (``--read-clients`` pairs; apart, since a client waiting on a
report sends nothing else while it waits out a fault), while a prober asks /readyz of
each replica every second (2 s timeout, as a kubelet). A third of the way in, replica A's
xgboost member is SIGKILLed (its window lasts until a new process runs and A's /readyz
names no member degraded); two thirds in, PostgreSQL is stopped, kept down
``--db-down-s`` seconds and started (its window lasts until a new connection answers).
Every die sent is new (its measurements jittered by ~1e-4), so the cache answers none.

Every failure (a non-2xx answer, no answer, a failed probe) is kept with its time in
seconds since the start, route, status, replica and error, and classed as inside a fault
window (its request overlaps the window plus ``--grace-s``) or outside. At the end it
waits for the logs to drain and prints, and writes to ``bench/results/soak.json``:
predictions answered 200 against rows logged (equal), 5xx answers (0), failures and
readiness failures by window (0 outside), dies answered, cached and degraded by window,
p50/p99 per route, the faults' times, and the failures one by one. Not part of the
tests: it takes the whole duration and stops the database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
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
#: Seconds after a fault ends in which its after-effects still count as inside it.
GRACE_S = 5.0
#: A kubelet's default probe timeout (deploy/k8s sets none), seconds.
PROBE_TIMEOUT_S = 1.0
#: Failures listed one by one in the result (all are counted).
LISTED = 500


class Tally:
    """What the clients and probers saw: latency and status per route, the ids answered,
    and every failure with its time (seconds since the start), route, status, replica."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.status: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.answered: set[str] = set()
        self.failures: list[dict[str, Any]] = []
        self.probes: dict[str, int] = defaultdict(int)
        #: (sent, answered, replica, dies, of them cached, of them degraded) per answer.
        self.dies: list[tuple[float, float, str, int, int, int]] = []

    def at(self, t: float) -> float:
        return round(t - self.start, 3)

    def note(self, route: str, replica: str, started: float, r: httpx.Response | None,
             error: str | None = None) -> None:  # fmt: skip
        ended = time.monotonic()
        self.latency[route].append((ended - started) * 1000)
        status = r.status_code if r is not None else 0
        self.status[route][status] += 1
        if not 200 <= status < 300:
            self.failures.append({
                "t": self.at(started), "t_end": self.at(ended), "route": route,
                "status": status, "replica": replica, "error": error or _error(r),
            })  # fmt: skip


def _error(r: httpx.Response | None) -> str:
    if r is None:
        return "no answer"
    try:
        return str(r.json().get("error"))[:300]
    except ValueError:
        return r.text[:300]


def _fresh(rows: np.ndarray, rng: np.random.Generator) -> list[list[float]]:
    """``rows`` measured again: each value off by ~1e-4 of itself, so no die repeats and
    the cache answers none (a member's loss then shows in the answers, as on a tester
    floor, where every die is new)."""
    return (rows * (1 + rng.normal(0, 1e-4, rows.shape))).tolist()  # type: ignore[no-any-return]


#: What each kind of client sends, with weights.
PREDICTING = {"single": 80, "wafer": 6}
FEEDBACK = {"feedback": 1}
REPORTS = {"report": 1}


async def _client(name: str, url: str, tally: Tally, stop: float, seed: int,
                  ids: list[str], mix: dict[str, int]) -> None:  # fmt: skip
    """Requests one after another, each drawn from ``mix``. Predictions and reads come
    from clients of their own: a client waiting on a slow read sends nothing else."""
    rng = random.Random(seed)
    noise = np.random.default_rng(seed)
    rows = np.asarray(feature_rows(4000, seed=seed), dtype=float)
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        while time.monotonic() < stop:
            kind = rng.choices(list(mix), list(mix.values()))[0]
            if kind == "feedback" and not ids:
                await asyncio.sleep(0.1)
                continue
            started = time.monotonic()
            r, error = None, None
            try:
                if kind == "single":
                    dev = f"s{seed}-{rng.randrange(10**9)}"
                    row = _fresh(rows[rng.randrange(len(rows))][None, :], noise)[0]
                    r = await http.post("/predict", json={"features": row, "device_id": dev})
                    if r.status_code == 200:
                        body = r.json()
                        tally.answered.add(body["request_id"])
                        tally.dies.append((started, time.monotonic(), name, 1, int(body["cached"]),
                                           int(body["degraded"])))  # fmt: skip
                        ids.append(dev)
                elif kind == "wafer":
                    pick = rng.sample(range(len(rows)), 2000)
                    body = {
                        "features": _fresh(rows[pick], noise),
                        "wafer_id": f"W{seed}-{rng.randrange(10**6)}",
                    }
                    r = await http.post("/predict_wafer", json=body)
                    if r.status_code == 200:
                        answer = r.json()
                        rid, cols = answer["request_id"], answer["columns"]
                        tally.answered.update(f"{rid}.{i}" for i in range(2000))
                        cached, degraded = sum(cols["cached"]), sum(cols["degraded"])
                        tally.dies.append((started, time.monotonic(), name, 2000, cached, degraded))
                elif kind == "feedback":
                    outcomes = [{"device_id": d, "actual": rng.choice(["pass", "fail"])}
                                for d in rng.sample(ids, min(20, len(ids)))]  # fmt: skip
                    r = await http.post("/feedback", json={"outcomes": outcomes}, headers=AUTH)
                elif kind == "report":
                    r = await http.get("/ab/report", headers=AUTH)
            except httpx.HTTPError as exc:
                r, error = None, f"{type(exc).__name__}: {exc}"[:300]
            tally.note(kind, name, started, r, error)


async def _prober(name: str, url: str, tally: Tally, stop: float, seen: list[Any]) -> None:
    """/readyz every second (2 s timeout); ``seen`` gets (time, status, degraded members)
    of each probe. A 200 slower than ``PROBE_TIMEOUT_S`` (a kubelet's default timeout,
    which deploy/k8s keeps) is kept as ``readyz_slow``: a kubelet counts it failed."""
    async with httpx.AsyncClient(base_url=url, timeout=2) as http:
        while time.monotonic() < stop:
            started = time.monotonic()
            r, error, degraded = None, None, None
            try:
                r = await http.get("/readyz")
                with contextlib.suppress(ValueError, AttributeError):
                    degraded = r.json().get("degraded")
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
            tally.probes[name] += 1
            status = r.status_code if r is not None else 0
            seen.append((started, status, degraded))
            if status != 200:
                tally.note("readyz", name, started, r, error)
            else:
                took = time.monotonic() - started
                tally.latency["readyz"].append(took * 1000)
                tally.status["readyz"][200] += 1
                if took > PROBE_TIMEOUT_S:
                    tally.failures.append({
                        "t": tally.at(started), "t_end": tally.at(started + took),
                        "route": "readyz_slow", "status": 200, "replica": name,
                        "error": f"answered after {took * 1000:.0f} ms",
                    })  # fmt: skip
            await asyncio.sleep(max(0.0, 1 - (time.monotonic() - started)))


def _member(server: Server, service: str) -> psutil.Process | None:
    for child in psutil.Process(server.proc.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if f"--service-name {service}" in " ".join(child.cmdline()):
                return child
    return None


def _database_answers(url: str) -> bool:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool,
                              connect_args={"connect_timeout": 1})  # fmt: skip
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


async def _faults(servers: dict[str, Server], args: Any, events: dict[str, float],
                  probes_a: list[Any], start: float) -> None:  # fmt: skip
    """A third of the way in, SIGKILL replica A's xgboost member; two thirds in, stop
    PostgreSQL, keep it down ``--db-down-s``, start it. Each step's time in ``events``."""
    stop = start + args.duration
    await asyncio.sleep(args.duration / 3)
    member = _member(servers["a"], "yield_xgboost")
    if member is None:
        raise RuntimeError("replica a has no yield_xgboost member process")
    events["member_killed"] = time.monotonic()
    member.send_signal(signal.SIGKILL)
    # Back: a new process, then replica A's /readyz naming no member degraded.
    while time.monotonic() < stop:
        new = _member(servers["a"], "yield_xgboost")
        if new is not None and new.pid != member.pid:
            events["member_process_started"] = time.monotonic()
            break
        await asyncio.sleep(0.1)
    while time.monotonic() < stop and "member_back" not in events:
        after = events.get("member_process_started", math.inf)
        whole = [t for t, status, degraded in probes_a
                 if t > after and status == 200 and degraded == []]  # fmt: skip
        if whole:
            events["member_back"] = whole[0]
        await asyncio.sleep(0.2)
    await asyncio.sleep(max(0.0, start + 2 * args.duration / 3 - time.monotonic()))
    cluster = args.pg_cluster.split()
    events["database_stop"] = time.monotonic()
    await asyncio.to_thread(subprocess.run, ["pg_ctlcluster", *cluster, "stop"], check=True)
    events["database_stopped"] = time.monotonic()
    await asyncio.sleep(args.db_down_s)
    events["database_start"] = time.monotonic()
    starting = asyncio.create_task(
        asyncio.to_thread(subprocess.run, ["pg_ctlcluster", *cluster, "start"], check=True)
    )
    # Back: the first new connection that answers, watched while the cluster starts.
    while not await asyncio.to_thread(_database_answers, args.database_url):
        await asyncio.sleep(0.1)
    events["database_back"] = time.monotonic()
    await starting
    events["database_started"] = time.monotonic()


def _windows(events: dict[str, float], start: float) -> dict[str, tuple[float, float]]:
    """Each fault's window in seconds since the start: (fault began, it ended)."""
    out = {}
    if "member_killed" in events:
        end = events.get("member_back", events.get("member_process_started", math.inf))
        out["member"] = (events["member_killed"] - start, end - start)
    if "database_stop" in events:
        out["database"] = (events["database_stop"] - start,
                           events.get("database_back", math.inf) - start)  # fmt: skip
    return out


#: The replicas each fault touches: the member is killed in replica A only.
FAULT_REPLICAS = {"member": ("a",), "database": ("a", "b")}


def classify(failure: dict[str, Any], windows: dict[str, tuple[float, float]],
             grace_s: float) -> str:  # fmt: skip
    """The fault window a failure overlaps (its request from sent to answered, against
    the window plus ``grace_s``, on a replica the fault touches), or "outside"."""
    for name, (begin, end) in windows.items():
        touched = failure["replica"] in FAULT_REPLICAS[name]
        if touched and failure["t"] <= end + grace_s and failure["t_end"] >= begin:
            return name
    return "outside"


async def _run(urls: dict[str, str], servers: dict[str, Server], args: Any) -> dict[str, Any]:
    start = time.monotonic()
    tally = Tally(start)
    stop = start + args.duration
    events: dict[str, float] = {}
    ids: list[str] = []
    probes: dict[str, list[Any]] = {n: [] for n in urls}
    mixes = [PREDICTING] * args.clients + [FEEDBACK, REPORTS] * args.read_clients
    tasks = [_client("ab"[i % 2], urls["ab"[i % 2]], tally, stop, i, ids, mix)
             for i, mix in enumerate(mixes)]  # fmt: skip
    tasks += [_prober(n, u, tally, stop, probes[n]) for n, u in urls.items()]
    await asyncio.gather(*tasks, _faults(servers, args, events, probes["a"], start))
    return {"tally": tally, "events": events, "start": start}


def summary(out: dict[str, Any], logged: set[str], args: Any) -> dict[str, Any]:
    """The soak's result: answered against logged, 5xx, failures by fault window (each
    listed with its time), readiness failures, latency per route, the faults' times."""
    tally: Tally = out["tally"]
    windows = _windows(out["events"], out["start"])
    for failure in tally.failures:
        failure["window"] = classify(failure, windows, args.grace_s)
    failures = sorted(tally.failures, key=lambda f: f["t"])
    requests = [f for f in failures if not f["route"].startswith("readyz")]
    probes = [f for f in failures if f["route"] == "readyz"]
    slow = [f for f in failures if f["route"] == "readyz_slow"]

    def by_window(items: list[dict[str, Any]]) -> dict[str, int]:
        counts = dict.fromkeys(["outside", *windows], 0)
        for f in items:
            counts[f["window"]] += 1
        return counts

    five = [f for f in requests if f["status"] >= 500]
    dies: dict[str, dict[str, float]] = {}
    for sent, answered, replica, n, cached, degraded in tally.dies:
        at = {"t": sent - out["start"], "t_end": answered - out["start"], "replica": replica}
        window = classify(at, windows, 0)
        counts = dies.setdefault(window, {"answered": 0, "cached": 0, "degraded": 0})
        counts["answered"] += n
        counts["cached"] += cached
        counts["degraded"] += degraded
    lengths = {name: end - begin for name, (begin, end) in windows.items()}
    lengths["outside"] = args.duration - sum(lengths.values())
    for window, counts in dies.items():
        counts["per_s"] = round(counts["answered"] / lengths[window])
    routes = sorted(set(tally.status) - {"readyz"})
    return {
        "duration_s": args.duration,
        "clients": {
            "predicting": args.clients,
            "feedback": args.read_clients,
            "report": args.read_clients,
        },
        "answered": len(tally.answered),
        "logged_of_answered": len(tally.answered & logged),
        "lost": len(tally.answered - logged),
        "status": {r: dict(st) for r, st in tally.status.items()},
        "5xx": {r: sum(1 for f in five if f["route"] == r) for r in routes},
        "5xx_outside_faults": sum(1 for f in five if f["window"] == "outside"),
        "failed_requests_by_window": by_window(requests),
        "dies_by_window": dies,
        "readiness_probes": dict(tally.probes),
        "readiness_failures_by_window": by_window(probes),
        "readiness_over_1s_by_window": by_window(slow),
        "fault_windows_s": {n: [round(b, 3), round(e, 3)] for n, (b, e) in windows.items()},
        "grace_s": args.grace_s,
        "events_s": {k: round(v - out["start"], 3) for k, v in out["events"].items()},
        "latency_ms": {
            r: {
                "n": len(v),
                "p50": round(float(np.percentile(v, 50)), 2),
                "p99": round(float(np.percentile(v, 99)), 2),
            }
            for r, v in sorted(tally.latency.items())
        },
        "failures": failures[:LISTED],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--clients", type=int, default=6, help="clients sending predictions")
    parser.add_argument("--read-clients", type=int, default=1,
                        help="pairs of clients: one sends feedback, one report reads")  # fmt: skip
    parser.add_argument("--pg-cluster", default="15 main")
    parser.add_argument("--db-down-s", type=float, default=5.0,
                        help="seconds PostgreSQL stays stopped")  # fmt: skip
    parser.add_argument("--grace-s", type=float, default=GRACE_S,
                        help="seconds after a fault ends still counted inside it")  # fmt: skip
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="keep the replicas' logs here (default: deleted)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    args = parser.parse_args()
    # The default models, as `make serve` trains them when the store has none.
    subprocess.run([sys.executable, "-m", "train.cli", "train", "--if-missing"], cwd=ROOT,
                   check=True)  # fmt: skip
    engine = sa.create_engine(args.database_url, pool_pre_ping=True)
    from ledger.migrate import drop_all

    drop_all(engine)
    servers: dict[str, Server] = {}
    with tempfile.TemporaryDirectory() as tmp:
        logs = args.log_dir or Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        try:
            for name in ("a", "b"):
                env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", "TF_CPP_MIN_LOG_LEVEL": "2",
                       "YIELD_ENSEMBLE_DATABASE_URL": args.database_url,
                       "YIELD_ENSEMBLE_DATA_DIR": f"{tmp}/{name}",
                       "YIELD_ENSEMBLE_API_KEYS": KEY}  # fmt: skip
                servers[name] = serve("service:YieldEnsemble", env, logs / f"{name}.log")
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
    result = summary(out, logged, args)
    brief = {k: v for k, v in result.items() if k != "failures"}
    print(json.dumps(brief, indent=2))
    for f in result["failures"]:
        print(f"{f['t']:8.1f} s  {f['window']:8}  {f['replica']}  {f['route']:8} {f['status']}  "
              f"{f['error'][:120]}")  # fmt: skip
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
