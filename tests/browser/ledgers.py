"""Prediction logs for the report's page: real SQLite ledgers of N labelled dies."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ledger.predlog import PredictionLog, Served

VERSIONS = {"random_forest": "rf:1", "xgboost": "xgb:1", "keras": "nn:1"}
#: One wafer's grid side: dies per wafer = SIDE * SIDE.
SIDE = 40


def labelled_ledger(path: Path, labelled: int, seed: int = 3) -> str:
    """A SQLite prediction log at ``path`` with ``labelled`` dies predicted and labelled
    over 6 hours: 90% on the ensemble arm, 10% on the xgboost challenger, in wafers of
    SIDE x SIDE dies with positions; accuracy about 96% and members agreeing about 97%.
    Returns its URL."""
    url = f"sqlite:///{path}"
    rng = np.random.default_rng(seed)
    log = PredictionLog(url, flush_interval_s=0.05)
    t0, per_wafer = 1_795_000_000.0, SIDE * SIDE
    outcomes = []
    for start in range(0, labelled, per_wafer):
        n = min(per_wafer, labelled - start)
        wafer = f"W{start // per_wafer:03d}"
        actual = rng.random(n) < 0.9
        right = rng.random(n) < 0.96
        predicted = np.where(right, actual, ~actual)
        results, rids, ids = [], [], []
        for i in range(n):
            k = start + i
            arm = "challenger" if k % 10 == 9 else "ensemble"
            p = 0.8 if predicted[i] else 0.2
            votes = {m: (p if rng.random() < 0.985 else 1 - p) for m in VERSIONS}
            if arm == "challenger":
                votes = {"xgboost": p}
            results.append({"prediction": "pass" if predicted[i] else "fail", "probability": p,
                            "votes": votes, "arm": arm, "cached": False, "degraded": False,
                            "missing_members": []})  # fmt: skip
            rids.append(f"req-{k:06d}")
            ids.append({"device_id": f"D{k:06d}", "wafer_id": wafer, "lot_id": "LOT1"})
            outcomes.append(("request_id", rids[-1], "pass" if actual[i] else "fail"))
        ts = t0 + 6 * 3600 * start / max(labelled, 1)
        dies = [(i % SIDE, i // SIDE) for i in range(n)]
        rows = rng.normal(size=(n, 6)).astype(np.float32)
        log.record(Served(ts, 3.0, rids, ids, rows, results, VERSIONS, dies=dies))
    assert log.flush(60)
    log.add_outcomes(outcomes, sent_by="line-tester")
    if len(outcomes) > 1:  # one replaced outcome, for the ground-truth section
        log.add_outcomes([(outcomes[0][0], outcomes[0][1], "fail" if outcomes[0][2] == "pass"
                           else "pass")], sent_by="re-test")  # fmt: skip
    assert log.close()
    return url
