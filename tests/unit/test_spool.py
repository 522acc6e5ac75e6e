"""The spool's bookkeeping: sizes from file names, claims, releases, bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.spool import Spool, SpoolFull


def test_size_counts_rows_from_names_and_reads_only_unnamed_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spill")
    spool.append(["a", "b", "c"])
    spool.append(["d"])
    assert spool.size() == (4, len("a\nb\nc\nd\n"))
    (tmp_path / "spill" / "00000000000000000001-1-000001.jsonl").write_text("x\ny\n")
    assert spool.size()[0] == 6  # a segment without its count in the name is read
    segment = spool.claim_oldest()
    assert segment is not None and spool.size()[0] == 6  # claimed rows still count
    spool.release(segment, segment.lines[:1])
    assert spool.size()[0] == 6 - len(segment.lines) + 1


def test_the_bound_counts_bytes_already_held(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spill", max_bytes=10)
    spool.append(["12345"])
    with pytest.raises(SpoolFull):
        spool.append(["67890"])
