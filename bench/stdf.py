"""Reading a tester's file: decode + TestMap.rows on a 10,000-part x 100-PTR STDF V4 file,
and with ``--serve`` the same file through ``/predict_stdf`` against ``/predict_wafer``.

    python -m bench.stdf [--parts 10000] [--tests 100] [--repeat 5] [--serve [--tiny]]
                         [--out bench/results]

Parse rows, pinned to one core, medians of ``--repeat`` runs taken in turn: the reader
alone (stdf-convert's tables of PIR/PRR/PTR/MIR/WIR, the floor), ``decode``, ``decode`` +
``TestMap.rows``, the same from the gzipped file, and the baseline: decode over pyarrow as
it was (``bench/baselines/stdf_pyarrow.py``). The target is 0.5 s for decode + rows of the
raw file. End to end (``bench/stdf_serve.py``): before pinning, on both cores.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.baselines.stdf_pyarrow import decode as decode_pyarrow
from stdf.decode import decode
from stdf.read import byte_order, tables
from stdf.testmap import TestMap
from tests.stdf_writer import StdfWriter

TARGET_S = 0.5
LIMIT = 1 << 31


def generate(
    parts: int, tests: int, seed: int = 0, order: str = ">", fail_share: float = 0.0
) -> bytes:
    """A one-wafer file: each part a PIR, ``tests`` PTRs and a PRR, every result drawn anew.

    One part's records are written with the tests' writer, then tiled and their RESULT,
    PART_ID, X_COORD and Y_COORD bytes overwritten (numpy), so 1M records take a second.
    With ``fail_share``, that share of parts, those with the highest sum of the first
    three results, fail (PART_FLG bit 3, hard bin 5): a label a model can learn.
    """
    head = StdfWriter(order).far().mir("BENCH").wir("W01")
    block = StdfWriter(order).pir()
    for j in range(tests):
        block.ptr(1000 + j, f"TEST_{j:03d} <> pin{j}", 0.0, units="V")
    block.prr("000000", 0, 0, n_tests=tests)
    one = np.frombuffer(bytes(block), np.uint8)
    tiled = np.tile(one, (parts, 1))
    rng = np.random.default_rng(seed)
    dtype = np.dtype(f"{order}f4")
    score = np.zeros(parts)
    for j, (_, offset) in enumerate(o for o in block.offsets if o[0] == "PTR"):
        at = offset + 4 + 4 + 4  # header, TEST_NUM, HEAD/SITE/TEST_FLG/PARM_FLG
        values = rng.normal(1.0 + 0.01 * j, 0.05, parts).astype(dtype)
        score += values if j < 3 else 0
        tiled[:, at : at + 4] = values.view(np.uint8).reshape(parts, 4)
    prr = block.offset_of("PRR") + 4  # PART_ID: its length byte at 17, characters from 18
    if fail_share:
        failed = score >= np.quantile(score, 1 - fail_share)
        tiled[failed, prr + 2] = 0x08  # PART_FLG: HEAD_NUM, SITE_NUM, then it
        hard_bin = np.array([5], np.dtype(f"{order}u2")).view(np.uint8)
        tiled[np.ix_(failed, [prr + 5, prr + 6])] = hard_bin  # after NUM_TEST
    ids = np.char.zfill(np.arange(1, parts + 1).astype(str), 6).astype("S6")
    tiled[:, prr + 18 : prr + 24] = np.frombuffer(ids.tobytes(), np.uint8).reshape(parts, 6)
    coord = np.dtype(f"{order}i2")
    for k, values in enumerate((np.arange(parts) % 100, np.arange(parts) // 100)):
        at = prr + 9 + 2 * k  # HEAD_NUM, SITE_NUM, PART_FLG, NUM_TEST, HARD_BIN, SOFT_BIN
        tiled[:, at : at + 2] = values.astype(coord).view(np.uint8).reshape(parts, 2)
    tail = StdfWriter(order).wrr().mrr()
    return bytes(head) + tiled.tobytes() + bytes(tail)


def _medians(rows: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Median seconds of each row, the rows run in turn ``repeat`` times (so a busy spell of
    the machine falls on all of them, not on one)."""
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(repeat):
        for name, run in rows.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=10_000)
    parser.add_argument("--tests", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--serve", action="store_true", help="also /predict_stdf end to end")
    parser.add_argument("--tiny", action="store_true", help="tiny models for --serve (quick)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    raw = generate(args.parts, args.tests)
    result: dict[str, Any] = {}
    if args.serve:  # on every core, before this process pins itself to one
        from bench.stdf_serve import end_to_end

        result["end_to_end"] = end_to_end(raw, args.parts, args.tests, args.repeat, args.tiny)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    packed = gzip.compress(raw, compresslevel=6)
    parts = decode(raw, max_bytes=LIMIT)
    assert len(parts) == args.parts and len(parts.tests) == args.tests  # the file is as meant
    baseline = decode_pyarrow(raw, max_bytes=LIMIT)
    assert baseline.tests == parts.tests and np.array_equal(baseline.values, parts.values)
    test_map = TestMap.choose(parts)
    order = byte_order(raw)
    rows = {
        "reader alone (stdf-convert tables)": lambda: tables(raw, order),
        "decode": lambda: decode(raw, max_bytes=LIMIT),
        "decode + TestMap.rows": lambda: test_map.rows(decode(raw, max_bytes=LIMIT)),
        "gzipped: decode + TestMap.rows": lambda: test_map.rows(decode(packed, max_bytes=LIMIT)),
        "baseline, over pyarrow: decode + TestMap.rows": lambda: test_map.rows(
            decode_pyarrow(raw, max_bytes=LIMIT)
        ),
    }
    medians = _medians(rows, args.repeat)
    floor = medians["reader alone (stdf-convert tables)"]
    print(f"{args.parts:,} parts x {args.tests} PTRs: {len(raw) / 1e6:.1f} MB raw, "
          f"{len(packed) / 1e6:.1f} MB gzipped; one core, median of {args.repeat}")  # fmt: skip
    for name, seconds in medians.items():
        print(f"  {name:<46} {seconds:6.3f} s  ({seconds / floor:.2f}x the reader)")
    goal = medians["decode + TestMap.rows"]
    against = goal / medians["baseline, over pyarrow: decode + TestMap.rows"]
    print(f"target {TARGET_S} s for decode + rows: {'met' if goal <= TARGET_S else 'NOT met'}; "
          f"{against:.2f}x the pyarrow baseline "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")  # fmt: skip
    result = {
        "parts": args.parts, "tests": args.tests, "raw_bytes": len(raw),
        "gzip_bytes": len(packed), "repeat": args.repeat, "cores": 1,
        "median_s": medians, "target_s": TARGET_S, "met": goal <= TARGET_S,
        "ratio_to_pyarrow_baseline": against, "load_average_1min": os.getloadavg()[0],
        **result,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"stdf-{args.parts}x{args.tests}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
