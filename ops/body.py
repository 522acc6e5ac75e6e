"""A request body as the edge takes it in: Content-Length, Content-Encoding, the bytes.

``declared_length`` reads Content-Length the way RFC 9110 writes it (ASCII digits) and
nothing else: no sign, no Unicode digits (``int`` reads '١٢' as 12), no spaces and no
leading zeros (the HTTP parser and ``int`` disagreed on '45 ' and '045': the request
hung until the client gave up), no size surprise (``int`` raises past 4,300 digits).
``Inflater`` expands a gzip or deflate body in bounded pieces and counts the *expanded*
bytes against the body limit, so a small compressed body cannot become a large one in
memory. ``Body`` is the receive channel the handler reads through.
"""

from __future__ import annotations

import re
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from typing import Any

from ensemble.validation import shown

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]

#: Content-Length: ``0`` or ASCII digits without a leading zero.
_LENGTH = re.compile("0|[1-9][0-9]*")
#: More digits than this is over any body limit (and over a signed 64-bit integer).
_MAX_DIGITS = 18
#: Content codings the JSON routes accept, and the zlib window bits that read them.
CODINGS = {"gzip": 31, "x-gzip": 31, "deflate": 15}
#: Largest piece of expanded body handed on at once.
PIECE_BYTES = 1 << 20


class BodyRefused(Exception):
    """The body cannot be taken: ``status`` (400, 413, 415) and the message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def declared_length(values: Sequence[str], limit: int) -> int | None:
    """The Content-Length of a request with these header values (None without one).

    Raises BodyRefused: 400 for a value that is not ASCII digits or for several values
    that differ, 413 over ``limit`` bytes.
    """
    lengths: set[str] = set()
    for text in values:
        # Nothing around the digits either: the HTTP parser waited for more body than
        # '45 ' or '045' said, until the client gave up.
        if not _LENGTH.fullmatch(text):
            raise BodyRefused(
                400,
                "Content-Length must be a whole number of bytes in ASCII digits, without "
                f"sign, spaces or leading zeros, got {shown(text)}",
            )
        lengths.add(text)
    if not lengths:
        return None
    if len(lengths) > 1:
        raise BodyRefused(400, f"Content-Length given {len(lengths)} different values")
    (text,) = lengths
    if len(text) > _MAX_DIGITS or int(text) > limit:
        raise BodyRefused(413, "")
    return int(text)


def coding(values: Sequence[str]) -> str | None:
    """The body's content coding from its Content-Encoding values: None for none (or
    identity), else a key of ``CODINGS``. Raises BodyRefused 415 naming any other coding,
    and any stack of codings (``gzip, br``)."""
    items = [i.strip(" \t").lower() for v in values for i in v.split(",")]
    items = [i for i in items if i and i != "identity"]
    if not items:
        return None
    if len(items) == 1 and items[0] in CODINGS:
        return items[0]
    raise BodyRefused(
        415,
        f"Content-Encoding {shown(', '.join(items))} is not supported; send the body "
        "uncompressed, or with gzip or deflate",
    )


class Inflater:
    """Expands one body of ``coding`` piece by piece; BodyRefused 413 past ``limit``
    expanded bytes, 400 for a body that is not valid ``coding`` (or ends early)."""

    def __init__(self, coding: str, limit: int) -> None:
        self.coding = coding
        self.limit = limit
        self.expanded = 0
        self._zlib = zlib.decompressobj(CODINGS[coding])

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The expanded bytes of ``data``, in pieces of at most ``PIECE_BYTES``."""
        if data and self._zlib.eof:
            raise self._bad("data after the end of the compressed stream")
        while data or not self._zlib.eof:
            try:
                piece = self._zlib.decompress(data, PIECE_BYTES)
            except zlib.error as exc:
                raise self._bad(str(exc)) from None
            self.expanded += len(piece)
            if self.expanded > self.limit:
                raise BodyRefused(413, "")
            if piece:
                yield piece
            data = self._zlib.unconsumed_tail
            if self._zlib.eof and self._zlib.unused_data:
                raise self._bad("data after the end of the compressed stream")
            if not data and len(piece) < PIECE_BYTES:
                break  # all input read and no output held back

    def finish(self) -> None:
        """The body ended: BodyRefused 400 if its compressed stream did not."""
        if not self._zlib.eof:
            raise self._bad("the body ended inside the compressed stream")

    def _bad(self, why: str) -> BodyRefused:
        return BodyRefused(400, f"the body is not valid {self.coding} (Content-Encoding): {why}")


class Body:
    """The request's body as the handler receives it: counted against ``limit`` (a
    chunked body never says its size), expanded by ``inflater`` if it is compressed.
    ``refused`` says why it was cut off; ``disconnected``, that the client left before
    sending all of it."""

    def __init__(self, receive: Receive, limit: int, inflater: Inflater | None) -> None:
        self._receive = receive
        self.limit = limit
        self.inflater = inflater
        self.seen = 0  # bytes received, as sent
        self.done = False  # the last piece was handed on
        self.refused: BodyRefused | None = None
        self.disconnected = False
        self._pieces: deque[bytes] = deque()
        self._ended = False  # the client's last piece arrived

    async def receive(self) -> Message:
        while not self.done:
            if self._pieces or self._ended:
                piece = self._pieces.popleft() if self._pieces else b""
                self.done = self._ended and not self._pieces
                return {"type": "http.request", "body": piece, "more_body": not self.done}
            message = await self._receive()
            if message["type"] != "http.request":
                self.disconnected = message["type"] == "http.disconnect"
                return message
            data = message.get("body", b"")
            self.seen += len(data)
            more = bool(message.get("more_body", False))
            try:
                if self.seen > self.limit:
                    raise BodyRefused(413, "")
                if self.inflater is None:
                    self.done = not more
                    return message
                self._pieces.extend(self.inflater.feed(data))
                if not more:
                    self.inflater.finish()
                    self._ended = True
            except BodyRefused as exc:
                self.refused = exc
                raise
        return await self._receive()  # after the body: only a disconnect comes
