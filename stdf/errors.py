"""The one error a tester's file can raise: a 4xx naming the problem, record and byte offset."""

from __future__ import annotations

from ensemble.errors import InvalidInput


class StdfInvalid(InvalidInput):
    """An STDF file that cannot be used (422); ``StdfTooLarge`` (413) for one too large.

    The message names the problem, the record type and the byte offset of the record
    in the decompressed stream, e.g. ``body: truncated PTR record at byte 6120: ...``.
    """

    def __init__(
        self,
        message: str,
        *,
        record: str | None = None,
        offset: int | None = None,
    ) -> None:
        where = ""
        if record is not None and offset is not None:
            where = f" ({record} record at byte {offset})"
        elif offset is not None:
            where = f" (at byte {offset})"
        super().__init__("body", f"{message}{where}")
        self.record = record
        self.offset = offset


class StdfTooLarge(StdfInvalid):
    """An STDF file over the body limit, as sent or as it decompresses (413)."""

    status = 413
    kind = "too_large"
