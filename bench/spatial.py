"""Derived spatial features: their cost on a 10,000-die wafer, and whether they help.

    python -m bench.spatial speed [--repeat 21]
    python -m bench.spatial compare [--n-devices 40000] [--tiny]
    python -m bench.spatial stdf [--n-devices 40000] [--tiny]

``speed``: ``ensemble.spatial.derive`` (radial, nnr and zscore of 5 tests, prior) on one
wafer of 9,997 dies (a disc of radius 56), pinned to one core, median of ``--repeat``;
beside it the plain ``np.median`` of the same columns (a floor). Target: 20 ms.

``compare``: the same ensemble with and without the derived features, trained on the
same wafers and judged on the same held-out whole wafers (``train.spatial.compare``), on
the spatial synthetic data and on the default (old) synthetic data. Writes
``bench/results/spatial-compare.json`` and ``.txt``.

``stdf``: the same comparison on the spatial synthetic data written as tester files (a sort
file: the five measured columns as PTRs, PART_FLG from ``sort_fail``, X/Y, one WIR per
wafer; a final-test file: PART_FLG from ``passed``) and read back through ``train --stdf
SORT --outcomes FINAL --spatial ...`` (``train.stdf_cli.dataset``). Writes
``bench/results/spatial-stdf-compare.json`` and ``.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from ensemble.spatial import FEATURES, Geometry, Spec, derive
from train.synthetic import _wafer_grid

TARGET_MS = 20.0
OUT = Path(__file__).parent / "results"


def _wafer(radius: int = 56) -> tuple[Spec, np.ndarray, np.ndarray, list[Any]]:
    grid = _wafer_grid(radius)
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(len(grid), 6)).astype(np.float32)
    rows[:, 5] = rng.random(len(grid)) < 0.1
    raw = ("a", "b", "c", "d", "e", "sort_fail")
    spec = Spec(tuple(FEATURES), raw, raw[:5], "sort_fail", Geometry.of(grid[:, 0], grid[:, 1]))
    return spec, rows, grid, [("L1", "W1")] * len(grid)


def speed(repeat: int) -> dict[str, Any]:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    spec, rows, grid, keys = _wafer()
    times, floor = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        out = derive(spec, rows, grid, keys)
        times.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        np.median(rows, axis=0)
        floor.append((time.perf_counter() - start) * 1000)
    result = {
        "dies": len(rows), "derived_columns": out.shape[1] - rows.shape[1],
        "derive_ms_median": statistics.median(times), "np_median_ms": statistics.median(floor),
        "target_ms": TARGET_MS, "repeat": repeat,
    }  # fmt: skip
    print(
        f"derive: {result['dies']} dies, {result['derived_columns']} derived columns: "
        f"{result['derive_ms_median']:.2f} ms median of {repeat} (target {TARGET_MS:.0f} ms; "
        f"np.median of the raw columns alone {result['np_median_ms']:.2f} ms)"
    )
    return result


def compare(n_devices: int, tiny: bool) -> dict[str, Any]:
    from ensemble.combiners import Objective
    from ensemble.schema import DEFAULT_FEATURES
    from train.fit import TrainConfig, fit
    from train.spatial import compare as run
    from train.spatial import format_comparison, spatial_dataset
    from train.synthetic import SPATIAL, SPATIAL_FEATURES, generate

    config = TrainConfig.tiny() if tiny else TrainConfig()
    objective = Objective()
    out: dict[str, Any] = {"n_devices": n_devices, "tiny": tiny, "data": {}}
    text = []
    for name, truth, raw, prior, features in (
        ("spatial", SPATIAL, SPATIAL_FEATURES, "sort_fail", tuple(FEATURES)),
        ("old", None, DEFAULT_FEATURES, None, ("radial", "nnr", "zscore")),
    ):
        frame = generate(n_devices=n_devices, seed=7, truth=truth)
        data = spatial_dataset(frame, "passed", list(raw), features, None, prior, name)
        trained, test_idx = fit(data, config, lambda _: None, objective, "majority")
        result = run(data, trained, test_idx, config, objective, "majority", lambda _: None)
        out["data"][name] = {"features": list(features), **result}
        text.append(f"{name} synthetic data ({n_devices} dies), {','.join(features)}:")
        text.append(format_comparison(result))
        print(text[-2], text[-1], sep="\n", flush=True)
    return _kept("spatial-compare", out, text, tiny)


def _tester_files(n_devices: int, folder: Path) -> tuple[Path, Path]:
    """The spatial synthetic data as a sort file and a later insertion's final-test file."""
    from tests.stdf_writer import StdfWriter
    from train.synthetic import SPATIAL, SPATIAL_FEATURES, generate

    frame = generate(n_devices=n_devices, seed=7, truth=SPATIAL)
    measured = [c for c in SPATIAL_FEATURES if c != "sort_fail"]
    sort, final = StdfWriter(">").far().mir("SYN"), StdfWriter(">").far().mir("SYN")
    for wafer, dies in frame.groupby("wafer_id", sort=False):
        sort.wir(str(wafer))
        final.wir(str(wafer))
        values = dies[measured].to_numpy(dtype=np.float32)
        for i, die in enumerate(dies.itertuples(index=False)):
            sort.pir()
            for j, name in enumerate(measured):
                sort.ptr(100 + j, name, float(values[i, j]))
            x, y = int(die.die_x), int(die.die_y)
            sort.prr(str(die.device_id), x, y, failed=bool(die.sort_fail >= 0.5))
            final.pir().prr(str(die.device_id), x, y, failed=not die.passed)
        sort.wrr()
        final.wrr()
    paths = folder / "sort.stdf", folder / "final.stdf"
    for path, writer in zip(paths, (sort, final), strict=True):
        path.write_bytes(bytes(writer.mrr()))
    return paths


def compare_stdf(n_devices: int, tiny: bool) -> dict[str, Any]:
    import tempfile
    from argparse import Namespace

    from ensemble.combiners import Objective
    from train.fit import TrainConfig, fit
    from train.spatial import compare as run
    from train.spatial import format_comparison
    from train.stdf_cli import dataset

    config = TrainConfig.tiny() if tiny else TrainConfig()
    out: dict[str, Any] = {"n_devices": n_devices, "tiny": tiny, "data": {}}
    text = []
    with tempfile.TemporaryDirectory() as folder:
        sort, final = _tester_files(n_devices, Path(folder))
        for features in ("radial,nnr,zscore,prior", "radial,nnr,zscore"):
            args = Namespace(
                stdf=[str(sort)], outcomes=[str(final)], label=None, good_bins=None, tests=None,
                only_complete_tests=False, empty_indicators=False, spatial=features,
                spatial_tests=None, prior_fail=None, seed=7,
            )  # fmt: skip
            data = dataset(args)
            trained, test_idx = fit(data, config, lambda _: None, Objective(), "majority")
            result = run(data, trained, test_idx, config, Objective(), "majority", lambda _: None)
            out["data"][features] = result
            text.append(f"tester files ({n_devices} dies, final-test label), {features}:")
            text.append(format_comparison(result))
            print(text[-2], text[-1], sep="\n", flush=True)
    return _kept("spatial-stdf-compare", out, text, tiny)


def _kept(name: str, out: dict[str, Any], text: list[str], tiny: bool) -> dict[str, Any]:
    """``out`` and its printed ``text`` written to bench/results/``name``(-tiny).json/.txt."""
    suffix = "-tiny" if tiny else ""
    (OUT / f"{name}{suffix}.json").write_text(json.dumps(out, indent=1))
    (OUT / f"{name}{suffix}.txt").write_text("\n".join(text) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--repeat", type=int, default=21)
    c = sub.add_parser("compare")
    c.add_argument("--n-devices", type=int, default=40_000)
    c.add_argument("--tiny", action="store_true")
    t = sub.add_parser("stdf")
    t.add_argument("--n-devices", type=int, default=40_000)
    t.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    if args.what == "speed":
        result = speed(args.repeat)
        (OUT / "spatial-speed.json").write_text(json.dumps(result, indent=1))
    elif args.what == "stdf":
        compare_stdf(args.n_devices, args.tiny)
    else:
        compare(args.n_devices, args.tiny)


if __name__ == "__main__":
    main()
