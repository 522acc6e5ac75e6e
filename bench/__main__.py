"""yield-ensemble against two baselines, side by side in one run on one machine.

    python -m bench [--requests 1000] [--duration 30] [--systems naive,fair,yield-ensemble]

Every ratio is against ``fair``, the plain composition a competent user writes
(``bench/baselines/fair.py``); ``naive`` (one service, the libraries' default calls)
is an extra row.

Trains the default models into the BentoML store if it has none (or they lack
the runtime choice tables), then for each system: starts `bentoml serve` on a
free port (cold start to /readyz), sends sequential single-row requests from
this process, runs `bench.load` in its own process at 16 and 64 concurrent
clients, times a 10,000-device batch, and reads the RSS/PSS of every serving
process. Writes bench/results/latest.json and latest.md. Not part of the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

from tests.serving import serve
from train.synthetic import feature_rows

ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = {
    "naive": "bench.baselines.naive:Naive",
    "fair": "bench.baselines.fair:Entry",
    "yield-ensemble": "service:YieldEnsemble",
}
CONCURRENCY = (16, 64)


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
        cmd = proc.cmdline()
        name = cmd[cmd.index("--service-name") + 1] if "--service-name" in cmd else "bentoml serve"
        processes.append({"process": name, "rss_mb": info.rss / 2**20})
    return {"rss_mb": rss / 2**20, "pss_mb": pss / 2**20, "processes": processes}  # type: ignore[dict-item]


def _load(url: str, concurrency: int, duration: float) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.load",
            "--url",
            url,
            "--concurrency",
            str(concurrency),
            "--duration",
            str(duration),
            "--seed",
            str(1000 + concurrency),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def measure(
    system: str, target: str, n_requests: int, duration: float, log: Path, data_dir: Path
) -> dict[str, Any]:
    env = {
        **os.environ,
        "BENTOML_DO_NOT_TRACK": "true",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "YIELD_ENSEMBLE_DATA_DIR": str(data_dir / system),
    }
    server = serve(target, env, log)
    proc, url = server.proc, server.url
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            cold_start = server.ready_after_s
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
            if system == "yield-ensemble":
                for _ in range(500):  # the same row again: a cache hit after the first
                    t0 = time.perf_counter()
                    r = http.post("/predict", json={"features": rows[0]})
                    hits.append((time.perf_counter() - t0) * 1000)
                    errors += r.status_code != 200
            load = [_load(url, c, duration) for c in CONCURRENCY]
            # Rows never sent before: every device of every batch is a cache miss.
            fresh = feature_rows(200_000, seed=77)
            batch_ms = []
            for k in range(10):
                devices = [{"features": r} for r in fresh[k * 10_000 : (k + 1) * 10_000]]
                body = json.dumps({"devices": devices}).encode()
                t0 = time.perf_counter()
                r = http.post(
                    "/predict_batch", content=body, headers={"Content-Type": "application/json"}
                )
                batch_ms.append((time.perf_counter() - t0) * 1000)
                errors += r.status_code != 200
            columns_ms, members = _columns(system, http, fresh[100_000:])
            errors += columns_ms is None
        memory = _memory(psutil.Process(proc.pid))
    finally:
        server.stop()
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
            "median_ms": statistics.median(hits) if hits else None,
            "p99_ms": _percentile(hits, 99) if hits else None,
        },
        "load": load,
        "batch_10000": {"runs": 10, "median_ms": statistics.median(batch_ms)},
        "wafer_10000_columns": {
            "runs": 10,
            "median_ms": statistics.median(columns_ms) if columns_ms else None,
            "members_mean_call_ms": members,
        },
        "memory": memory,
    }


#: The columnar endpoint of each system, and its body for a wafer of ``rows``.
COLUMNAR = {"yield-ensemble": "/predict_wafer", "fair": "/predict_columns"}
#: The system every ratio is against.
BASELINE = "fair"


def _member_seconds(http: httpx.Client) -> dict[str, tuple[float, float]]:
    """Per member (sum, count) of the entry's member-call histogram, from /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, tuple[float, float]] = {}
    for family in text_string_to_metric_families(http.get("/metrics").text):
        if family.name != "yield_ensemble_member_call_duration_seconds":
            continue
        for sample in family.samples:
            member = sample.labels.get("member", "")
            total, count = out.get(member, (0.0, 0.0))
            if sample.name.endswith("_sum"):
                total = sample.value
            elif sample.name.endswith("_count"):
                count = sample.value
            out[member] = (total, count)
    return out


def _columns(
    system: str, http: httpx.Client, fresh: list[list[float]]
) -> tuple[list[float] | None, dict[str, float] | None]:
    """Ten 10,000-die wafers as one matrix each (cache misses): times, members' mean call."""
    path = COLUMNAR.get(system)
    if path is None:
        return [], None
    before = _member_seconds(http) if system == "yield-ensemble" else {}
    times = []
    for k in range(10):
        rows = fresh[k * 10_000 : (k + 1) * 10_000]
        body = json.dumps({"features": rows}).encode()
        t0 = time.perf_counter()
        r = http.post(path, content=body, headers={"Content-Type": "application/json"})
        times.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            return None, None
    if not before:
        return times, None
    after = _member_seconds(http)
    members = {
        m: 1000
        * (after[m][0] - before.get(m, (0.0, 0.0))[0])
        / max(after[m][1] - before.get(m, (0.0, 0.0))[1], 1)
        for m in after
    }
    return times, members


def _ms(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f} ms"


def _table(results: list[dict[str, Any]]) -> str:
    head = ["system", "cold start", "sequential median / p99"]
    head += [f"{c} clients: req/s, median / p99, errors, client CPU" for c in CONCURRENCY]
    head += ["10k records (median of 10)", "10k columns (median of 10)"]
    head += ["cache hit median / p99", "RSS / PSS, all processes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [
            r["system"],
            f"{r['cold_start_s']:.1f} s",
            f"{_ms(r['sequential']['median_ms'])} / {_ms(r['sequential']['p99_ms'])}",
        ]
        for run in r["load"]:
            cells.append(
                f"{run['requests_per_s']:.0f}, "
                f"{_ms(run['median_ms'], 1)} / {_ms(run['p99_ms'], 1)}, "
                f"{run['errors']}, {100 * run['client_cpu_share_of_one_core']:.0f}%"
            )
        cells += [
            _ms(r["batch_10000"]["median_ms"], 0),
            _ms(r["wafer_10000_columns"]["median_ms"], 0),
            f"{_ms(r['cache_hit']['median_ms'])} / {_ms(r['cache_hit']['p99_ms'])}",
            f"{r['memory']['rss_mb']:.0f} / {r['memory']['pss_mb']:.0f} MB",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ratios(results: list[dict[str, Any]]) -> str:
    """Each system's figures over the fair baseline's, in this run (lower is better but for
    throughput), with the targets of the wafer path."""
    by = {r["system"]: r for r in results}
    if BASELINE not in by:
        return ""
    base = by[BASELINE]

    def figures(r: dict[str, Any]) -> dict[str, float | None]:
        load = {run["concurrency"]: run for run in r["load"]}
        return {
            "sequential median": r["sequential"]["median_ms"],
            **{f"{c} clients req/s": load[c]["requests_per_s"] for c in CONCURRENCY},
            **{f"{c} clients p99": load[c]["p99_ms"] for c in CONCURRENCY},
            "10k records": r["batch_10000"]["median_ms"],
            "10k columns": r["wafer_10000_columns"]["median_ms"],
            "RSS": r["memory"]["rss_mb"],
        }

    theirs = figures(base)
    head = ["system", *theirs]
    lines = [f"ratios against {BASELINE} (same run)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]  # fmt: skip
    for r in results:
        if r["system"] == BASELINE:
            continue
        ours = figures(r)
        cells = [
            f"{ours[k] / theirs[k]:.2f}x" if ours[k] and theirs[k] else "-"  # type: ignore[operator]
            for k in theirs
        ]
        lines.append("| " + " | ".join([r["system"], *cells]) + " |")
    if "yield-ensemble" in by:
        us = by["yield-ensemble"]
        lines.append("")
        for label, key, target in (
            ("records", "batch_10000", 1.0),
            ("columns", "wafer_10000_columns", 0.5),
        ):
            mine, fair = us[key]["median_ms"], base[key]["median_ms"]
            if mine and fair:
                verdict = "met" if mine / fair <= target else "missed"
                lines.append(
                    f"10k {label}: yield-ensemble {mine:.0f} ms / {BASELINE} {fair:.0f} ms = "
                    f"{mine / fair:.2f}x (target <= {target}x: {verdict})"
                )
        lines += _target_lines(us, base)
        lines += _member_lines(us)
    return "\n".join(lines)


def _target_lines(us: dict[str, Any], base: dict[str, Any]) -> list[str]:
    """The single-row, cache and memory targets, in this run."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "missed"

    lines = []
    ours64 = next(run for run in us["load"] if run["concurrency"] == 64)
    fair64 = next(run for run in base["load"] if run["concurrency"] == 64)
    if fair64["requests_per_s"]:
        x = ours64["requests_per_s"] / fair64["requests_per_s"]
        lines.append(
            f"64 clients: {ours64['requests_per_s']:.0f} req/s = {x:.1f}x {BASELINE} "
            f"(target >= 10x: {verdict(x >= 10)}), p99 {ours64['p99_ms']:.0f} ms "
            f"(target <= 100 ms: {verdict(ours64['p99_ms'] <= 100)})"
        )
    hit, miss = us["cache_hit"]["median_ms"], us["sequential"]["median_ms"]
    if hit:
        lines.append(
            f"cache miss median {miss:.2f} ms = {miss / hit:.1f}x a hit's {hit:.2f} ms "
            f"(target <= 3x: {verdict(miss / hit <= 3)})"
        )
    memory = us["memory"]
    lines.append(
        f"RSS after the bench, all processes: {memory['rss_mb']:.0f} MB (target <= 600 MB: "
        f"{verdict(memory['rss_mb'] <= 600)}): "
        + ", ".join(f"{p['process']} {p['rss_mb']:.0f}" for p in memory["processes"])
    )
    return lines


def _member_lines(us: dict[str, Any]) -> list[str]:
    """Each member's mean call during the columnar wafers against its fastest runtime's own
    time on the same 10,000 rows, timed in this process after the servers stopped."""
    members = us["wafer_10000_columns"].get("members_mean_call_ms")
    own = us.get("runtimes_10000_ms")
    if not members or not own:
        return []
    lines = []
    for member, call in members.items():
        timings = own.get(member) or {}
        if not timings:
            continue
        runtime, fastest = min(timings.items(), key=lambda kv: kv[1])
        ratio = call / fastest
        each = ", ".join(f"{r} {t:.1f}" for r, t in timings.items())
        lines.append(
            f"{member}: mean call {call:.1f} ms during the wafers; fastest runtime {runtime} "
            f"{fastest:.1f} ms on 10,000 rows ({each}) = {ratio:.2f}x "
            f"(target <= 1.5x: {'met' if ratio <= 1.5 else 'missed'})"
        )
    return lines


def _runtimes_own_ms(fresh: list[list[float]]) -> dict[str, dict[str, float]]:
    """Per member, each runtime's own ms per call on one 10,000-row wafer, in this process
    (one thread, the stored model the members serve)."""
    from models.base import stored_model
    from models.families import families
    from train.runtimes import time_runtimes

    rows = np.asarray(fresh[:10_000], dtype=np.float32)
    out: dict[str, dict[str, float]] = {}
    for f in families():
        adapter, model = f.load_adapter(), stored_model(f.name, "latest")
        impls = {}
        for runtime, loader in getattr(adapter, "LOADERS", {}).items():
            try:
                impls[runtime] = loader(Path(model.path), model.info.metadata)
            except (FileNotFoundError, ImportError, OSError):
                continue
        timed = time_runtimes(impls, rows, (10_000,))
        out[f.name] = {runtime: t[0] for runtime, t in timed.items()}
    return out


def _models_ready() -> bool:
    """The latest models exist and carry the fast-runtime exports."""
    import bentoml
    from bentoml.exceptions import NotFound

    from models.families import families

    try:
        return all(
            "runtime_choice" in bentoml.models.get(f"{f.store_name}:latest").info.metadata
            for f in families()
        )
    except NotFound:
        return False


def _choices() -> dict[str, Any]:
    """The choice table each member serves with, from the store's metadata."""
    import bentoml

    from models.families import families

    return {
        f.name: bentoml.models.get(f"{f.store_name}:latest").info.metadata.get("runtime_choice")
        for f in families()
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per load run")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    if not _models_ready():
        subprocess.run([sys.executable, "-m", "train.cli", "train"], cwd=ROOT, check=True)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory() as data_dir:
        for name in args.systems.split(","):
            print(f"measuring {name} ...", flush=True)
            results.append(
                measure(
                    name,
                    SYSTEMS[name],
                    args.requests,
                    args.duration,
                    args.out / f"{name}.log",
                    Path(data_dir),
                )
            )
    if any(r["system"] == "yield-ensemble" for r in results):
        print("timing each runtime on a 10,000-row wafer in this process ...", flush=True)
        own = _runtimes_own_ms(feature_rows(110_000, seed=77)[100_000:])
        for r in results:
            if r["system"] == "yield-ensemble":
                r["runtimes_10000_ms"] = own
                r["runtime_choice"] = _choices()
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
    ratios = _ratios(results)
    (args.out / "latest.md").write_text(table + "\n\n" + ratios + "\n")
    print(table)
    print(ratios)
    return 0


if __name__ == "__main__":
    sys.exit(main())
