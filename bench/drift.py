"""Drift detection on the synthetic data, and what the out-of-range flag costs a wafer.

    python -m bench.drift [--seeds 40] [--lots 5] [--lot-dies 4000] [--alpha 0.01]

Per seed: the default synthetic data (``train.synthetic``, 20,000 dies) split 80/20 as
training does, the reference fitted on the training rows (``train.reference``); then
``--lots`` new lots of unshifted wafers (new seeds: the same process, other wafers)
and one process-shifted lot (``train.synthetic.SHIFTED``, as ``bench/shift.py`` makes
it), each judged as the ledger's drift reads judge a lot (``ledger.drift_stats``).
Prints the false alarm rate (unshifted lots flagged) against alpha, how often the
shifted lot is flagged and which features it names first, and the share of lots over
PSI 0.25 (which alone ignores wafer-to-wafer variation).

Then the flag's cost: ``Pipeline.run`` of a 10,000-die ``/predict_wafer`` with instant
fake members (the cheapest a wafer gets, so the worst ratio), with ranges and without,
medians of ``--repeats``. Writes bench/results/drift.json. Not part of the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ensemble.schema import DEFAULT_FEATURES
from ledger.drift_stats import PSI_SIGNIFICANT, drift
from train.reference import fit_reference
from train.synthetic import SHIFTED, generate

ROOT = Path(__file__).resolve().parents[1]
NAMES = tuple(DEFAULT_FEATURES)
#: Features SHIFTED moves itself: supply, speed (frequency) and the test insertion.
SHIFTED_FEATURES = {"vdd_v", "freq_mhz", "temp_c"}


def _judge(reference: Any, frame: Any, alpha: float) -> dict[str, Any]:
    x = frame[list(NAMES)].to_numpy(np.float32)
    counts = [f.counts(x[:, j]) for j, f in enumerate(reference.features)]
    low = np.asarray([f.minimum for f in reference.features])
    high = np.asarray([f.maximum for f in reference.features])
    oor = int(((x < low) | (x > high)).any(axis=1).sum())
    return drift(reference, counts, len(x), frame["wafer_id"].nunique(), oor, alpha)


def detection(seeds: int, lots: int, lot_dies: int, alpha: float) -> dict[str, Any]:
    false_alarms, calm_over_psi, shifted_flagged, named_first, oor_calm = 0, 0, 0, 0, []
    firsts: dict[str, int] = {}
    for seed in range(7, 7 + seeds):
        data = generate(20_000, seed)
        x = data[list(NAMES)].to_numpy(np.float32)
        idx = np.random.default_rng(seed).permutation(len(x))
        train, held = idx[:16_000], idx[16_000:]
        reference = fit_reference(NAMES, x[train], x[held], data["wafer_id"].to_numpy()[train])
        for i in range(lots):
            calm = _judge(reference, generate(lot_dies, 100_000 + seed * 100 + i), alpha)
            false_alarms += calm["drifted"]
            calm_over_psi += calm["max_psi"] > PSI_SIGNIFICANT
            oor_calm.append(calm["out_of_range_share"])
        moved = _judge(reference, generate(lot_dies, seed + 1000, shift=SHIFTED), alpha)
        shifted_flagged += moved["drifted"]
        if moved["moved_most"]:
            first = moved["moved_most"][0]
            firsts[first] = firsts.get(first, 0) + 1
            named_first += first in SHIFTED_FEATURES
    n_calm = seeds * lots
    return {
        "seeds": seeds,
        "unshifted_lots": n_calm,
        "lot_dies": lot_dies,
        "alpha": alpha,
        "false_alarm_rate": false_alarms / n_calm,
        "unshifted_lots_over_psi_0.25": calm_over_psi / n_calm,
        "unshifted_out_of_range_share_median": statistics.median(oor_calm),
        "shifted_lots_flagged": shifted_flagged / seeds,
        "shifted_named_first_a_shifted_feature": named_first / seeds,
        "shifted_first_named": firsts,
    }


def flag_cost(repeats: int, schema: Any) -> dict[str, Any]:
    from ensemble.formats import WAFER
    from ensemble.schema import FeatureSchema
    from tests.unit.test_pipeline import _pipeline

    rows = generate(10_000, 5)[list(NAMES)].to_numpy(np.float64).tolist()
    ranged, ledger, _ = _pipeline(schema=schema, max_dies=len(rows))
    plain, _, _ = _pipeline(schema=FeatureSchema(DEFAULT_FEATURES), max_dies=len(rows))
    times: dict[str, list[float]] = {"with_flag": [], "without": []}
    for r in range(repeats):
        # Each run its own device ids: no answer comes from the cache.
        body = {"features": rows, "device_id": [f"r{r}-{i}" for i in range(len(rows))]}
        for name, pipeline in (("with_flag", ranged), ("without", plain)):
            start = time.perf_counter()
            asyncio.run(pipeline.run(WAFER, f"b{r}", body))
            times[name].append(time.perf_counter() - start)
    with_flag, without = (statistics.median(times[k]) for k in ("with_flag", "without"))
    # The flag alone (computed, then per die and summed as the answer and log do), timed
    # apart: the end-to-end medians above differ by more than it on a shared machine.
    import timeit

    from ensemble.drift import Ranges, out_of_range

    x = np.asarray(rows, dtype=np.float32)
    ranges = Ranges.of_schema(schema)

    def flag() -> None:
        flags = out_of_range(x, ranges)
        flags.per_die(), flags.summary()

    alone = min(timeit.repeat(flag, number=20, repeat=5)) / 20
    return {
        "flag_alone_s": alone,
        "flag_alone_share_of_wafer": alone / without,
        "dies": len(rows),
        "dies_flagged": len(ledger.served[-1].flags.dies),
        "repeats": repeats,
        "median_s_with_flag": with_flag,
        "median_s_without": without,
        "added": with_flag / without - 1,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drift", description=__doc__)
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--lots", type=int, default=5)
    parser.add_argument("--lot-dies", type=int, default=4000)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    found = detection(args.seeds, args.lots, args.lot_dies, args.alpha)
    print(
        f"{found['unshifted_lots']} unshifted lots of {args.lot_dies} dies over "
        f"{args.seeds} seeds: false alarm rate {found['false_alarm_rate']:.4f} "
        f"(alpha {args.alpha}); over PSI 0.25 alone {found['unshifted_lots_over_psi_0.25']:.3f}"
    )
    print(f"shifted lot flagged {found['shifted_lots_flagged']:.3f}, a shifted feature named "
          f"first {found['shifted_named_first_a_shifted_feature']:.3f}: "
          f"{found['shifted_first_named']}")  # fmt: skip
    from tests.unit.test_pipeline import RANGED
    from train.data import synthetic

    costs = {}
    # The default model's ranges (few dies out), and narrow ones flagging a third of them.
    for case, schema in (("training ranges", synthetic(20_000, 7).schema), ("narrow", RANGED)):
        cost = costs[case] = flag_cost(args.repeats, schema)
        print(f"10,000-die wafer through Pipeline.run (instant members), {case}, median of "
              f"{args.repeats}: {cost['median_s_with_flag'] * 1000:.1f} ms with the "
              f"out-of-range flag, {cost['median_s_without'] * 1000:.1f} ms without: "
              f"{cost['added']:+.1%} ({cost['dies_flagged']} dies flagged); the flag alone "
              f"{cost['flag_alone_s'] * 1000:.2f} ms, {cost['flag_alone_share_of_wafer']:.2%} "
              "of the wafer")  # fmt: skip
    target = ROOT / "bench" / "results" / "drift.json"
    target.write_text(json.dumps({"detection": found, "flag_cost": costs}, indent=1))
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
