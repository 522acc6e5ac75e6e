"""Members and combiners side by side, on held-out rows and on a process-shifted lot.

    python -m bench.shift [--n-devices 20000] [--seeds 7,8,9,10,11] [--escape-cost 1]
                          [--overkill-cost 1] [--tiny]

Trains as ``yield-ensemble train --combiner auto`` does (out-of-fold fitting of
calibrations, combiners and thresholds; nothing saved), then judges every member
alone, every combiner and the one ``auto`` chose on the held-out split and on a lot
of the same size made with ``train.synthetic.SHIFTED`` (another corner, hotter
insertions, scratches), which no model saw. The summary compares ``auto`` with the
best member, both the one cheapest out of fold (what a user would pick without
peeking) and the one cheapest on the rows judged (hindsight). Writes
bench/results/shift[-<escape>to<overkill>].json. Not part of the tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ensemble.combiners import Objective
from train.data import synthetic
from train.decide import decide_all, format_table, table
from train.fit import TrainConfig, fit
from train.synthetic import SHIFTED, generate

ROOT = Path(__file__).resolve().parents[1]


def _summary(run: dict[str, Any], split: str) -> dict[str, Any]:
    rows, members = run[split], run["members"]
    oof_best = run["best_member_out_of_fold"]
    hindsight = min(members, key=lambda m: rows[m]["cost"]["value"])
    pick = {"auto": run["chosen"], "best member (out of fold)": oof_best,
            "best member (hindsight)": hindsight}  # fmt: skip
    return {
        label: {
            "model": name,
            "accuracy": rows[name]["accuracy"]["value"],
            "cost": rows[name]["cost"]["value"],
            "fail_recall": rows[name]["fail_recall"]["value"],
            "overkill": rows[name]["overkill"]["value"],
        }
        for label, name in pick.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shift", description=__doc__)
    parser.add_argument("--n-devices", type=int, default=20_000)
    parser.add_argument("--seeds", default="7", help="comma-separated training seeds")
    parser.add_argument("--escape-cost", type=float, default=1.0)
    parser.add_argument("--overkill-cost", type=float, default=1.0)
    parser.add_argument("--tiny", action="store_true", help="tiny models (seconds)")
    args = parser.parse_args()
    objective = Objective(args.escape_cost, args.overkill_cost)
    out: dict[str, Any] = {
        "n_devices": args.n_devices,
        "objective": objective.to_dict(),
        "shift": SHIFTED.__dict__,
        "runs": [],
    }
    for seed in (int(s) for s in args.seeds.split(",")):
        data = synthetic(args.n_devices, seed)
        config = TrainConfig.tiny(seed) if args.tiny else TrainConfig(seed=seed)
        trained, test_idx = fit(data, config, lambda _: None, objective, combiner="auto")
        d = trained.decision
        lot = generate(len(test_idx), seed + 1000, shift=SHIFTED)
        x_lot = lot[list(data.schema.names)].to_numpy(dtype=np.float32)
        p_lot = {m: t.predict_proba(x_lot) for m, t in trained.models.items()}
        oof = d.tables["out_of_fold"]
        run: dict[str, Any] = {
            "seed": seed,
            "chosen": d.chosen,
            "members": list(d.singles),
            "best_member_out_of_fold": min(d.singles, key=lambda m: oof[m]["cost"]["value"]),
            "thresholds": {n: c.threshold for n, c in d.combiners.items()},
            "calibration": {m: s.calibration[m].kind for m, s in d.singles.items()},
            "out_of_fold": oof,
            "held_out": trained.held_out,
            "shifted": table(decide_all(d, p_lot), lot["passed"].to_numpy(), objective),
            "verdict": trained.verdict["sentence"],
        }
        run["summary"] = {s: _summary(run, s) for s in ("held_out", "shifted")}
        out["runs"].append(run)
        for split in ("held_out", "shifted"):
            print(f"\nseed {seed}, {split.replace('_', '-')} ({len(test_idx)} dies), "
                  f"auto chose {d.chosen}")  # fmt: skip
            print(format_table(run[split], d.chosen))
        print(run["verdict"])
    out["mean"] = {
        split: {
            label: {
                k: statistics.fmean(r["summary"][split][label][k] for r in out["runs"])
                for k in ("accuracy", "cost", "fail_recall", "overkill")
            }
            for label in out["runs"][0]["summary"][split]
        }
        for split in ("held_out", "shifted")
    }
    print(f"\nmean over seeds {args.seeds}, costs escape {objective.escape_cost:g} : "
          f"overkill {objective.overkill_cost:g}")  # fmt: skip
    for split, rows in out["mean"].items():
        for label, m in rows.items():
            print(f"{split:<9} {label:<28} accuracy {m['accuracy']:.4f}  cost {m['cost']:.4f}  "
                  f"fail recall {m['fail_recall']:.4f}  overkill {m['overkill']:.4f}")  # fmt: skip
    suffix = "" if objective == Objective() else f"-{args.escape_cost:g}to{args.overkill_cost:g}"
    target = ROOT / "bench" / "results" / f"shift{suffix}.json"
    target.write_text(json.dumps(out, indent=1))
    print(f"\nwrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
