"""stdf/: reading tester files, and every way a file is refused (4xx, record, byte offset)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from ensemble.validation import InvalidInput
from stdf import NO_COORD, StdfInvalid
from stdf.decode import decode
from stdf.testmap import TestMap as Map
from tests.stdf_writer import StdfWriter, wafer_file

LIMIT = 1 << 24
#: The shared real files; CI lays shared/ beside the repository.
TESTDATA = Path(
    os.environ.get(
        "YE_STDF_TESTDATA", Path(__file__).resolve().parents[2] / "../shared/testdata/stdf"
    )
)
LOT2 = TESTDATA / "lot2.stdf.gz"


def refused(data: bytes, limit: int = LIMIT) -> StdfInvalid:
    with pytest.raises(StdfInvalid) as caught:
        decode(data, max_bytes=limit)
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.field == "body"
    return caught.value


@pytest.mark.parametrize("order", ["<", ">"])
def test_both_byte_orders_read_the_same(order: str) -> None:
    parts = decode(bytes(wafer_file(order, parts=30, tests=4, seed=3)), max_bytes=LIMIT)
    other = decode(
        bytes(wafer_file("<>"[order == "<"], parts=30, tests=4, seed=3)), max_bytes=LIMIT
    )
    assert parts.info["byte_order"] == ("big-endian" if order == ">" else "little-endian")
    assert len(parts) == 30 and [t.key for t in parts.tests] == [
        (100 + j, f"VDD_{j}") for j in range(4)
    ]
    np.testing.assert_array_equal(parts.values, other.values)
    assert list(parts.part_id[:3]) == ["1", "2", "3"]
    assert list(parts.x[:3]) == [0, 1, 2] and list(parts.y[:12:10]) == [0, 1]
    assert parts.lot[0] == "LOT1" and parts.wafer[0] == "W01" and parts.info["tester"] == "T1"
    assert parts.tests[0].units == "V"


def test_sites_interleaved_results_go_to_the_open_part_of_their_site() -> None:
    w = StdfWriter("<").far().mir().wir("W1")
    w.pir(site=0).pir(site=1)
    w.ptr(1, "A", 10.0, site=1).ptr(1, "A", 20.0, site=0)
    w.ptr(2, "B", 11.0, site=1).prr("b", 0, 1, site=1)
    w.pir(site=1).ptr(2, "B", 21.0, site=0).ptr(1, "A", 30.0, site=1)
    w.prr("a", 0, 0, site=0).prr("c", 0, 2, site=1, failed=True)
    parts = decode(bytes(w), max_bytes=LIMIT)
    assert list(parts.part_id) == ["b", "a", "c"]  # in the order the tester finished them
    assert list(parts.site) == [1, 0, 1]
    np.testing.assert_array_equal(
        parts.values, np.array([[10, 11], [20, 21], [30, np.nan]], dtype=np.float32)
    )
    assert list(parts.passed) == [True, True, False]


def test_a_retested_die_keeps_its_last_test_and_counts_the_retests() -> None:
    w = StdfWriter(">").far().mir().wir("W1")
    for result, failed in ((5.0, True), (6.0, True), (0.5, False)):
        w.pir().ptr(1, "A", result).prr("7", 3, 4, failed=failed, hard_bin=5 if failed else 1)
    w.pir().ptr(1, "A", 1.0).prr("8", 3, 5)
    w.pir().ptr(1, "A", 2.0).prr("9").pir().ptr(1, "A", 3.0).prr("9")  # no x/y: same PART_ID
    parts = decode(bytes(w), max_bytes=LIMIT)
    assert list(parts.part_id) == ["7", "8", "9"]
    assert list(parts.retests) == [2, 0, 1] and parts.n_retests == 3
    assert list(parts.values[:, 0]) == [0.5, 1.0, 3.0] and list(parts.passed) == [True, True, True]
    assert parts.x[2] == NO_COORD
    every = decode(bytes(w), max_bytes=LIMIT, keep_retests=True)
    assert len(every) == 6 and list(every.retests) == [0, 1, 2, 0, 0, 1]


def test_empty_cells_are_nan_and_invalid_results_too() -> None:
    w = StdfWriter("<").far().mir().wir("W1")
    w.pir().ptr(1, "A", 1.0).ptr(2, "B", 2.0).prr("1")
    w.pir().ptr(1, "A", 9.0).prr("2", failed=True)  # stopped on fail: B not tested
    w.pir().ptr(1, "A", 1.0).ptr(2, "B", 7.0, flags=0x02).prr("3")  # RESULT not valid
    parts = decode(bytes(w), max_bytes=LIMIT)
    assert np.isnan(parts.values[1:, 1]).all() and parts.values[0, 1] == 2.0
    np.testing.assert_allclose(parts.empty_share(), [0.0, 2 / 3])


def test_a_test_number_reused_with_another_name_is_another_test() -> None:
    w = StdfWriter("<").far().mir()
    w.pir().ptr(0, "IDD", 1.0).ptr(0, "VDD", 2.0).ptr(7, "X", 3.0).prr("1")
    w.pir().ptr(0, "IDD", 4.0).ptr(0, "VDD", 5.0).ptr(7, "", 6.0).prr("2")  # "" = as before
    parts = decode(bytes(w), max_bytes=LIMIT)
    assert [t.key for t in parts.tests] == [(0, "IDD"), (0, "VDD"), (7, "X")]
    np.testing.assert_array_equal(parts.values, [[1, 2, 3], [4, 5, 6]])
    assert parts.wafer[0] is None  # no WIR: a final-test file


def test_vendor_and_unused_records_are_skipped() -> None:
    w = StdfWriter(">").far().vendor(180, 1).mir().vendor(250, 3, b"\x00" * 9)
    w.pir().ptr(1, "A", 1.0).vendor(15, 20, b"").prr("1").mrr()
    parts = decode(bytes(w), max_bytes=LIMIT)
    assert len(parts) == 1 and parts.values[0, 0] == 1.0


def test_gzip_is_read_and_its_expansion_is_bounded() -> None:
    data = bytes(wafer_file(">", parts=20))
    parts = decode(gzip.compress(data), max_bytes=len(data))
    assert len(parts) == 20
    error = refused(gzip.compress(data), limit=len(data) - 1)
    assert error.status_code == 413 and "expands past the limit" in str(error)


def test_a_gzip_bomb_is_refused_while_decompressing() -> None:
    bomb = gzip.compress(b"\x00" * (64 << 20), compresslevel=9)  # 64 MB in ~64 KB
    assert len(bomb) < 100_000
    error = refused(bomb, limit=4 << 20)
    assert error.status_code == 413 and "refused while decompressing" in str(error)
    # It stopped within a chunk of the limit (the offset is the bytes decompressed by then).
    assert error.offset is not None and (4 << 20) < error.offset <= (4 << 20) + (1 << 20)


def test_a_file_over_the_limit_is_413() -> None:
    data = bytes(wafer_file(">", parts=5))
    error = refused(data, limit=len(data) - 1)
    assert error.status_code == 413 and f"{len(data)} bytes" in str(error)


@pytest.mark.parametrize("data", [b"", b"hello, not a tester file", b"\x00\x02\x00\x0b\x01\x04"])
def test_not_stdf_is_422_at_byte_0(data: bytes) -> None:
    error = refused(data)
    assert error.status_code == 422 and "not an STDF file" in str(error)
    assert error.offset == 0


def test_stdf_v3_is_refused_naming_the_far() -> None:
    error = refused(bytes(StdfWriter(">").far(version=3).mir()))
    assert "STDF version 3" in str(error) and "FAR record at byte 0" in str(error)


def test_a_truncated_record_names_its_type_and_offset() -> None:
    w = wafer_file("<", parts=5)
    cut = w.offset_of("PTR", 7) + 10
    error = refused(bytes(w)[:cut])
    assert error.status_code == 422 and "truncated record" in str(error)
    assert error.record == "PTR" and error.offset == w.offset_of("PTR", 7)
    header = refused(bytes(w)[: w.offset_of("PRR", 1) + 2])
    assert "truncated record header" in str(header) and header.offset == w.offset_of("PRR", 1)


def test_a_part_without_prr_names_its_pir() -> None:
    w = StdfWriter(">").far().mir().pir().ptr(1, "A", 1.0).pir().ptr(1, "A", 2.0).prr("2")
    error = refused(bytes(w))
    assert "part without PRR" in str(error) and error.record == "PIR"
    assert error.offset == w.offset_of("PIR", 0) and f"byte {w.offset_of('PIR', 1)}" in str(error)
    at_end = StdfWriter("<").far().mir().pir().ptr(1, "A", 1.0).prr("1").pir(site=3)
    error = refused(bytes(at_end))
    assert "end of the file" in str(error) and error.offset == at_end.offset_of("PIR", 1)


def test_a_prr_without_a_pir_is_refused() -> None:
    w = StdfWriter(">").far().mir().pir().prr("1").prr("2")
    error = refused(bytes(w))
    assert "PRR without an open part" in str(error) and error.offset == w.offset_of("PRR", 1)


def test_a_ptr_outside_any_open_part_is_refused() -> None:
    w = StdfWriter("<").far().mir().pir().ptr(1, "A", 1.0).prr("1").ptr(1, "A", 2.0, site=0)
    error = refused(bytes(w))
    assert "PTR outside any open part" in str(error) and "head 1 site 0" in str(error)
    assert error.record == "PTR" and error.offset == w.offset_of("PTR", 1)
    other_site = StdfWriter("<").far().mir().pir(site=0).ptr(1, "A", 1.0, site=2).prr("1")
    assert refused(bytes(other_site)).offset == other_site.offset_of("PTR", 0)


def test_outcomes_are_feedback_items_by_part_id() -> None:
    parts = decode(bytes(wafer_file(">", parts=30, seed=5)), max_bytes=LIMIT)
    items = parts.outcomes()
    assert len(items) == 30 and items[0] == {
        "device_id": "1",
        "actual": "pass" if parts.passed[0] else "fail",
    }
    assert sum(i["actual"] == "fail" for i in items) == int((~parts.passed).sum()) > 0
    from ensemble.validation import parse_outcomes

    assert len(parse_outcomes(items, 10_000)) == 30  # the shape /feedback takes


def test_test_map_rows_fill_empty_cells_and_name_what_a_file_lacks() -> None:
    parts = decode(
        bytes(wafer_file(">", parts=60, tests=4, stop_on_fail=True, seed=2)), max_bytes=LIMIT
    )
    assert np.isnan(parts.values).any()
    test_map = Map.choose(parts, ["VDD_[0-2]"])
    assert test_map.feature_names == ("t100_vdd_0", "t101_vdd_1", "t102_vdd_2")
    rows = test_map.rows(parts)
    assert rows.dtype == np.float32 and rows.shape == (60, 3) and np.isfinite(rows).all()
    empty = np.isnan(parts.values[:, 2])
    assert (rows[empty, 2] == np.float32(np.nanmedian(parts.values[:, 2]))).all()
    again = Map.from_dict(test_map.to_dict())
    assert again == test_map
    with_flags = Map.choose(parts, ["re:VDD_[23]"], indicators=True)
    assert with_flags.feature_names[-1] == "t103_vdd_3_empty"
    assert (with_flags.rows(parts)[:, 2] == np.isnan(parts.values[:, 2])).all()
    complete = Map.choose(parts, only_complete=True)
    assert [t.text for t in complete.tests] == ["VDD_0"]
    fewer = decode(bytes(wafer_file(">", parts=10, tests=2)), max_bytes=LIMIT)
    with pytest.raises(StdfInvalid) as caught:
        test_map.rows(fewer)
    error = caught.value
    assert error.status_code == 422
    assert "lacks 1 of the model's 3 tests" in str(error) and "102 'VDD_2'" in str(error)
    assert "it has 2 test(s): 100 'VDD_0', 101 'VDD_1'" in str(error)
    with pytest.raises(ValueError, match="no test matching"):
        Map.choose(parts, ["IDD*"])


def test_feature_names_are_unique_and_readable() -> None:
    w = StdfWriter("<").far().mir()
    w.pir().ptr(0, "Vdd Leak <> pin2", 1.0).ptr(0, "vdd leak <> PIN2", 2.0).ptr(5, "", 3.0).prr("1")
    test_map = Map.choose(decode(bytes(w), max_bytes=LIMIT))
    assert test_map.feature_names == ("t0_vdd_leak_pin2", "t0_vdd_leak_pin2_2", "t5")


@pytest.mark.skipif(not LOT2.is_file(), reason=f"the shared STDF file is not at {LOT2}")
def test_the_real_wafer_sort_file() -> None:
    data = LOT2.read_bytes()
    every = decode(data, max_bytes=64 << 20, keep_retests=True)
    assert len(every) == 1569 and len(every.tests) == 74
    assert int(every.passed.sum()) == 1389 and int((~every.passed).sum()) == 180
    assert (every.passed == (every.hard_bin == 1)).all()
    assert every.info["byte_order"] == "big-endian" and every.info["tester"] == "A530"
    assert 0.50 < float(np.isnan(every.values).mean()) < 0.60
    dies = decode(data, max_bytes=64 << 20)
    assert len(dies) + dies.n_retests == 1569 and dies.n_retests == 113
    assert all(pid is not None for pid in dies.part_id)
    assert len(set(dies.part_id)) == len(dies) and (dies.x != NO_COORD).all()
    assert len(set(zip(dies.x.tolist(), dies.y.tolist(), strict=True))) == len(dies)
    assert set(dies.wafer) == {"GAL-LOT-02"} and set(dies.lot) == {"GAL-LOT"}


def test_a_build_without_the_reader_answers_501_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A build without stdf-convert: reading a file there is a clear 501."""
    import sys

    from ensemble.errors import NotInThisBuild
    from stdf.format import read

    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "stdf.decode", None)
        with pytest.raises(NotInThisBuild) as err:
            read(b"\x00\x04\x00\x0a", 1000)
        assert err.value.status == 501 and "no STDF reader" in str(err.value)
    # stdf-convert itself missing (its native module not yet loaded, the package not found).
    monkeypatch.delitem(sys.modules, "stdf_convert._stdf_convert", raising=False)
    monkeypatch.setitem(sys.modules, "stdf_convert", None)
    with pytest.raises(NotInThisBuild) as err:
        read(bytes(wafer_file(">", parts=2)), 1000)
    assert err.value.status == 501 and "no STDF reader (stdf_convert)" in str(err.value)
