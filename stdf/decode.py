"""``decode``: an STDF V4 file's bytes (gzip accepted) as :class:`stdf.parts.Parts`.

Each PTR belongs to the open part (a PIR without its PRR yet) of its HEAD_NUM and
SITE_NUM, so several sites may interleave. A die tested again (same wafer and x/y, or,
without a position, same wafer and PART_ID) keeps its last test; earlier ones are counted
in ``retests``. MPR, FTR and vendor records are skipped. The reader's Arrow tables are read
with nanoarrow and numpy (:mod:`stdf.arrow`): no pyarrow, so the serving image reads files.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import numpy as np

from stdf.arrow import Table
from stdf.errors import StdfInvalid
from stdf.keys import in_order, mix, text_hash
from stdf.parts import INVALID_RESULT, NO_COORD, NO_PASS_FAIL, PART_FAILED, Parts, Test
from stdf.read import byte_order, tables, unpack

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


def _keyed(table: Table) -> tuple[np.ndarray, np.ndarray]:
    """(head*256 + site, that key and the sequence number packed) per record."""
    key = table.values("HEAD_NUM", np.int64) * 256 + table.values("SITE_NUM", np.int64)
    return key, (key << _SEQ_BITS) | table.values("sequence_number", np.int64)


def _where(key: int) -> str:
    return f"head {key >> 8} site {key & 255}"


def _pair(pir: Table, prr: Table) -> tuple[np.ndarray, np.ndarray]:
    """Indices into PIR and PRR of each part, ordered by (head, site, sequence)."""
    packed = np.concatenate([_keyed(pir)[1], _keyed(prr)[1]])
    kind = np.concatenate([np.full(pir.num_rows, _PIR), np.full(prr.num_rows, _PRR)])
    row = np.concatenate([np.arange(pir.num_rows), np.arange(prr.num_rows)])
    order = np.argsort(packed, kind="stable")
    packed, kind, row = packed[order], kind[order], row[order]
    key = packed >> _SEQ_BITS
    first = np.r_[True, key[1:] != key[:-1]]
    last = np.r_[key[1:] != key[:-1], True]
    same_as_previous = np.r_[False, kind[1:] == kind[:-1]] & ~first
    bad_prr = (kind == _PRR) & (first | same_as_previous)
    open_pir = (kind == _PIR) & (last | np.r_[same_as_previous[1:], False])
    if bad_prr.any() or open_pir.any():
        offsets = np.concatenate(
            [pir.values("byte_offset", np.int64), prr.values("byte_offset", np.int64)]
        )
        at = offsets[np.where(kind == _PIR, row, row + pir.num_rows)]
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


def _named_by(number: np.ndarray, empty: np.ndarray) -> np.ndarray | None:
    """Per PTR the row whose TEST_TXT names its test: itself, or where its TEST_TXT is empty
    the latest earlier PTR of the same TEST_NUM with one (the standard's default from the
    first PTR); itself if there is none. None where every PTR names its own test."""
    if not empty.any():
        return None
    rows = np.arange(len(number))
    group = in_order(number)[2]
    narrow = group.astype(np.uint16) if group.max() < 1 << 16 else group  # radix sort
    order = np.argsort(narrow, kind="stable")
    known = np.where(empty[order], -1, rows)
    latest = np.maximum.accumulate(known)
    counts = np.bincount(group)
    starts = (np.cumsum(counts) - counts)[group[order]]
    named = rows.copy()
    named[order] = np.where(latest >= starts, order[np.maximum(latest, 0)], order)
    return named


def _tests(ptr: Table) -> tuple[np.ndarray, tuple[Test, ...]]:
    """Column of each PTR in the matrix, and the tests (TEST_NUM, TEST_TXT) in order of
    first appearance, each with the first UNITS a PTR of it gives."""
    number = ptr.values("TEST_NUM", np.int64)
    text = ptr.strings("TEST_TXT")
    words = text.words()
    named = _named_by(number, text.lengths == 0)
    hashed, lengths = text_hash(text.lengths, words), text.lengths

    def own(values: np.ndarray) -> np.ndarray:  # each row by the text that names it
        return values if named is None else values[named]

    _, first, column = in_order(mix(own(hashed), number))
    # The hash groups rows; check each row against its group's first row, byte for byte.
    same = number == number[first][column]
    same &= own(lengths) == own(lengths)[first][column]
    for word in words:
        values = own(word.dense(len(number)))
        same &= values == values[first][column]
    if not same.all():  # a 64-bit hash collision: group exactly, by sorting
        dense = (own(w.dense(len(number))) for w in words)  # one word at a time
        first, column = _exactly(itertools.chain([number, own(lengths)], dense))
    units = ptr.strings("UNITS")
    first_units = first.copy()  # the first PTR of a test, unless its UNITS is empty
    if (units.lengths[first] == 0).any():
        given = np.flatnonzero(units.lengths > 0)
        first_units[:] = len(number)
        np.minimum.at(first_units, column[given], given)
    tests = tuple(
        Test(int(number[row]), text.text(row if named is None else int(named[row])),
             units.text(int(u)) if u < len(number) else "")
        for row, u in zip(first.tolist(), first_units.tolist(), strict=True)
    )  # fmt: skip
    return column, tests


def _exactly(columns: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(first row of each distinct row of ``columns`` ((n,) integers each), each row's index
    into them), in order of first appearance: groups refined a column at a time by sorting,
    the slow exact path, in the memory of a few columns."""
    group = np.zeros(0, np.uint64)
    for column in columns:
        values = column.astype(np.uint64)
        pair = np.stack([group, values], axis=1) if len(group) else values[:, None]
        group = np.unique(pair, axis=0, return_inverse=True)[1].ravel().astype(np.uint64)
    _, first, inverse = np.unique(group, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return first[order], rank[inverse.ravel()]


def _wafers(wir: Table, pir: Table, pir_rows: np.ndarray) -> np.ndarray:
    """WAFER_ID of the latest WIR before each part's PIR, of its head where that head has one."""
    wafer = np.full(len(pir_rows), None, dtype=object)
    if not wir.num_rows:
        return wafer
    wir_seq = wir.values("sequence_number", np.int64)
    wir_head = wir.values("HEAD_NUM", np.int64)
    ids = wir.strings("WAFER_ID").texts()
    part_seq = pir.values("sequence_number", np.int64)[pir_rows]
    part_head = pir.values("HEAD_NUM", np.int64)[pir_rows]
    for head in np.unique(part_head).tolist():
        mine = part_head == head
        pick = wir_head == head if (wir_head == head).any() else np.ones(len(wir_seq), bool)
        j = np.searchsorted(wir_seq[pick], part_seq[mine], side="right") - 1
        wafer[mine] = np.where(j >= 0, ids[pick][np.maximum(j, 0)], None)
    return wafer


def _results(
    ptr: Table, pir: Table, prr: Table, pir_rows: np.ndarray, prr_rows: np.ndarray
) -> tuple[tuple[Test, ...], np.ndarray]:
    """(tests, the (parts, tests) float32 matrix, NaN where a part has no valid result)."""
    if not ptr.num_rows:
        return (), np.empty((len(pir_rows), 0), dtype=np.float32)
    column, tests = _tests(ptr)
    ptr_key, ptr_packed = _keyed(ptr)
    pir_packed = _keyed(pir)[1][pir_rows]
    prr_packed = _keyed(prr)[1][prr_rows]
    part = np.searchsorted(pir_packed, ptr_packed, side="right") - 1
    safe = np.maximum(part, 0)
    inside = (part >= 0) & (pir_packed[safe] >> _SEQ_BITS == ptr_key)
    inside &= prr_packed[safe] > ptr_packed
    if not inside.all():
        offsets = ptr.values("byte_offset", np.int64)
        i = int(np.argmin(np.where(inside, np.iinfo(np.int64).max, offsets)))
        raise StdfInvalid(
            f"a PTR outside any open part: no PIR of {_where(int(ptr_key[i]))} is open "
            f"(TEST_NUM {int(ptr.values('TEST_NUM')[i])})",
            record="PTR",
            offset=int(offsets[i]),
        )
    valid = (ptr.first_byte("TEST_FLG") & INVALID_RESULT) == 0
    valid &= ~ptr.nulls("RESULT")
    result = ptr.values("RESULT", np.float32)
    if not valid.all():
        part, column, result = part[valid], column[valid], result[valid]
    values = np.full((len(pir_rows), len(tests)), np.nan, dtype=np.float32)
    values[part, column] = result  # a repeated test: the last counts
    return tests, values


def _assemble(found: dict[str, Table], keep_retests: bool) -> Parts:
    pir, prr, ptr, mir, wir = (found.get(name) or Table() for name in ("PIR", "PRR", "PTR",
                                                                       "MIR", "WIR"))  # fmt: skip
    pir_rows, prr_rows = _pair(pir, prr)
    tests, values = _results(ptr, pir, prr, pir_rows, prr_rows)
    n_parts = len(pir_rows)
    # Parts in file order of their PRR, as the tester finished them.
    by_finish = np.argsort(prr.values("sequence_number", np.int64)[prr_rows], kind="stable")
    pir_rows, prr_rows, values = pir_rows[by_finish], prr_rows[by_finish], values[by_finish]
    flags = prr.first_byte("PART_FLG")[prr_rows]
    info = _info(mir)
    parts = Parts(
        part_id=prr.strings("PART_ID").texts()[prr_rows],
        lot=np.full(n_parts, info.get("lot"), dtype=object),
        wafer=_wafers(wir, pir, pir_rows),
        head=prr.values("HEAD_NUM", np.int16)[prr_rows],
        site=prr.values("SITE_NUM", np.int16)[prr_rows],
        x=prr.values("X_COORD", np.int32, fill=NO_COORD)[prr_rows],
        y=prr.values("Y_COORD", np.int32, fill=NO_COORD)[prr_rows],
        hard_bin=prr.values("HARD_BIN", np.int32)[prr_rows],
        soft_bin=prr.values("SOFT_BIN", np.int32, fill=65535)[prr_rows],
        passed=(flags & PART_FAILED) == 0,
        pass_known=(flags & NO_PASS_FAIL) == 0,
        retests=np.zeros(n_parts, np.int32),
        values=values,
        tests=tests,
        info=info,
    )
    return _last_test_per_die(parts, keep_retests)


def _info(mir: Table) -> dict[str, Any]:
    if not mir.num_rows:
        return {}
    names = {"tester": "TSTR_TYP", "node": "NODE_NAM", "part_type": "PART_TYP",
             "job": "JOB_NAM", "lot": "LOT_ID", "test_code": "TEST_COD"}  # fmt: skip
    return {k: mir.strings(v).texts()[0] for k, v in names.items()}


def _codes(values: np.ndarray) -> np.ndarray:
    """(n,) int64 code of each value of an object array (None a value like any other)."""
    seen: dict[Any, int] = {}
    return np.array([seen.setdefault(v, len(seen)) for v in values.tolist()], np.int64)


def _group(*columns: np.ndarray) -> np.ndarray:
    """(n,) int64 group of each row: equal exactly where every column is (non-negative
    integers, the last below 2**40)."""
    group = np.zeros(len(columns[0]), np.int64)
    for column in columns:
        group = np.unique(group * (int(column.max(initial=0)) + 1) + column, return_inverse=True)[1]
    return group.ravel()


def _last_test_per_die(parts: Parts, keep_retests: bool) -> Parts:
    """Keep the last test of each die; count the earlier ones in its ``retests``.

    A die is its lot, wafer and x/y, or without a position its lot, wafer and PART_ID; a
    part with neither is a die of its own. With ``keep_retests``, keep every test, each
    counting the earlier tests of its die.
    """
    n = len(parts)
    located = (parts.x != NO_COORD) & (parts.y != NO_COORD)
    named = np.array([p is not None for p in parts.part_id.tolist()], bool)
    place = (parts.x.astype(np.int64) & 0xFFFF) << 16 | (parts.y.astype(np.int64) & 0xFFFF)
    where = np.where(located, place, (1 << 32) + _codes(parts.part_id))
    alone = (1 << 32) + n + np.arange(n)  # a key of its own
    die = _group(_codes(parts.lot), _codes(parts.wafer), np.where(located | named, where, alone))
    # Tests of the same die in file order: each one's rank among them, and the last.
    order = np.argsort(die, kind="stable")
    counts = np.bincount(die, minlength=1)
    earlier = np.empty(n, np.int32)
    earlier[order] = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    if keep_retests:
        return replace(parts, retests=earlier)
    if len(counts) == n:
        return parts
    keep = earlier == (counts - 1)[die]
    fields = {name: getattr(parts, name)[keep] for name in (
        "part_id", "lot", "wafer", "head", "site", "x", "y", "hard_bin", "soft_bin",
        "passed", "pass_known", "values")}  # fmt: skip
    return Parts(**fields, retests=earlier[keep], tests=parts.tests, info=parts.info)
