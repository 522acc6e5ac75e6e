"""The write-ahead journal: served predictions on disk before they are answered.

The writer keeps accepted rows in memory until its next batch (``flush_interval_s``);
a process killed in between would take them along, though their answers were sent.
So ``LogWriter.record`` first appends the request's predictions to this process's
journal file, with one ``write`` call: the bytes are in the kernel's page cache when
it returns, and survive the death of the process (not of the machine: no ``fsync``,
which would cost milliseconds per request). Once the writer has stored every journaled
request (database or spill) the file is emptied; a file of a process that is gone is
replayed by the next writer to start (``recover``), skipping rows the database already
has, so nothing is written twice.

An entry is pickled, in the cheaper faithful form for its size (``entry``): a request
of at most ``ROWS_UP_TO`` dies as its rows for the database (``Served.records``, lists of
plain values: the writer stores them as they are, and pickling them costs a few
microseconds where a ``Served``'s dozen small numpy arrays cost ~60 us, most of a single
die's journaling); a larger one as its ``ledger.tables.Served`` (numpy arrays: ~1 ms for
a 10,000-die wafer, whose rows the writer thread makes later, off the request path).
The directory is the process's own (mode 0700) and only this module reads it.
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ledger.engine import PredictionWrites, error_text
from ledger.spool import CLAIMED, _alive
from ledger.tables import Served

logger = logging.getLogger("ledger.predlog")
SUFFIX = ".journal"
#: Each entry: its length and its request's sequence number, then the pickled ``Served``
#: (or, for a small request, the pickled list of its records).
_HEADER = struct.Struct("<QQ")
#: Requests of at most this many dies are journaled and queued as their records.
ROWS_UP_TO = 32
#: A journal larger than this starts a new file; an old one is deleted once stored.
ROTATE_BYTES = 64 << 20
#: Journals this process has open: never an orphan, whatever else shares its pid.
_OPEN: set[Path] = set()


class Journal:
    """This process's journal in ``directory``; see the module docstring."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._closed: list[tuple[Path, int]] = []  # (file, last sequence number in it)
        self.failed: str | None = None  # why the last append failed, until one succeeds
        self._open_new()

    def _open_new(self) -> None:
        name = f"{os.getpid()}-{time.time_ns()}{SUFFIX}"
        self.path = self.directory / name
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        _OPEN.add(self.path)
        self._size = 0
        self._last = 0

    @classmethod
    def open(cls, directory: Path) -> Journal | None:
        """This process's journal, or None (logged) when its directory cannot be used: the
        log then works as before, rows in memory until written (``/readyz`` and ``/livez``
        already report a spill that does not work)."""
        try:
            return cls(directory)
        except OSError as exc:
            logger.error("prediction log journal cannot be opened in %s (served rows are not "
                         "safe from a crash of this process until written): %s",
                         directory, exc)  # fmt: skip
            return None

    @staticmethod
    def encode(entry: Served | Recorded) -> bytes:
        """``entry`` (see ``entry``) as an entry's body (done outside the writer's lock)."""
        body = entry.rows if isinstance(entry, Recorded) else entry
        return pickle.dumps(body, protocol=pickle.HIGHEST_PROTOCOL)

    def append(self, seq: int, blob: bytes) -> bool:
        """Journal request ``seq`` (``encode``'s bytes); False when the disk refused it
        (logged once: those rows then live in memory only until written)."""
        data = _HEADER.pack(len(blob), seq) + blob
        try:
            written = os.write(self._fd, data)
            if written != len(data):  # a full disk: the entry is cut, so drop it whole
                os.ftruncate(self._fd, self._size)
                raise OSError(f"journal {self.path.name}: wrote {written} of {len(data)} bytes")
        except OSError as exc:
            if self.failed is None:
                logger.error("prediction log journal failed (served rows are not safe from "
                             "a crash of this process until written): %s", exc)  # fmt: skip
            self.failed = str(exc)
            return False
        self.failed = None
        self._size += len(data)
        self._last = seq
        if self._size > ROTATE_BYTES:
            os.close(self._fd)
            _OPEN.discard(self.path)
            self._closed.append((self.path, self._last))
            self._open_new()
        return True

    def stored(self, done: int) -> None:
        """Every request up to ``done`` is in the database or the spill: forget them."""
        while self._closed and self._closed[0][1] <= done:
            path, _ = self._closed.pop(0)
            path.unlink(missing_ok=True)
        if self._size and self._last <= done:
            os.ftruncate(self._fd, 0)
            self._size = 0

    def close(self, everything_stored: bool) -> None:
        """Close; the files go when everything was stored, else they wait for ``recover``."""
        os.close(self._fd)
        _OPEN.discard(self.path)
        if everything_stored:
            for path, _ in self._closed:
                path.unlink(missing_ok=True)
            self.path.unlink(missing_ok=True)


class Recorded:
    """A small request's rows for the database, made when it is accepted: what the writer
    queues and the journal holds in place of its ``Served`` (see ``entry``)."""

    __slots__ = ("rows",)

    def __init__(self, rows: list[list[Any]]) -> None:
        self.rows = rows

    def records(self) -> list[list[Any]]:
        return self.rows


def entry(served: Served) -> Served | Recorded:
    """What to journal and queue for ``served``: its records when it has at most
    ``ROWS_UP_TO`` dies (cheaper to pickle, and made once), else itself."""
    if len(served.request_ids) <= ROWS_UP_TO:
        return Recorded(list(served.records()))
    return served


def orphans(directory: Path) -> Iterator[tuple[Path, list[Served | Recorded]]]:
    """Claim and read each journal of a process that is gone: (its claimed path, entries).

    A file of this process's pid that this process did not open is an orphan too (a
    restarted container often gets its predecessor's pid). Claiming is a rename (two
    writers never replay one file); a file whose claimer died is taken again. A cut last
    entry (the process died inside ``write``) is dropped: it was never answered.
    """
    try:
        paths = sorted(directory.iterdir())
    except OSError:
        return
    me = os.getpid()
    for path in paths:
        name = path.name
        if CLAIMED in name:
            claimer = name.rsplit(CLAIMED, 1)[1]
            if not claimer.isdecimal() or int(claimer) == me or _alive(int(claimer)):
                continue
            name = name.split(CLAIMED, 1)[0]
        else:
            owner = name.split("-", 1)[0]
            if not name.endswith(SUFFIX) or path in _OPEN or not owner.isdecimal():
                continue
            if int(owner) != me and _alive(int(owner)):
                continue
        claimed = path.with_name(f"{name}{CLAIMED}{me}")
        try:
            path.rename(claimed)
        except OSError:
            continue  # another writer claimed it first
        yield claimed, list(_entries(claimed.read_bytes()))


#: Stores records: ("written" | "spilled" | "held", rows stored); ``LogWriter._store``.
Store = Callable[[list[list[Any]], bool], tuple[str, int]]


def recover(
    journal: Journal, writes: PredictionWrites, store: Store
) -> Iterator[tuple[str, int, int]]:
    """Store each dead process's journaled rows the database does not have yet, then
    delete its file: per file (outcome, rows stored, rows recovered). A file that cannot
    be stored now (the database and the spill both refuse) is put back for later."""
    for path, entries in orphans(journal.directory):
        records = [rec for served in entries for rec in served.records()]
        try:
            missing = writes.not_stored(records)
        except sa.exc.SQLAlchemyError as exc:  # cannot tell what is stored: put it back
            logger.warning("prediction log cannot read the ledger to recover %s: %s",
                           path.name, error_text(exc))  # fmt: skip
            outcome, stored = "held", 0
        else:
            outcome, stored = store(missing, True) if missing else ("written", 0)
        if outcome == "held":
            path.rename(path.with_name(path.name.split(CLAIMED, 1)[0]))
            return
        path.unlink(missing_ok=True)
        logger.warning("prediction log recovered %d rows journaled by a process that died "
                       "(%d more were already stored)", len(missing),
                       len(records) - len(missing))  # fmt: skip
        yield outcome, stored, len(missing)


def _entries(data: bytes) -> Iterator[Served | Recorded]:
    at = 0
    while at + _HEADER.size <= len(data):
        n, _ = _HEADER.unpack_from(data, at)
        blob = data[at + _HEADER.size : at + _HEADER.size + n]
        if len(blob) < n:
            logger.warning("journal entry cut at byte %d (its process died writing it)", at)
            return
        body = pickle.loads(blob)
        if isinstance(body, Served):
            yield body
        elif isinstance(body, list):
            yield Recorded(body)
        at += _HEADER.size + n
