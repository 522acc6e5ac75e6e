"""Tester files: STDF V4 in, parts-by-tests matrices out. No BentoML, no database.

``stdf.decode.decode(data, max_bytes=...)`` reads one file (gzip accepted) into :class:`Parts`;
:class:`TestMap` maps parts to a model's features the way it was trained; every refusal
is a :class:`StdfInvalid` (422, or 413 over the size limit) naming record and byte offset.
"""

from __future__ import annotations

from stdf.errors import StdfInvalid
from stdf.parts import NO_COORD, Parts, Test, concat

# ``stdf.decode.decode`` is not re-exported: the reader (stdf-convert's 12 MB native module,
# read through nanoarrow) is loaded by a process that reads a file, not every one that
# imports the service.
__all__ = ["NO_COORD", "Parts", "StdfInvalid", "Test", "concat"]
