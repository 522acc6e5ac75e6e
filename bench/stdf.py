"""Reading a tester's file: decode + TestMap.rows on a 10,000-part x 100-PTR STDF V4 file.

    python -m bench.stdf [--parts 10000] [--tests 100] [--repeat 5] [--out bench/results]

Pinned to one core. Rows, medians of ``--repeat`` runs: the reader alone (stdf-convert's
tables of PIR/PRR/PTR/MIR/WIR, the floor), ``decode``, ``decode`` + ``TestMap.rows``, and
the same from the gzipped file. The target is 0.5 s for decode + rows of the raw file.
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

from stdf.decode import decode
from stdf.read import byte_order, tables
from stdf.testmap import TestMap
from tests.stdf_writer import StdfWriter

TARGET_S = 0.5
LIMIT = 1 << 31


def generate(parts: int, tests: int, seed: int = 0, order: str = ">") -> bytes:
    """A one-wafer file: each part a PIR, ``tests`` PTRs and a PRR, every result drawn anew.

    One part's records are written with the tests' writer, then tiled and their RESULT,
    PART_ID, X_COORD and Y_COORD bytes overwritten (numpy), so 1M records take a second.
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
    for j, (_, offset) in enumerate(o for o in block.offsets if o[0] == "PTR"):
        at = offset + 4 + 4 + 4  # header, TEST_NUM, HEAD/SITE/TEST_FLG/PARM_FLG
        values = rng.normal(1.0 + 0.01 * j, 0.05, parts).astype(dtype)
        tiled[:, at : at + 4] = values.view(np.uint8).reshape(parts, 4)
    prr = block.offset_of("PRR") + 4  # PART_ID: its length byte at 17, characters from 18
    ids = np.char.zfill(np.arange(1, parts + 1).astype(str), 6).astype("S6")
    tiled[:, prr + 18 : prr + 24] = np.frombuffer(ids.tobytes(), np.uint8).reshape(parts, 6)
    coord = np.dtype(f"{order}i2")
    for k, values in enumerate((np.arange(parts) % 100, np.arange(parts) // 100)):
        at = prr + 9 + 2 * k  # HEAD_NUM, SITE_NUM, PART_FLG, NUM_TEST, HARD_BIN, SOFT_BIN
        tiled[:, at : at + 2] = values.astype(coord).view(np.uint8).reshape(parts, 2)
    tail = StdfWriter(order).wrr().mrr()
    return bytes(head) + tiled.tobytes() + bytes(tail)


def _median(run: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=10_000)
    parser.add_argument("--tests", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    raw = generate(args.parts, args.tests)
    packed = gzip.compress(raw, compresslevel=6)
    parts = decode(raw, max_bytes=LIMIT)
    assert len(parts) == args.parts and len(parts.tests) == args.tests  # the file is as meant
    test_map = TestMap.choose(parts)
    order = byte_order(raw)
    rows = {
        "reader alone (stdf-convert tables)": lambda: tables(raw, order),
        "decode": lambda: decode(raw, max_bytes=LIMIT),
        "decode + TestMap.rows": lambda: test_map.rows(decode(raw, max_bytes=LIMIT)),
        "gzipped: decode + TestMap.rows": lambda: test_map.rows(decode(packed, max_bytes=LIMIT)),
    }
    medians = {name: _median(run, args.repeat) for name, run in rows.items()}
    floor = medians["reader alone (stdf-convert tables)"]
    print(f"{args.parts:,} parts x {args.tests} PTRs: {len(raw) / 1e6:.1f} MB raw, "
          f"{len(packed) / 1e6:.1f} MB gzipped; one core, median of {args.repeat}")  # fmt: skip
    for name, seconds in medians.items():
        print(f"  {name:<36} {seconds:6.3f} s  ({seconds / floor:.2f}x the reader)")
    goal = medians["decode + TestMap.rows"]
    print(f"target {TARGET_S} s for decode + rows: {'met' if goal <= TARGET_S else 'NOT met'} "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")  # fmt: skip
    result = {
        "parts": args.parts, "tests": args.tests, "raw_bytes": len(raw),
        "gzip_bytes": len(packed), "repeat": args.repeat, "cores": 1,
        "median_s": medians, "target_s": TARGET_S, "met": goal <= TARGET_S,
        "load_average_1min": os.getloadavg()[0],
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"stdf-{args.parts}x{args.tests}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
