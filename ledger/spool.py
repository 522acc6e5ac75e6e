"""On-disk holding places of the prediction log: the spill and the dead letter.

The **spill** keeps rows while the database does not take writes (down, read-only,
unreachable); the writer replays it, oldest first, once the database is back, and
a restart finds it where it was. The **dead letter** keeps rows the database
refused on their own (the rest of their batch was written), with the error, for an
operator to inspect and replay (``yield-ensemble log``).

Both are directories of JSON-lines files. Each append is one file, written under
a temporary name, flushed to disk and renamed: a crash never leaves half a file. A
file's name carries its row count, so the spool's size is a directory listing and a
``stat`` per file, never a read of what may be a gigabyte of rows.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUFFIX = ".jsonl"
#: A segment being replayed carries this plus the replaying process's pid.
CLAIMED = ".replaying-"
#: What ``Spool.room`` asks of the spool: room for a few hundred rows, and a file that size.
ROOM_BYTES = 64 << 10


class SpoolFull(OSError):
    """The spool would grow past its configured size."""


@dataclass(frozen=True)
class Segment:
    path: Path
    lines: list[str]

    def readable(self) -> tuple[list[Any], list[tuple[Any, str]]]:
        """(the records that decode, (line, why) for each that does not)."""
        good: list[Any] = []
        bad: list[tuple[Any, str]] = []
        for record, why in self.records():
            if why is None:
                good.append(record)
            else:
                bad.append((record, why))
        return good, bad

    def records(self) -> Iterator[tuple[Any, str | None]]:
        """Each line decoded, or (None, why) for a line that cannot be read."""
        for line in self.lines:
            try:
                yield json.loads(line), None
            except ValueError as exc:
                yield line, f"unreadable line: {exc}"


class Spool:
    """A bounded directory of JSON-lines segments, appended and consumed whole."""

    def __init__(self, directory: Path, max_bytes: int | None = None) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._seq = 0

    def _segments(self) -> list[Path]:
        try:
            return sorted(p for p in self.directory.iterdir() if p.name.endswith(SUFFIX))
        except OSError:  # missing, or a failing disk: nothing to read
            return []

    def size(self) -> tuple[int, int]:
        """(rows, bytes) held (rows include claimed segments)."""
        rows = size = 0
        try:
            paths = [p for p in self.directory.iterdir() if SUFFIX in p.name]
        except OSError:
            return 0, 0
        for path in paths:
            try:
                size += path.stat().st_size
                rows += _rows_in(path)
            except OSError:  # consumed meanwhile
                continue
        return rows, size

    def append(self, lines: Sequence[str]) -> Path:
        """Store ``lines`` durably as one new segment; raises OSError or SpoolFull."""
        data = "".join(f"{line}\n" for line in lines).encode()
        if self.max_bytes is not None and self.size()[1] + len(data) > self.max_bytes:
            raise SpoolFull(f"{self.directory} would exceed {self.max_bytes} bytes")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        name = f"{time.time_ns():020d}-{os.getpid()}-{self._seq:06d}-{len(lines)}r{SUFFIX}"
        final = self.directory / name
        temporary = self.directory / f".{name}.tmp"
        with open(temporary, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        temporary.rename(final)
        return final

    def room(self) -> str | None:
        """None when a segment could be written now, else why not: the spool holds all but
        ``ROOM_BYTES`` of ``max_bytes``, or its directory takes no file of ``ROOM_BYTES``."""
        try:
            if self.max_bytes is not None and self.size()[1] + ROOM_BYTES > self.max_bytes:
                raise SpoolFull(f"{self.directory} is within {ROOM_BYTES} bytes of its limit")
            self.directory.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.directory) as f:
                f.write(bytes(ROOM_BYTES))
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            return f"{exc.__class__.__name__}: {exc}"
        return None

    def claim_oldest(self) -> Segment | None:
        """Take the oldest segment for this process, or None when the spool is empty.

        Claiming is a rename, so two processes sharing the spool never replay one
        segment twice; a segment claimed by a process that died is taken back.
        """
        self._release_orphans()
        for path in self._segments():
            claimed = path.with_name(f"{path.name}{CLAIMED}{os.getpid()}")
            try:
                path.rename(claimed)
            except FileNotFoundError:
                continue  # another process claimed it first
            except OSError:  # a read-only or failing disk: replay later
                return None
            return Segment(claimed, claimed.read_text(encoding="utf-8").splitlines())
        return None

    def release(self, segment: Segment, keep: Sequence[str] = ()) -> None:
        """Done with a claimed segment: delete it, or put back the ``keep`` lines."""
        if keep:
            self.append(keep)
        segment.path.unlink(missing_ok=True)

    def recover(self) -> None:
        """At start-up: take back every segment claimed by a process that is gone.

        This process's own pid counts as gone (it has claimed nothing yet): in a
        restarted container the new process often gets its predecessor's pid.
        """
        self._release_orphans(mine_too=True)

    def _release_orphans(self, mine_too: bool = False) -> None:
        try:
            paths = [p for p in self.directory.iterdir() if CLAIMED in p.name]
        except OSError:
            return
        for path in paths:
            pid = int(path.name.rsplit(CLAIMED, 1)[1])
            gone = (mine_too and pid == os.getpid()) or (pid != os.getpid() and not _alive(pid))
            if gone:
                try:
                    path.rename(path.with_name(path.name.split(CLAIMED, 1)[0]))
                except OSError:  # another process took it back first, or a read-only disk
                    continue


def _rows_in(path: Path) -> int:
    """The rows of a segment, from its name (``...-<rows>r.jsonl``, claimed or not)."""
    count = path.name.split(SUFFIX, 1)[0].rsplit("-", 1)[-1]
    if count.endswith("r") and count[:-1].isdigit():
        return int(count[:-1])
    return path.read_bytes().count(b"\n")  # a name without its count: read it


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
