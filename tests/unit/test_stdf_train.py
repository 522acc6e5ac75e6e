"""train/stdf.py: labels from files, the empty-cell leak check."""

from __future__ import annotations

import numpy as np

from stdf.decode import decode
from tests.stdf_writer import StdfWriter, wafer_file
from train import stdf


def test_labels_from_part_flag_good_bins_and_a_later_insertion() -> None:
    w = StdfWriter(">").far().mir("L").wir("W")
    w.pir().prr("1", 0, 0, hard_bin=1).pir().prr("2", 0, 1, hard_bin=2, failed=True)
    w.pir().prr("3", 0, 2, hard_bin=5, failed=True)
    parts = decode(bytes(w), max_bytes=1 << 20)
    assert list(stdf.labels(parts)) == [1, 0, 0]
    assert list(stdf.labels(parts, good_bins=[1, 2])) == [1, 1, 0]
    later = StdfWriter(">").far().mir("L").wir("W")
    later.pir().prr("1", 9, 9, failed=True)  # joined by PART_ID
    later.pir().prr("", 0, 1)  # no id: joined by lot, wafer and x/y
    y = stdf.labels(parts, outcomes=decode(bytes(later), max_bytes=1 << 20))
    assert y[0] == 0 and y[1] == 1 and np.isnan(y[2])


def test_the_leak_check_sees_stop_on_fail_and_not_complete_testing() -> None:
    leaky = decode(bytes(wafer_file(">", parts=400, tests=6, stop_on_fail=True)), max_bytes=1 << 22)
    y = leaky.passed.astype(float)
    found = stdf.leak(np.isnan(leaky.values), y, seed=1)
    assert found.leaky and found.fail_share_with_empty == 1.0 > found.fail_share_complete
    full = decode(bytes(wafer_file(">", parts=400, tests=6)), max_bytes=1 << 22)
    clean = stdf.leak(np.isnan(full.values), full.passed.astype(float), seed=1)
    assert not clean.leaky and clean.parts_with_empty == 0
