"""The baseline: ``stdf.decode`` as it was over pyarrow (``pyarrow.compute``), kept to measure
the nanoarrow + numpy ``stdf.decode`` against in the same run (bench/stdf.py).

Each PTR belongs to the open part (a PIR without its PRR yet) of its HEAD_NUM and
SITE_NUM, so several sites may interleave. A die tested again (same wafer and x/y, or,
without a position, same wafer and PART_ID) keeps its last test; earlier ones are counted
in ``retests``. MPR, FTR and vendor records are skipped.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import stdf_convert

from stdf.errors import StdfInvalid
from stdf.parts import INVALID_RESULT, NO_COORD, NO_PASS_FAIL, PART_FAILED, Parts, Test
from stdf.read import _as_path, byte_order, records, unpack

#: Bits of a (head, site) key and a record's sequence number packed in one int64.
_SEQ_BITS = 40
_PIR, _PRR = 0, 1


def decode(data: bytes, *, max_bytes: int, keep_retests: bool = False) -> Parts:
    """Parts and their parts-by-tests matrix from one STDF V4 file, raw or gzipped.

    ``max_bytes`` bounds the file, and the decompressed stream while it is decompressed.
    With ``keep_retests`` every PRR is a part (``retests`` then counts each one's earlier
    tests of the same die); by default only each die's last test is.
    Raises StdfInvalid (422; 413 over the limit) naming the problem, record and byte offset.
    """
    raw = unpack(data, max_bytes)
    order = byte_order(raw)
    found = tables(raw, order)
    parts = _assemble(found, keep_retests)
    parts.info["byte_order"] = "big-endian" if order == ">" else "little-endian"
    parts.info["bytes"] = len(raw)
    return parts


def tables(raw: bytes, order: str) -> dict[str, pa.Table]:
    """stdf-convert's package (which wraps its tables in pyarrow), as ``stdf.read`` used it."""
    try:
        with _as_path(raw) as path:
            found = dict(stdf_convert.tables(path, ["MIR", "WIR", "PIR", "PRR", "PTR"]))
    except stdf_convert.StdfError as exc:
        for _ in records(raw, order):
            pass
        raise StdfInvalid(f"unreadable STDF file: {exc}") from None
    return found


def _column(table: pa.Table, name: str, dtype: Any = None) -> np.ndarray:
    values = table.column(name).combine_chunks()
    if dtype is not None and values.null_count:
        values = pc.fill_null(values, 0)
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=dtype)


def _first_byte(table: pa.Table, name: str) -> np.ndarray:
    """A B1 column (PART_FLG, TEST_FLG) as uint8, 0 where the record left it out."""
    values = pc.fill_null(table.column(name).combine_chunks(), b"\x00")
    offsets = np.frombuffer(values.buffers()[1], np.int32)[
        values.offset : values.offset + len(values)
    ]
    data = np.frombuffer(values.buffers()[2], np.uint8)
    return data[offsets].copy() if len(data) else np.zeros(len(values), np.uint8)


def _strings(table: pa.Table, name: str) -> np.ndarray:
    """A string column as an object array, None where empty or left out."""
    values = table.column(name).to_pylist()
    return np.array([v or None for v in values], dtype=object)


def _keyed(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(head*256 + site, that key and the sequence number packed) per record."""
    key = _column(table, "HEAD_NUM", np.int64) * 256 + _column(table, "SITE_NUM", np.int64)
    return key, (key << _SEQ_BITS) | _column(table, "sequence_number", np.int64)


def _where(key: int) -> str:
    return f"head {key >> 8} site {key & 255}"


def _pair(pir: pa.Table, prr: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Indices into PIR and PRR of each part, ordered by (head, site, sequence)."""
    pir_packed = _keyed(pir)[1]
    prr_packed = _keyed(prr)[1]
    packed = np.concatenate([pir_packed, prr_packed])
    kind = np.concatenate([np.full(len(pir), _PIR), np.full(len(prr), _PRR)])
    row = np.concatenate([np.arange(len(pir)), np.arange(len(prr))])
    order = np.argsort(packed, kind="stable")
    packed, kind, row = packed[order], kind[order], row[order]
    key = packed >> _SEQ_BITS
    first = np.r_[True, key[1:] != key[:-1]]
    last = np.r_[key[1:] != key[:-1], True]
    same_as_previous = np.r_[False, kind[1:] == kind[:-1]] & ~first
    bad_prr = (kind == _PRR) & (first | same_as_previous)
    open_pir = (kind == _PIR) & (last | np.r_[same_as_previous[1:], False])
    if bad_prr.any() or open_pir.any():
        offsets = np.concatenate([_column(pir, "byte_offset"), _column(prr, "byte_offset")])
        at = offsets[np.where(kind == _PIR, row, row + len(pir))]
        if open_pir.any() and (not bad_prr.any() or at[open_pir].min() < at[bad_prr].min()):
            i = int(np.flatnonzero(open_pir)[np.argmin(at[open_pir])])
            after = "the end of the file" if last[i] else f"the next PIR at byte {at[i + 1]}"
            raise StdfInvalid(
                f"a part without PRR: the PIR of {_where(int(key[i]))} is not closed by a PRR "
                f"before {after}",
                record="PIR",
                offset=int(at[i]),
            )
        i = int(np.flatnonzero(bad_prr)[np.argmin(at[bad_prr])])
        raise StdfInvalid(
            f"a PRR without an open part: no PIR of {_where(int(key[i]))} precedes it",
            record="PRR",
            offset=int(at[i]),
        )
    return row[kind == _PIR], row[kind == _PRR]


def _test_text(ptr: pa.Table, number: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Per PTR the index of its TEST_TXT in the returned list; an empty TEST_TXT takes that of
    the latest earlier PTR of the same TEST_NUM (the standard's default from the first PTR)."""
    encoded = pc.dictionary_encode(pc.fill_null(ptr.column("TEST_TXT").combine_chunks(), ""))
    names = [str(s) for s in encoded.dictionary.to_pylist()]
    index = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    if "" in names:
        empty = index == names.index("")
        if empty.any():
            order = np.lexsort((np.arange(len(index)), number))
            position = np.arange(len(order))
            known = np.where(empty[order], -1, position)
            latest = np.maximum.accumulate(known)
            group_start = np.r_[0, np.flatnonzero(np.diff(number[order])) + 1]
            starts = np.repeat(group_start, np.diff(np.r_[group_start, len(order)]))
            filled = np.where(latest >= starts, index[order][np.maximum(latest, 0)], index[order])
            index[order] = filled
    return index, names


def _in_order(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys in order of first appearance, each row's index into them): a hash
    pass (Arrow's dictionary encoding), not a sort."""
    encoded = pc.dictionary_encode(pa.array(keys))
    distinct = np.asarray(encoded.dictionary.to_numpy(zero_copy_only=False), dtype=np.int64)
    return distinct, np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)


def _tests(ptr: pa.Table) -> tuple[np.ndarray, tuple[Test, ...]]:
    """Column of each PTR in the matrix, and the tests in order of first appearance."""
    number = _column(ptr, "TEST_NUM", np.int64)
    text, names = _test_text(ptr, number)
    width = len(names) + 1
    distinct, column = _in_order(number * width + text)
    encoded = pc.dictionary_encode(pc.fill_null(ptr.column("UNITS").combine_chunks(), ""))
    unit_names = [str(u) for u in encoded.dictionary.to_pylist()]
    unit_index = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    units = [""] * len(distinct)
    pairs = _in_order(column * (len(unit_names) + 1) + unit_index)[0]
    for pair in pairs.tolist():  # few: (test, units) pairs in file order; the first non-empty
        c, u = divmod(pair, len(unit_names) + 1)
        if not units[c]:
            units[c] = unit_names[u]
    tests = tuple(
        Test(int(key // width), names[int(key % width)], units[c])
        for c, key in enumerate(distinct.tolist())
    )
    return column, tests


def _wafers(wir: pa.Table | None, pir: pa.Table, pir_rows: np.ndarray) -> np.ndarray:
    """WAFER_ID of the latest WIR before each part's PIR, of its head where that head has one."""
    wafer = np.full(len(pir_rows), None, dtype=object)
    if wir is None or not wir.num_rows:
        return wafer
    wir_seq = _column(wir, "sequence_number", np.int64)
    wir_head = _column(wir, "HEAD_NUM", np.int64)
    ids = _strings(wir, "WAFER_ID")
    part_seq = _column(pir, "sequence_number", np.int64)[pir_rows]
    part_head = _column(pir, "HEAD_NUM", np.int64)[pir_rows]
    for head in np.unique(part_head).tolist():
        mine = part_head == head
        pick = wir_head == head if (wir_head == head).any() else np.ones(len(wir_seq), bool)
        j = np.searchsorted(wir_seq[pick], part_seq[mine], side="right") - 1
        wafer[mine] = np.where(j >= 0, ids[pick][np.maximum(j, 0)], None)
    return wafer


def _assemble(found: dict[str, pa.Table], keep_retests: bool) -> Parts:
    pir = found["PIR"] if "PIR" in found else stdf_convert.schema("PIR").empty_table()
    prr = found["PRR"] if "PRR" in found else stdf_convert.schema("PRR").empty_table()
    pir_rows, prr_rows = _pair(pir, prr)
    ptr = found.get("PTR")
    n_parts = len(pir_rows)
    if ptr is not None and ptr.num_rows:
        column, tests = _tests(ptr)
        ptr_key, ptr_packed = _keyed(ptr)
        pir_packed = _keyed(pir)[1][pir_rows]
        prr_packed = _keyed(prr)[1][prr_rows]
        part = np.searchsorted(pir_packed, ptr_packed, side="right") - 1
        safe = np.maximum(part, 0)
        inside = (
            (part >= 0)
            & (pir_packed[safe] >> _SEQ_BITS == ptr_key)
            & (prr_packed[safe] > ptr_packed)
        )
        if not inside.all():
            i = int(
                np.argmin(
                    np.where(inside, np.iinfo(np.int64).max, _column(ptr, "byte_offset", np.int64))
                )
            )
            raise StdfInvalid(
                f"a PTR outside any open part: no PIR of {_where(int(ptr_key[i]))} is open "
                f"(TEST_NUM {int(_column(ptr, 'TEST_NUM')[i])})",
                record="PTR",
                offset=int(_column(ptr, "byte_offset")[i]),
            )
        result = _column(ptr, "RESULT", np.float32)
        valid = (_first_byte(ptr, "TEST_FLG") & INVALID_RESULT) == 0
        valid &= ~np.asarray(ptr.column("RESULT").is_null().to_numpy(zero_copy_only=False))
        values = np.full((n_parts, len(tests)), np.nan, dtype=np.float32)
        values[part[valid], column[valid]] = result[valid]  # a repeated test: the last counts
    else:
        tests, values = (), np.empty((n_parts, 0), dtype=np.float32)
    # Parts in file order of their PRR, as the tester finished them.
    by_finish = np.argsort(_column(prr, "sequence_number", np.int64)[prr_rows], kind="stable")
    pir_rows, prr_rows, values = pir_rows[by_finish], prr_rows[by_finish], values[by_finish]
    flags = _first_byte(prr, "PART_FLG")[prr_rows]
    mir = found.get("MIR")
    lot = mir.column("LOT_ID")[0].as_py() if mir is not None and mir.num_rows else None
    parts = Parts(
        part_id=_strings(prr, "PART_ID")[prr_rows],
        lot=np.full(n_parts, lot or None, dtype=object),
        wafer=_wafers(found.get("WIR"), pir, pir_rows),
        head=_column(prr, "HEAD_NUM", np.int16)[prr_rows],
        site=_column(prr, "SITE_NUM", np.int16)[prr_rows],
        x=_coordinate(prr, "X_COORD")[prr_rows],
        y=_coordinate(prr, "Y_COORD")[prr_rows],
        hard_bin=_column(prr, "HARD_BIN", np.int32)[prr_rows],
        soft_bin=_coordinate(prr, "SOFT_BIN", missing=65535)[prr_rows],
        passed=(flags & PART_FAILED) == 0,
        pass_known=(flags & NO_PASS_FAIL) == 0,
        retests=np.zeros(n_parts, np.int32),
        values=values,
        tests=tests,
        info=_info(mir),
    )
    return _last_test_per_die(parts, keep_retests)


def _coordinate(table: pa.Table, name: str, missing: int = NO_COORD) -> np.ndarray:
    values = pc.fill_null(table.column(name).combine_chunks(), missing)
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.int32)


def _info(mir: pa.Table | None) -> dict[str, Any]:
    if mir is None or not mir.num_rows:
        return {}
    row = mir.slice(0, 1).to_pylist()[0]
    names = {"tester": "TSTR_TYP", "node": "NODE_NAM", "part_type": "PART_TYP",
             "job": "JOB_NAM", "lot": "LOT_ID", "test_code": "TEST_COD"}  # fmt: skip
    return {k: row.get(v) or None for k, v in names.items()}


def _last_test_per_die(parts: Parts, keep_retests: bool) -> Parts:
    """Keep the last test of each die; count the earlier ones in its ``retests``.

    With ``keep_retests``, keep every test, each counting the earlier tests of its die.
    """
    last: dict[tuple[Any, ...], int] = {}
    counts: dict[tuple[Any, ...], int] = {}
    earlier = np.zeros(len(parts), np.int32)
    keys: list[tuple[Any, ...] | None] = []
    for i in range(len(parts)):
        x, y, pid = int(parts.x[i]), int(parts.y[i]), parts.part_id[i]
        if x != NO_COORD and y != NO_COORD:
            key: tuple[Any, ...] | None = (parts.lot[i], parts.wafer[i], "xy", x, y)
        elif pid is not None:
            key = (parts.lot[i], parts.wafer[i], "id", pid)
        else:
            key = None
        keys.append(key)
        if key is not None:
            last[key] = i
            counts[key] = earlier[i] = counts.get(key, -1) + 1
    if keep_retests:
        return replace(parts, retests=earlier)
    if len(last) == sum(k is not None for k in keys):
        return parts
    keep = np.array([k is None or last[k] == i for i, k in enumerate(keys)])
    retests = np.array([0 if k is None else counts[k] for k in keys], dtype=np.int32)
    fields = {name: getattr(parts, name)[keep] for name in (
        "part_id", "lot", "wafer", "head", "site", "x", "y", "hard_bin", "soft_bin",
        "passed", "pass_known", "values")}  # fmt: skip
    return Parts(**fields, retests=retests[keep], tests=parts.tests, info=parts.info)
