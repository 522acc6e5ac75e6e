"""From a request body to Arrow tables: bounded gunzip, the FAR check, the reader.

The reader is stdf-convert (MIT; Rust, Arrow tables with each record's byte offset), read
through nanoarrow (:mod:`stdf.arrow`), not pyarrow. It reads a path, so the decompressed
bytes go to an anonymous in-memory file (``memfd``).
Two things it does not do are done here: it reads STDF V3 files as if they were V4 (so the
FAR is checked first), and its error for a truncated file names no position (so on an
error the records are walked here to find the one cut short).
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import os
import struct
import sys
import tempfile
import zlib
from collections.abc import Iterator
from types import ModuleType

import numpy as np

from stdf.arrow import Table
from stdf.errors import StdfInvalid, StdfTooLarge

#: Gzip's first two bytes.
GZIP_MAGIC = b"\x1f\x8b"
#: Decompressed bytes produced per step: the memory a gzip bomb can take beyond the limit.
CHUNK = 1 << 20
#: Record (REC_TYP, REC_SUB) -> name, STDF V4 (and V4-2007's own).
RECORD_NAMES: dict[tuple[int, int], str] = {
    (0, 10): "FAR", (0, 20): "ATR", (0, 30): "VUR", (1, 10): "MIR", (1, 20): "MRR",
    (1, 30): "PCR", (1, 40): "HBR", (1, 50): "SBR", (1, 60): "PMR", (1, 62): "PGR",
    (1, 63): "PLR", (1, 70): "RDR", (1, 80): "SDR", (1, 90): "PSR", (1, 91): "NMR",
    (1, 92): "CNR", (1, 93): "SSR", (1, 94): "CDR", (2, 10): "WIR", (2, 20): "WRR",
    (2, 30): "WCR", (5, 10): "PIR", (5, 20): "PRR", (10, 30): "TSR", (15, 10): "PTR",
    (15, 15): "MPR", (15, 20): "FTR", (15, 30): "STR", (20, 10): "BPS", (20, 20): "EPS",
    (50, 10): "GDR", (50, 30): "DTR",
}  # fmt: skip
#: What decoding needs; every other record type is skipped while parsing.
NEEDED = ("MIR", "WIR", "PIR", "PRR", "PTR")


def record_name(rec_typ: int, rec_sub: int) -> str:
    """``PTR`` for (15, 10); ``record type 180/1`` for one the standard does not name."""
    return RECORD_NAMES.get((rec_typ, rec_sub), f"record type {rec_typ}/{rec_sub}")


def unpack(data: bytes, max_bytes: int) -> bytes:
    """``data``, gunzipped if it starts with gzip's magic; at most ``max_bytes`` either way.

    Decompression stops as soon as the output passes ``max_bytes``, so a small file that
    expands to gigabytes takes at most ``max_bytes + CHUNK`` of memory. Raises StdfInvalid:
    413 past the limit, 422 for a corrupt gzip stream.
    """
    if not data.startswith(GZIP_MAGIC):
        if len(data) > max_bytes:
            raise StdfTooLarge(f"the file is {len(data)} bytes, over the limit of {max_bytes}")
        return data
    parts: list[bytes] = []
    size = 0
    rest = data
    try:
        while rest.startswith(GZIP_MAGIC):  # concatenated gzip members are one stream
            inflater = zlib.decompressobj(wbits=31)
            chunk = inflater.decompress(rest, CHUNK)
            while True:
                size += len(chunk)
                if size > max_bytes:
                    raise StdfTooLarge(
                        f"the gzip file expands past the limit of {max_bytes} bytes "
                        f"(refused while decompressing, after {size} bytes)",
                        offset=size,
                    )
                parts.append(chunk)
                if inflater.eof or not inflater.unconsumed_tail:
                    break
                chunk = inflater.decompress(inflater.unconsumed_tail, CHUNK)
            if not inflater.eof:
                raise StdfInvalid("the gzip stream ends early (truncated .gz file)", offset=size)
            rest = inflater.unused_data
    except zlib.error as exc:
        raise StdfInvalid(f"corrupt gzip stream: {exc}", offset=size) from None
    return b"".join(parts)


def byte_order(raw: bytes) -> str:
    """``>`` or ``<`` from the FAR that must open the file; StdfInvalid for anything else.

    Refuses a file that does not start with a FAR (not STDF) and STDF V3 (FAR STDF_VER 3).
    """
    if len(raw) < 6 or raw[2:4] != b"\x00\x0a" or raw[0:2] not in (b"\x00\x02", b"\x02\x00"):
        head = raw[:6].hex(" ") or "nothing"
        raise StdfInvalid(
            f"not an STDF file: it must open with a FAR record (REC_LEN 2, REC_TYP 0, "
            f"REC_SUB 10), found bytes {head}",
            record="first",
            offset=0,
        )
    cpu_type, version = raw[4], raw[5]
    if version != 4:
        raise StdfInvalid(
            f"STDF version {version} (FAR CPU_TYPE {cpu_type}, STDF_VER {version}): "
            "only STDF V4 and V4-2007 are read; convert older files with the tester's tools",
            record="FAR",
            offset=0,
        )
    return ">" if raw[0:2] == b"\x00\x02" else "<"


def records(raw: bytes, order: str, start: int = 0) -> Iterator[tuple[int, int, int, int]]:
    """Each record from ``start`` as (offset, REC_LEN, REC_TYP, REC_SUB); StdfInvalid at a
    truncated one."""
    header = struct.Struct(f"{order}HBB")
    offset, end = start, len(raw)
    while offset < end:
        if offset + 4 > end:
            raise StdfInvalid(
                f"truncated record header: {end - offset} of its 4 bytes before the end of "
                "the file",
                record="a",
                offset=offset,
            )
        length, typ, sub = header.unpack_from(raw, offset)
        if offset + 4 + length > end:
            raise StdfInvalid(
                f"truncated record: REC_LEN says {length} bytes, the file has "
                f"{end - offset - 4} left",
                record=record_name(typ, sub),
                offset=offset,
            )
        yield offset, length, typ, sub
        offset += 4 + length


@contextlib.contextmanager
def _as_path(raw: bytes) -> Iterator[str]:
    """A path holding ``raw``: an anonymous in-memory file where the OS has them."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("stdf", 0)
        try:
            with os.fdopen(os.dup(fd), "wb") as out:
                out.write(raw)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.NamedTemporaryFile(suffix=".stdf") as out:  # pragma: no cover (not Linux)
        out.write(raw)
        out.flush()
        yield out.name


def reader() -> ModuleType:
    """stdf-convert's native module, loaded without its package's ``__init__``.

    That ``__init__`` only wraps the native tables in pyarrow (170 MB, left out of the
    serving image); the native tables speak the Arrow PyCapsule interface themselves, and
    :mod:`stdf.arrow` reads them with nanoarrow. Raises ImportError where stdf-convert is
    not installed.
    """
    name = "stdf_convert._stdf_convert"
    if name in sys.modules:
        return sys.modules[name]
    package = importlib.util.find_spec("stdf_convert")
    if package is None or not package.submodule_search_locations:
        raise ImportError("No module named 'stdf_convert'", name="stdf_convert")
    loader = (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES)
    spec = importlib.machinery.FileFinder(
        next(iter(package.submodule_search_locations)), loader
    ).find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"No module named {name!r}", name=name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module  # the package's own ``from . import`` finds it here
    return module


def tables(raw: bytes, order: str, record_types: tuple[str, ...] = NEEDED) -> dict[str, Table]:
    """One :class:`stdf.arrow.Table` per record type of ``record_types`` present in the file.

    ``raw`` is decompressed STDF V4 whose FAR :func:`byte_order` checked. Raises StdfInvalid
    naming the record and offset when the reader refuses the file.
    """
    native = reader()
    try:
        with _as_path(raw) as path:
            found = {name: Table(t) for name, t in native.tables(path, list(record_types)).items()}
    except native.StdfError as exc:
        for _ in records(raw, order):  # raises at the truncated record, if that is the fault
            pass
        reason = str(exc).replace("/proc/self/fd/", "fd ")
        raise StdfInvalid(f"unreadable STDF file: {reason}") from None
    # The reader takes a file ending inside a record header for a clean end: walk the
    # records after the last one it returned (a file can only be cut short at its end).
    last_end = 6
    for table in found.values():
        if table.num_rows:
            ends = table.values("byte_offset", np.int64) + table.values("rec_len", np.int64)
            last_end = max(last_end, int(ends.max()) + 4)
    for _ in records(raw, order, last_end):
        pass
    return found
