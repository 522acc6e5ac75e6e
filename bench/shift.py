"""Members and combiners side by side, on held-out rows and on a process-shifted lot.

    python -m bench.shift [--n-devices 20000] [--seeds 7] [--tiny]

Trains every family on the synthetic data (as ``yield-ensemble train`` does, without
saving), then prints accuracy, fail recall (escapes caught) and overkill for each
member and each combiner on the held-out split and on a lot of the same size made
with ``train.synthetic.SHIFTED`` (another corner, hotter insertions, scratches).
Writes bench/results/shift.json. Not part of the tests.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ensemble.combiners import COMBINERS
from train.data import synthetic
from train.fit import TrainConfig, fit
from train.synthetic import SHIFTED, generate

ROOT = Path(__file__).resolve().parents[1]


def _scores(labels: np.ndarray, passed: np.ndarray) -> dict[str, float]:
    actual_fail, called_fail = labels == 0, ~passed
    return {
        "accuracy": float(np.mean(passed == labels.astype(bool))),
        "fail_recall": float(np.sum(actual_fail & called_fail) / max(actual_fail.sum(), 1)),
        "overkill": float(np.sum(~actual_fail & called_fail) / max((~actual_fail).sum(), 1)),
    }


def _table(p_pass: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, dict[str, float]]:
    rows = {m: _scores(labels, p >= 0.5) for m, p in p_pass.items()}
    for name, combiner in COMBINERS.items():
        passed, _ = combiner().combine(p_pass)
        rows[f"combiner:{name}"] = _scores(labels, passed)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shift", description=__doc__)
    parser.add_argument("--n-devices", type=int, default=20_000)
    parser.add_argument("--seeds", default="7", help="comma-separated training seeds")
    parser.add_argument("--tiny", action="store_true", help="tiny models (seconds)")
    args = parser.parse_args()
    out: dict[str, Any] = {"n_devices": args.n_devices, "shift": SHIFTED.__dict__, "runs": []}
    for seed in (int(s) for s in args.seeds.split(",")):
        data = synthetic(args.n_devices, seed)
        config = TrainConfig.tiny(seed) if args.tiny else TrainConfig(seed=seed)
        trained, test_idx = fit(data, config, progress=lambda _: None)
        lot = generate(len(test_idx), seed + 1000, shift=SHIFTED)
        x_lot = lot[list(data.schema.names)].to_numpy(dtype=np.float32)
        labels_lot = lot["passed"].to_numpy()
        p_lot = {m: t.predict_proba(x_lot) for m, t in trained.models.items()}
        run = {
            "seed": seed,
            "held_out": _table(trained.p_pass_test, data.labels[test_idx]),
            "shifted": _table(p_lot, labels_lot),
        }
        out["runs"].append(run)
        for split in ("held_out", "shifted"):
            print(f"\nseed {seed}, {split.replace('_', '-')} ({len(test_idx)} dies)")
            print(f"{'model':<20}{'accuracy':>10}{'fail recall':>13}{'overkill':>10}")
            for name, s in run[split].items():
                print(
                    f"{name:<20}{s['accuracy']:>10.4f}{s['fail_recall']:>13.4f}"
                    f"{s['overkill']:>10.4f}"
                )
    target = ROOT / "bench" / "results" / "shift.json"
    target.write_text(json.dumps(out, indent=2))
    print(f"\nwrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
