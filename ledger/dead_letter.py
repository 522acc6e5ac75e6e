"""The dead letter: prediction rows the database refused on their own, kept for an operator.

Rows land here with the error that refused them (``keep``); ``yield-ensemble log
--replay-dead-letter`` tries them again (``replay``). The files are a ``ledger.spool``
directory, ``dead-letter`` inside the spill directory.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from ledger.engine import error_text, storable
from ledger.spool import Spool

logger = logging.getLogger("ledger.predlog")


class DeadLetter:
    """Keep refused rows in ``spool`` (None: no spill directory, so they are lost)."""

    def __init__(self, spool: Spool | None) -> None:
        self.spool = spool

    def keep(self, refused: Sequence[tuple[Any, str]]) -> str:
        """Keep ``refused`` (record, why) pairs: "dead_letter" when kept, "lost" when the
        files cannot take them (each case logged once, naming up to ten request ids)."""
        now = time.time()
        entries = [
            json.dumps({"failed_at": now, "error": why, "record": record}, default=repr)
            for record, why in refused
        ]
        ids = [r[0] if isinstance(r, list) and r else "?" for r, _ in refused]
        try:
            if self.spool is None:
                raise OSError("no spill directory is configured")
            self.spool.append(entries)
        except OSError as exc:
            logger.error("prediction log lost %d refused rows %s (%s): %s", len(entries),
                         ids[:10], refused[0][1], exc)  # fmt: skip
            return "lost"
        logger.error("prediction log refused %d rows %s, kept in %s: %s", len(entries), ids[:10],
                     self.spool.directory, refused[0][1])  # fmt: skip
        return "dead_letter"

    def replay(self, insert: Callable[[list[list[Any]]], None]) -> tuple[int, int]:
        """Try every kept row again with ``insert`` (one transaction per row): (written,
        still refused). A row refused again stays, with its entry as it was."""
        if self.spool is None:
            return 0, 0
        self.spool.recover()
        segments = []
        while (segment := self.spool.claim_oldest()) is not None:
            segments.append(segment)
        written = refused = 0
        for segment in segments:
            keep = []
            for entry, why in segment.records():
                record = entry.get("record") if why is None else None
                good, _, _ = storable([record] if isinstance(record, list) else [])
                error = None
                if good:
                    try:
                        insert(good)
                    except sa.exc.SQLAlchemyError as exc:
                        error = error_text(exc)
                if good and error is None:
                    written += 1
                else:
                    refused += 1
                    keep.append(entry if why is None else {"error": why, "record": entry})
            self.spool.release(segment, [json.dumps(k, default=repr) for k in keep])
        return written, refused
