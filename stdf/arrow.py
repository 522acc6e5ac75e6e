"""The reader's Arrow tables as numpy columns, through nanoarrow (no pyarrow).

stdf-convert's native module returns tables that speak the Arrow PyCapsule interface
(``__arrow_c_stream__``); nanoarrow (Apache-2.0, ~3 MB) imports that stream and hands out
each column's buffers, which numpy views without copying. Only what decoding reads is
here: fixed-width numbers, validity, the first byte of a B1 field, and strings as offsets
and bytes (:class:`Strings`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from nanoarrow.c_array import c_array_view
from nanoarrow.c_array_stream import c_array_stream

#: Arrow C format strings of the fixed-width types the reader writes -> numpy dtype.
_NUMBERS = {"c": "i1", "C": "u1", "s": "i2", "S": "u2", "i": "i4", "I": "u4", "l": "i8",
            "L": "u8", "e": "f2", "f": "f4", "g": "f8"}  # fmt: skip
#: Variable-width types -> the numpy dtype of their offsets.
_VARIABLE = {"u": "i4", "z": "i4", "U": "i8", "Z": "i8"}
#: The low ``i`` bytes of a little-endian uint64, i = 0..8.
_LOW_BYTES = np.array([(1 << (8 * i)) - 1 for i in range(9)], np.uint64)


class _Owned:
    """Arrow memory as numpy sees it, holding the imported array that owns it (nanoarrow's
    buffer views do not): an array made from this keeps that memory alive."""

    def __init__(self, view: np.ndarray, owner: Any) -> None:
        self.__array_interface__ = view.__array_interface__
        self._view, self._owner = view, owner


@dataclass(frozen=True)
class _Piece:
    """One column of one chunk: its buffers, where its rows start, how many there are."""

    format: str
    offset: int
    length: int
    null_count: int
    buffers: tuple[Any, ...]
    owner: Any

    def buffer(self, i: int, dtype: Any) -> np.ndarray:
        """Buffer ``i`` as a read-only numpy array, which keeps the chunk alive."""
        return np.asarray(_Owned(np.frombuffer(self.buffers[i], dtype), self.owner))

    def missing(self) -> np.ndarray | None:
        """(length,) bool, True where null; None where no row is (no validity bitmap, or a
        null count of 0; -1, unknown, reads the bitmap)."""
        bitmap = np.frombuffer(self.buffers[0], np.uint8)  # read at once: no view is kept
        if not self.null_count or not len(bitmap):
            return None
        bits = np.unpackbits(bitmap, bitorder="little", count=self.offset + self.length)
        return ~bits[self.offset :].astype(bool)


@dataclass(frozen=True)
class Word:
    """Bytes ``8k`` to ``8k + 7`` of the rows, as little-endian uint64 zero past each row's
    end: ``values[i]`` is row ``rows[i]``'s, or with ``rows`` None every row's (0 for a row
    that ends before ``8k``). Where fewer than half the rows reach the word, only those have
    it: memory follows the strings' bytes, not n times the longest."""

    rows: np.ndarray | None
    values: np.ndarray

    def dense(self, n: int) -> np.ndarray:
        """(n,) uint64: every row's word, 0 for the rows too short to have it."""
        if self.rows is None:
            return self.values
        out = np.zeros(n, np.uint64)
        out[self.rows] = self.values
        return out


@dataclass(frozen=True)
class Strings:
    """A string or binary column: row i is ``data[starts[i]:starts[i] + lengths[i]]``.

    ``starts`` and ``lengths`` are (n,) integers, ``data`` uint8. A null row is empty.
    """

    starts: np.ndarray
    lengths: np.ndarray
    data: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    def text(self, i: int) -> str:
        """Row ``i`` decoded (the reader writes valid UTF-8)."""
        start = int(self.starts[i])
        return self.data[start : start + int(self.lengths[i])].tobytes().decode("utf-8")

    def texts(self) -> np.ndarray:
        """(n,) object array of str, None where empty: for small tables (one Python str a row)."""
        whole = self.data.tobytes()
        return np.array(
            [whole[a : a + n].decode("utf-8") or None
             for a, n in zip(self.starts.tolist(), self.lengths.tolist(), strict=True)],
            dtype=object,
        )  # fmt: skip

    def words(self) -> list[Word]:
        """The rows as words of 8 bytes, ``ceil(max length / 8)`` of them: with
        :attr:`lengths`, the rows exactly."""
        widest = int(self.lengths.max()) if len(self) else 0
        if not widest:
            return []
        padded = np.zeros(len(self.data) + widest + 8, np.uint8)  # every start + k reads in it
        padded[: len(self.data)] = self.data
        # Every byte position's following 8 bytes, as one (unaligned, overlapping) uint64.
        at = np.ndarray((len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
        shortest = int(self.lengths.min())
        out = []
        for k in range(0, widest, 8):
            rows = None
            if shortest <= k and 2 * int(np.count_nonzero(self.lengths > k)) < len(self):
                rows = np.flatnonzero(self.lengths > k)
            starts = self.starts if rows is None else self.starts[rows]
            lengths = self.lengths if rows is None else self.lengths[rows]
            word = at[starts + k]
            if int(lengths.min()) < k + 8:  # some row ends inside this word: zero past it
                word &= _LOW_BYTES[np.minimum(np.maximum(lengths - k, 0), 8)]
            out.append(Word(rows, word))
        return out


class Table:
    """One record type's rows, as the reader returned them (any number of chunks).

    ``source`` is an object with ``__arrow_c_stream__`` whose rows are structs (a table),
    or None for a record type the file does not hold (no rows; every column reads empty).
    """

    def __init__(self, source: Any = None) -> None:
        self._columns: dict[str, tuple[int, str]] = {}  # name -> (child index, format)
        self._chunks: list[tuple[Any, Any]] = []  # (imported array, its view)
        self._pieces: dict[str, list[_Piece]] = {}  # the columns read so far
        self.num_rows = 0
        if source is None:
            return
        stream = c_array_stream(source)
        schema = stream.get_schema()
        for i in range(schema.n_children):
            self._columns[schema.child(i).name] = (i, schema.child(i).format)
        for array in stream:
            view = c_array_view(array)
            self._chunks.append((array, view))
            self.num_rows += view.length

    def _of(self, name: str) -> list[_Piece]:
        """The column's pieces, one per chunk (looked at on first use: decoding reads a
        handful of a record's 20-odd fields)."""
        if name in self._pieces or not self._columns:
            return self._pieces.get(name, [])
        if name not in self._columns:
            raise KeyError(f"no column {name!r}")
        i, format = self._columns[name]
        pieces = []
        for array, view in self._chunks:
            child = view.child(i)
            start, buffers = view.offset + child.offset, tuple(child.buffers)
            pieces.append(_Piece(format, start, view.length, child.null_count, buffers, array))
        self._pieces[name] = pieces
        return pieces

    def nulls(self, name: str) -> np.ndarray:
        """(n,) bool, True where the record left the field out."""
        parts = [
            np.zeros(p.length, bool) if (missing := p.missing()) is None else missing
            for p in self._of(name)
        ]
        return np.concatenate(parts) if parts else np.zeros(0, bool)

    def values(self, name: str, dtype: Any = None, fill: Any = 0) -> np.ndarray:
        """(n,) a fixed-width column as numpy (its own dtype unless ``dtype``); ``fill``
        where null. A view of the reader's memory where nothing needs converting."""
        parts = []
        for p in self._of(name):
            kind = np.dtype(_NUMBERS[p.format])
            target = np.dtype(dtype or kind)
            values = p.buffer(1, kind)[p.offset : p.offset + p.length]
            missing = p.missing()
            if missing is not None:
                values = values.astype(target)  # a copy: the reader's memory is read-only
                values[missing] = fill
            elif kind.kind in "iu" and target.kind in "iu" and kind.itemsize == target.itemsize:
                values = values.view(target)  # uint64 sequence numbers as int64: no copy
            parts.append(values.astype(target, copy=False))
        if not parts:
            return np.zeros(0, dtype or np.int64)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def strings(self, name: str) -> Strings:
        """A string or binary column's rows as offsets into its bytes (a null row is empty)."""
        starts, lengths, data, base = [], [], [], 0
        pieces = self._of(name)
        for p in pieces:
            bounds = p.buffer(1, _VARIABLE[p.format])[p.offset : p.offset + p.length + 1]
            lo, hi = int(bounds[0]), int(bounds[-1])
            if len(pieces) > 1 or lo:
                bounds = bounds.astype(np.int64) - lo + base
            size = np.diff(bounds)
            missing = p.missing()
            if missing is not None:  # a null row may have bytes (Arrow allows it): not its value
                size[missing] = 0
            data.append(p.buffer(2, np.uint8)[lo:hi])
            starts.append(bounds[:-1])
            lengths.append(size)
            base += hi - lo
        if not data:
            return Strings(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8))
        if len(data) == 1:
            return Strings(starts[0], lengths[0], data[0])
        return Strings(np.concatenate(starts), np.concatenate(lengths), np.concatenate(data))

    def first_byte(self, name: str) -> np.ndarray:
        """(n,) uint8 first byte of a B1 column (PART_FLG, TEST_FLG), 0 where left out."""
        column = self.strings(name)
        if not len(column.data):
            return np.zeros(len(column), np.uint8)
        at = np.minimum(column.starts, len(column.data) - 1)
        return np.where(column.lengths > 0, column.data[at], 0).astype(np.uint8)
