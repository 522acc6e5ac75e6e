"""Dashboard read times on a filled log, against the cheapest read of the same rows.

    python -m bench.dashboard [--wafers 200] [--dies 2000] [--database-url URL] [--out DIR]

Fills a fresh log (SQLite in a temporary directory, or the given database, emptied
first) with ``wafers`` wafers of ``dies`` dies in 10 lots, a tenth of the wafers sent
twice and a fifth of the dies labelled, then times each ``ledger.dashboard`` read
(median of 5) beside ``baseline``: one GROUP BY over the same rows without counting
each die once, the least any per-wafer read must do. Writes dashboard.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ledger import dashboard
from ledger.migrate import drop_all, upgrade
from ledger.tables import outcomes, predictions

REPEATS = 5


def fill(engine: sa.Engine, wafers: int, dies: int) -> int:
    """The log's rows; returns how many predictions were written."""
    side = max(1, int(dies**0.5))
    written = 0
    with engine.begin() as conn:
        for w in range(wafers):
            sends = 2 if w % 10 == 0 else 1
            for send in range(sends):
                ts = 1_000.0 + w * 10 + send
                rows = [
                    {
                        "request_id": f"W{w}.{send}.{d}", "ts": ts, "arm": "ensemble",
                        "device_id": f"W{w}-{d}", "wafer_id": f"W{w}", "lot_id": f"L{w % 10}",
                        "die_x": d % side, "die_y": d // side, "features": "[]",
                        "prediction": "pass" if (d * 7 + send) % 10 else "fail",
                        "probability": 0.9, "cached": False, "degraded": False,
                        "latency_ms": 1.0, "model_versions": "{}", "votes": "{}",
                    }
                    for d in range(dies)
                ]  # fmt: skip
                conn.execute(predictions.insert(), rows)
                written += len(rows)
            truth = [
                {"request_id": f"W{w}.0.{d}", "actual": "pass" if d % 9 else "fail",
                 "received_at": 2_000.0}
                for d in range(0, dies, 5)
            ]  # fmt: skip
            conn.execute(outcomes.insert(), truth)
    return written


def baseline(engine: sa.Engine) -> Any:
    """Per wafer, every prediction counted: the GROUP BY the reads build on."""
    p = predictions.c
    q = (
        sa.select(p.wafer_id, sa.func.count(), sa.func.count(outcomes.c.actual))
        .select_from(predictions.outerjoin(outcomes, outcomes.c.request_id == p.request_id))
        .group_by(p.wafer_id)
    )
    with engine.connect() as conn:
        return conn.execute(q).all()


def median_ms(read: Callable[[], Any]) -> float:
    """``read``'s median wall time over ``REPEATS`` calls, milliseconds."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        read()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def run(engine: sa.Engine, wafers: int, dies: int) -> dict[str, Any]:
    drop_all(engine)
    upgrade(engine)
    written = fill(engine, wafers, dies)
    reads: dict[str, Callable[[], Any]] = {
        "baseline: every prediction, per wafer": lambda: baseline(engine),
        "/dashboard/wafers (page of 100)": lambda: dashboard.groups(
            engine, "wafer_id", None, None, None, 100, 0
        ),
        "/dashboard/lots": lambda: dashboard.groups(engine, "lot_id", None, None, None, 100, 0),
        "/dashboard/wafers/W0 (sent twice)": lambda: dashboard.wafer(engine, "W0", None, None),
        "/dashboard/wafers/W0/map": lambda: dashboard.die_map(
            engine, "W0", None, None, dashboard.MAX_LIMIT, 0
        ),
    }
    timings = {name: median_ms(read) for name, read in reads.items()}
    twice = dashboard.wafer(engine, "W0", None, None) or {}
    return {
        "database": engine.dialect.name,
        "wafers": wafers,
        "dies_per_wafer": dies,
        "predictions": written,
        "median_ms": timings,
        "ratio_to_baseline": {
            name: ms / timings["baseline: every prediction, per wafer"]
            for name, ms in timings.items()
        },
        "wafer_sent_twice": {k: twice.get(k) for k in ("wafer_id", "dies", "predictions")},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--wafers", type=int, default=200)
    parser.add_argument("--dies", type=int, default=2000)
    parser.add_argument("--database-url", help="default: SQLite in a temporary directory")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = sa.create_engine(args.database_url or f"sqlite:///{tmp}/predictions.db")
        try:
            result = run(engine, args.wafers, args.dies)
        finally:
            engine.dispose()
    print(f"{result['database']}: {result['predictions']:,} predictions, "
          f"{result['wafers']} wafers of {result['dies_per_wafer']} dies")  # fmt: skip
    for name, ms in result["median_ms"].items():
        print(f"  {name:<40} {ms:>9.1f} ms  {result['ratio_to_baseline'][name]:>6.2f}x")
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"dashboard-{result['database']}.json"
    (args.out / name).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
