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


def test_room_says_whether_a_segment_could_be_written_now(tmp_path: Path) -> None:
    assert Spool(tmp_path / "spill").room() is None
    assert "of its limit" in (Spool(tmp_path / "small", max_bytes=100).room() or "")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert "NotADirectoryError" in (Spool(blocker / "spill").room() or "")
    full = Spool(tmp_path / "spill", max_bytes=1 << 20)
    full.append(["x" * 1000] * 1000)  # ~1 MB: less than a few hundred rows left
    assert "of its limit" in (full.room() or "")
