# ruff: noqa: E402
"""How tests/testdata/ledger-c709685.db was made: with the prediction log of release 0.1.0.

git worktree add /tmp/oldmain c709685
python tests/testdata/make_ledger_fixture.py /tmp/ledger.db   # then VACUUM into testdata/
"""

import sys

sys.path.insert(0, "/tmp/oldmain")
import ensemble.predlog as predlog
import numpy as np

assert predlog.__file__.startswith("/tmp/oldmain"), predlog.__file__
from ensemble.predlog import PredictionLog, Served

out = sys.argv[1]
log = PredictionLog(f"sqlite:///{out}", flush_interval_s=0.05)
versions = {
    "random_forest": "yield-random-forest:v1",
    "xgboost": "yield-xgboost:v1",
    "keras": "yield-keras:v1",
}
rng = np.random.default_rng(5)
t0 = 1795000000.0
for i in range(40):
    arm = "challenger" if i % 5 == 0 else "ensemble"
    rows = rng.normal(size=(1, 6)).astype(np.float32)
    if arm == "ensemble":
        votes = {
            "random_forest": 0.9 - i / 100,
            "xgboost": 0.2 + i / 100,
            "keras": 0.5 + (i % 3) / 10,
        }
        if i % 7 == 0:
            votes.pop("keras")
    else:
        votes = {"xgboost": 0.3 + i / 100}
    p = float(np.mean(list(votes.values())))
    result = {
        "prediction": "pass" if p >= 0.5 else "fail",
        "probability": p,
        "votes": votes,
        "arm": arm,
        "cached": i % 4 == 0,
        "degraded": "keras" not in votes and arm == "ensemble",
        "missing_members": [],
    }
    ids = {
        "device_id": f"D{i:03d}",
        "wafer_id": f"W{i // 10}",
        "lot_id": "LOT1" if i < 20 else None,
    }
    log.record(Served(t0 + i, 2.5 + i / 10, [f"req-{i:03d}"], [ids], rows, [result], versions))
assert log.flush(10)
log.add_outcomes(
    [("request_id", f"req-{i:03d}", "pass" if i % 3 else "fail") for i in range(0, 40, 2)]
)
log.add_outcomes([("device_id", "D004", "pass")])  # a replacement (4 % 3 != 0 was pass: unchanged)
log.add_outcomes([("device_id", "D006", "pass")])  # 6 % 3 == 0 was fail: replaced
assert log.close()
