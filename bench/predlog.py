"""Prediction-log write throughput and the cost it adds to the request path.

    python -m bench.predlog [--rows 200000] [--out bench/results]

Feeds a real SQLite log (WAL, in a temporary directory) as the service does:
single-row requests and 1,000-device wafers, and reports rows/s until every
row is on disk, plus the median time ``record()`` takes on the request path.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ledger.predlog import PredictionLog, Served
from train.synthetic import feature_rows

VERSIONS = {
    "random_forest": "yield-random-forest:x",
    "xgboost": "yield-xgboost:x",
    "keras": "yield-keras:x",
}


def _requests(total: int, per_request: int) -> list[Served]:
    rows = np.asarray(feature_rows(min(total, 20_000), seed=1), dtype=np.float32)
    result = {
        "prediction": "pass",
        "probability": 0.93,
        "arm": "ensemble",
        "cached": False,
        "degraded": False,
        "votes": {"random_forest": 0.91, "xgboost": 0.95, "keras": 0.9},
    }
    out = []
    for start in range(0, total, per_request):
        n = min(per_request, total - start)
        idx = np.arange(start, start + n) % len(rows)
        out.append(
            Served(
                time.time(),
                4.2,
                [f"r{start + i}" for i in range(n)],
                [{"device_id": f"D{start + i}"} for i in range(n)],
                rows[idx],
                [result] * n,
                VERSIONS,
            )
        )
    return out


def run(total: int, per_request: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        log = PredictionLog(f"sqlite:///{tmp}/predictions.db")
        requests = _requests(total, per_request)
        record_us = []
        start = time.perf_counter()
        for served in requests:
            t = time.perf_counter()
            log.record(served)
            record_us.append((time.perf_counter() - t) * 1e6)
        log.flush()
        elapsed = time.perf_counter() - start
        size = Path(tmp, "predictions.db").stat().st_size
        log.close()
    return {
        "rows": total,
        "rows_per_request": per_request,
        "rows_per_s": total / elapsed,
        "record_median_us": statistics.median(record_us),
        "db_bytes_per_row": size / total,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    results = [run(args.rows // 4, 1), run(args.rows, 1000)]
    for r in results:
        print(
            f"{r['rows_per_request']:>5} rows/request: {r['rows_per_s']:>9,.0f} rows/s written, "
            f"record() median {r['record_median_us']:.1f} us, {r['db_bytes_per_row']:.0f} B/row"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "predlog.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
