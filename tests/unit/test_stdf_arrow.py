"""stdf/arrow.py and stdf/keys.py: the reader's Arrow tables read without pyarrow, and the
dictionary encoding decode uses; pyarrow here only builds inputs and gives the reference."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import stdf.decode
import stdf.keys
from stdf.arrow import Table
from stdf.decode import decode
from stdf.keys import in_order
from tests.stdf_writer import StdfWriter, wafer_file

ROOT = Path(__file__).resolve().parents[2]


def _table() -> pa.Table:
    """Two chunks, nulls, a sliced chunk: what a reader may hand over."""
    first = pa.table(
        {
            "n": pa.array([1, None, 3], pa.uint16()),
            "f": pa.array([0.5, 1.5, None], pa.float32()),
            "s": pa.array(["ab", None, "a much longer string than eight"], pa.string()),
            "b": pa.array([b"\x08", b"", None], pa.binary()),
        }
    )
    second = pa.table(
        {
            "n": pa.array([9, 4, 5, 6], pa.uint16()),
            "f": pa.array([9.0, 4.0, 5.0, None], pa.float32()),
            "s": pa.array(["zz", "", "x", "é"], pa.string()),
            "b": pa.array([b"\xff", b"\x10\x02", b"\x02", b"\x00"], pa.binary()),
        }
    ).slice(1)
    return pa.concat_tables([first, second])


def test_columns_read_as_pyarrow_reads_them_across_chunks_nulls_and_slices() -> None:
    source = _table()
    assert source.column("n").num_chunks == 2
    table = Table(source)
    assert table.num_rows == 6
    assert table.values("n", np.int64).tolist() == [1, 0, 3, 4, 5, 6]
    assert table.values("n", np.int32, fill=-1).tolist() == [1, -1, 3, 4, 5, 6]
    assert table.nulls("f").tolist() == [False, False, True, False, False, True]
    assert table.values("f").dtype == np.float32
    texts = table.strings("s")
    assert texts.texts().tolist() == ["ab", None, "a much longer string than eight", None, "x", "é"]
    assert texts.lengths.tolist() == [2, 0, 31, 0, 1, 2]
    assert table.first_byte("b").tolist() == [8, 0, 0, 0x10, 2, 0]
    with pytest.raises(KeyError, match="no column 'missing'"):
        table.values("missing")


def test_a_record_type_the_file_lacks_reads_as_no_rows() -> None:
    table = Table()
    assert table.num_rows == 0 and len(table.values("X", np.int64)) == 0
    assert len(table.strings("S")) == 0 and len(table.first_byte("B")) == 0


def test_words_are_the_strings_exactly() -> None:
    values = ["", "a", "a\x00", "12345678", "123456789", "ABCDEFGHIJKLMNOPQ", "a"]
    words = Table(pa.table({"s": values})).strings("s")
    packed = [w.dense(len(values)) for w in words.words()]
    assert len(packed) == 3  # 17 bytes: three words
    rebuilt = [
        b"".join(int(w[i]).to_bytes(8, "little") for w in packed)[: words.lengths[i]].decode()
        for i in range(len(values))
    ]
    assert rebuilt == values
    assert packed[0][1] == packed[0][2] and words.lengths[1] != words.lengths[2]
    assert all(w[1] == w[6] for w in packed)
    # A word fewer than half the rows reach is kept for those only: memory follows the
    # strings' bytes, not n times the longest.
    assert [None if w.rows is None else w.rows.tolist() for w in words.words()] == [
        None, [4, 5], [5]]  # fmt: skip
    # Every row at least a word long: the first word is read whole, the second cut short.
    longer = Table(pa.table({"s": ["12345678", "123456789abc", "12345678"]})).strings("s")
    first, second = longer.words()
    assert first.rows is None
    assert first.values.tolist() == [int.from_bytes(b"12345678", "little")] * 3
    assert second.rows is not None and second.rows.tolist() == [1]
    assert second.values.tolist() == [int.from_bytes(b"9abc", "little")]


@pytest.mark.parametrize(
    ("distinct", "seed_rows", "max_table"),
    [(7, 1 << 16, 1 << 22), (300, 50, 1 << 22), (5000, 1 << 16, 1 << 10)],
    ids=["few", "some-first-seen-late", "many-binary-search"],
)
def test_in_order_is_first_appearance_order(
    monkeypatch: pytest.MonkeyPatch, distinct: int, seed_rows: int, max_table: int
) -> None:
    monkeypatch.setattr(stdf.keys, "SEED_ROWS", seed_rows)
    monkeypatch.setattr(stdf.keys, "MAX_TABLE", max_table)
    rng = np.random.default_rng(distinct)
    pool = rng.integers(-(2**62), 2**62, distinct)
    keys = np.concatenate([pool[: distinct // 2], rng.choice(pool, 20_000)])
    values, first, index = in_order(keys)
    seen: dict[int, int] = {}
    expected = [seen.setdefault(int(k), len(seen)) for k in keys]
    assert index.tolist() == expected
    assert values.view(np.int64).tolist() == list(seen)
    assert first.tolist() == [expected.index(i) for i in range(len(seen))]


def test_a_hash_collision_groups_tests_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every TEST_TXT hashing alike must still give each (TEST_NUM, TEST_TXT) its column."""
    w = StdfWriter("<").far().mir()
    w.pir().ptr(0, "IDD", 1.0).ptr(0, "VDD", 2.0).ptr(7, "X", 3.0).prr("1")
    w.pir().ptr(0, "IDD", 4.0).ptr(0, "VDD", 5.0).ptr(7, "", 6.0).prr("2")
    data = bytes(w)
    honest = decode(data, max_bytes=1 << 20)
    monkeypatch.setattr(stdf.decode, "text_hash", lambda lengths, words: np.zeros_like(lengths))
    colliding = decode(data, max_bytes=1 << 20)
    assert [t.key for t in colliding.tests] == [(0, "IDD"), (0, "VDD"), (7, "X")]
    assert colliding.tests == honest.tests
    np.testing.assert_array_equal(colliding.values, honest.values)


def test_files_are_read_where_pyarrow_is_not_installed(tmp_path: Path) -> None:
    """The serving image has no pyarrow: decode there must not import it."""
    path = tmp_path / "wafer.stdf"
    data = bytes(wafer_file(">", parts=40, tests=3, stop_on_fail=True, seed=4))
    expected = decode(data, max_bytes=1 << 20)
    script = (
        "import sys; sys.modules['pyarrow'] = None\n"  # any import of pyarrow now fails
        "from stdf.decode import decode\n"
        f"p = decode(open({str(path)!r}, 'rb').read(), max_bytes=1 << 20)\n"
        "print(len(p), p.tests[0].key, float(p.values[~(p.values != p.values)].sum()))\n"
        "print('pyarrow' in sys.modules and sys.modules['pyarrow'] is not None)\n"
    )
    path.write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    total = float(expected.values[~np.isnan(expected.values)].sum())
    assert done.stdout.split("\n")[:2] == [f"{len(expected)} {expected.tests[0].key} {total}",
                                           "False"]  # fmt: skip


def test_a_test_takes_the_first_units_any_of_its_ptrs_give() -> None:
    w = StdfWriter("<").far().mir()
    w.pir().ptr(1, "A", 1.0, units="").ptr(2, "B", 2.0, units="mA").prr("1")
    w.pir().ptr(1, "", 3.0, units="V").ptr(2, "B", 4.0, units="").prr("2")  # "": still A
    w.pir().ptr(1, "A", 3.0, units="uV").ptr(3, "", 4.0, units="").prr("3")
    parts = decode(bytes(w), max_bytes=1 << 20)
    assert [(t.key, t.units) for t in parts.tests] == [((1, "A"), "V"), ((2, "B"), "mA"),
                                                       ((3, ""), "")]  # fmt: skip
