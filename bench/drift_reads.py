"""Drift read times on a filled log, against the cheapest read of the same rows.

    python -m bench.drift_reads [--wafers 200] [--dies 1000] [--database-url URL] [--label L]

Fills a fresh log (SQLite in a temporary directory, or the given database, emptied
first) with ``wafers`` wafers of ``dies`` synthetic dies (``train.synthetic``, their six
features as the log stores them) in 10 lots, a fifth of the dies labelled, fits a
reference on other synthetic rows, then times each drift read (``ledger.drift``) and the
A/B report with and without its drift section (``ledger.report_drift``), median of 5,
beside ``baseline``: one GROUP BY per lot over the same rows that reads no feature, the
least a per-lot read must do. Writes bench/results/drift-reads-<database>[-label].json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from bench.dashboard import median_ms
from ensemble.arms import Arm, build_arms
from ensemble.schema import DEFAULT_FEATURES
from ledger import drift, report_drift
from ledger.migrate import drop_all, upgrade
from ledger.predlog import PredictionLog
from ledger.tables import outcomes, predictions
from train.reference import fit_reference
from train.synthetic import generate

NAMES = tuple(DEFAULT_FEATURES)
ARMS = build_arms([Arm("challenger", "xgboost", 0.1)], ["random_forest", "xgboost", "keras"])


def reference() -> Any:
    data = generate(8000, seed=3)
    x = data[list(NAMES)].to_numpy(np.float32)
    idx = np.random.default_rng(3).permutation(len(x))
    train, held = idx[:6400], idx[6400:]
    return fit_reference(NAMES, x[train], x[held], data["wafer_id"].to_numpy()[train])


def fill(engine: sa.Engine, wafers: int, dies: int) -> int:
    """The log's rows (features drawn from 20,000 synthetic dies); how many were written."""
    pool = generate(20_000, seed=5)[list(NAMES)].to_numpy(np.float64)
    rng = np.random.default_rng(1)
    side = max(1, int(dies**0.5))
    with engine.begin() as conn:
        for w in range(wafers):
            rows = pool[rng.integers(0, len(pool), dies)].tolist()
            conn.execute(predictions.insert(), [
                {"request_id": f"W{w}.{d}", "ts": 1_000.0 + w, "arm": "ensemble",
                 "device_id": f"W{w}-{d}", "wafer_id": f"W{w}", "lot_id": f"L{w % 10}",
                 "die_x": d % side, "die_y": d // side, "features": json.dumps(r),
                 "prediction": "pass", "probability": 0.9, "cached": False, "degraded": False,
                 "latency_ms": 1.0, "model_versions": "{}", "votes": '{"xgboost": 0.9}'}
                for d, r in enumerate(rows)
            ])  # fmt: skip
            conn.execute(outcomes.insert(), [
                {"request_id": f"W{w}.{d}", "actual": "pass", "received_at": 2_000.0}
                for d in range(0, dies, 5)
            ])  # fmt: skip
    return wafers * dies


def baseline(engine: sa.Engine) -> Any:
    """Per lot, every prediction counted, no feature read."""
    p = predictions.c
    q = sa.select(p.lot_id, sa.func.count(), sa.func.count(sa.distinct(p.wafer_id)))
    with engine.connect() as conn:
        return conn.execute(q.group_by(p.lot_id)).all()


def run(url: str, wafers: int, dies: int) -> dict[str, Any]:
    engine = sa.create_engine(url)
    drop_all(engine)
    upgrade(engine)
    written = fill(engine, wafers, dies)
    engine.dispose()
    ref = reference()
    log = PredictionLog(url)
    e = log.engine
    reads: dict[str, Callable[[], Any]] = {
        "baseline: every prediction, per lot": lambda: baseline(e),
        "/dashboard/drift/lots": lambda: drift.groups(e, ref, "lot_id", None, None),
        "/dashboard/drift/lots/L0": lambda: drift.one(e, ref, "lot_id", "L0", None, None),
        "/dashboard/drift/timeline": lambda: drift.timeline(e, ref, None, None, 3600),
        "the window and every lot (drift.by_lot)": lambda: drift.by_lot(e, ref, None, None),
        "the report's drift section": lambda: report_drift.section(e, ref, None, None),
        "/ab/report without drift": lambda: log.report(ARMS),
        "/ab/report with drift": lambda: log.report(ARMS, reference=ref),
    }
    try:
        timings = {name: median_ms(read) for name, read in reads.items()}
    finally:
        log.close()
    base = timings["baseline: every prediction, per lot"]
    return {
        "database": e.dialect.name,
        "wafers": wafers,
        "dies_per_wafer": dies,
        "lots": 10,
        "predictions": written,
        "median_ms": timings,
        "ratio_to_baseline": {name: ms / base for name, ms in timings.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drift_reads", description=__doc__)
    parser.add_argument("--wafers", type=int, default=200)
    parser.add_argument("--dies", type=int, default=1000)
    parser.add_argument("--database-url", help="default: SQLite in a temporary directory")
    parser.add_argument("--label", help="appended to the result's file name")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.database_url or f"sqlite:///{tmp}/predictions.db", args.wafers, args.dies)
    print(f"{result['database']}: {result['predictions']:,} predictions, {result['wafers']} "
          f"wafers of {result['dies_per_wafer']} dies in 10 lots")  # fmt: skip
    for name, ms in result["median_ms"].items():
        print(f"  {name:<40} {ms:>9.1f} ms  {result['ratio_to_baseline'][name]:>6.2f}x")
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"drift-reads-{result['database']}" + (f"-{args.label}" if args.label else "")
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
