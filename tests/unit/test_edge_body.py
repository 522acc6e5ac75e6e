"""The edge's reading of a body: its declared length, its coding, a client that leaves."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import zlib
from typing import Any

import pytest

from ensemble.errors import ServiceError, Stopping, Unavailable
from ops.access import Access, RouteTable
from ops.body import PIECE_BYTES, BodyRefused, Inflater, coding, declared_length
from ops.edge import EdgeConfig, EdgeMiddleware, render

LIMIT = 1 << 20


@pytest.mark.parametrize(
    "values",
    [["+45"], ["-1"], ["45 "], [" 45"], ["045"], ["4_5"], ["٤٥"], ["²"], ["0x2d"], ["45, 45"]],
)
def test_a_content_length_that_is_not_plain_ascii_digits_is_400(values: list[str]) -> None:
    with pytest.raises(BodyRefused) as caught:
        declared_length(values, LIMIT)
    assert caught.value.status == 400 and "Content-Length" in caught.value.message


def test_content_length_sizes_and_repeats() -> None:
    assert declared_length([], LIMIT) is None
    assert declared_length(["0"], LIMIT) == 0
    assert declared_length(["45", "45"], LIMIT) == 45
    with pytest.raises(BodyRefused, match="2 different values"):
        declared_length(["45", "4"], LIMIT)
    for huge in (str(LIMIT + 1), "9" * 19, "9" * 5000):  # int() raises past 4,300 digits
        with pytest.raises(BodyRefused) as caught:
            declared_length([huge], LIMIT)
        assert caught.value.status == 413


def test_codings() -> None:
    assert coding([]) is None and coding(["identity"]) is None
    assert coding(["GZIP"]) == "gzip" and coding(["deflate"]) == "deflate"
    for other in (["br"], ["zstd"], ["gzip, br"], ["gzip", "gzip"]):
        with pytest.raises(BodyRefused) as caught:
            coding(other)
        assert caught.value.status == 415 and other[-1] in caught.value.message


def test_a_gzip_bomb_stops_at_the_limit_a_piece_at_a_time() -> None:
    bomb = gzip.compress(b" " * (50 * LIMIT))  # 50 MB in ~50 KB
    inflater = Inflater("gzip", LIMIT)
    with pytest.raises(BodyRefused) as caught:
        for piece in inflater.feed(bomb):
            assert len(piece) <= PIECE_BYTES
    assert caught.value.status == 413 and inflater.expanded <= LIMIT + PIECE_BYTES


def test_gzip_and_deflate_expand_across_pieces_and_bad_streams_are_400() -> None:
    raw = json.dumps({"features": list(range(50_000))}).encode()
    for name, packed in (("gzip", gzip.compress(raw)), ("deflate", zlib.compress(raw))):
        inflater = Inflater(name, 10 * LIMIT)
        out = b"".join(
            p for i in range(0, len(packed), 999) for p in inflater.feed(packed[i : i + 999])
        )
        inflater.finish()
        assert out == raw
    for bad, why in ((b"{not gzip", "not valid gzip"), (gzip.compress(raw)[:500], "ended inside")):
        inflater = Inflater("gzip", 10 * LIMIT)
        with pytest.raises(BodyRefused, match=why) as caught:
            list(inflater.feed(bad))
            inflater.finish()
        assert caught.value.status == 400
    with pytest.raises(BodyRefused, match="after the end"):
        list(Inflater("gzip", LIMIT).feed(gzip.compress(b"{}") + b"junk"))


def _run(
    app: Any, messages: list[dict[str, Any]], headers: list[tuple[bytes, bytes]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Send one POST /predict through the edge to ``app``: what went out, kinds counted."""
    kinds: list[str] = []
    config = EdgeConfig(max_body_bytes=LIMIT, count_error=kinds.append)
    sent: list[dict[str, Any]] = []
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": headers}
    # A table of its own: the service's /predict is declared only once service.py is
    # imported, which made these tests pass or fail by the order files ran in.
    routes = RouteTable()
    routes.declare("/predict", Access.PREDICT, "application/json")  # as service.py does
    asyncio.run(EdgeMiddleware(app, config, routes)(scope, receive, send))
    return sent, kinds


async def _read_then_answer(scope: Any, receive: Any, send: Any) -> None:
    """Like BentoML: read the whole body, answer 500 if the client left (ClientDisconnect)."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            status, body = 500, b'{"error": "An unexpected error has occurred"}'
            break
        body += message.get("body", b"")
        if not message.get("more_body"):
            status = 200
            break
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_a_client_that_leaves_mid_body_is_not_answered_and_counted_apart() -> None:
    half = [{"type": "http.request", "body": b'{"features": [1.2,', "more_body": True}]
    sent, kinds = _run(_read_then_answer, half, [(b"content-length", b"100")])
    # Not the handler's answer: only the empty 499 that ends the request (the server drops
    # it; BentoML's timeout middleware waits for a response to start, 60 s, without it).
    assert kinds == ["client_disconnected"]
    assert [m.get("status") for m in sent] == [499, None] and sent[1]["body"] == b""


def test_a_gzip_body_reaches_the_handler_expanded_without_its_framing() -> None:
    raw = b'{"features": [1.2, 100, 2000, 25, 50, 0.95]}'
    packed = gzip.compress(raw)
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["headers"])
        await _read_then_answer(scope, receive, send)

    headers = [(b"content-encoding", b"gzip"), (b"content-length", str(len(packed)).encode())]
    half = len(packed) // 2
    messages = [
        {"type": "http.request", "body": packed[:half], "more_body": True},
        {"type": "http.request", "body": packed[half:], "more_body": False},
    ]
    sent, kinds = _run(app, messages, headers)
    assert sent[0]["status"] == 200 and sent[1]["body"] == raw and kinds == []
    assert seen == [[]]


def test_a_field_bentoml_forbids_is_422_naming_it_and_the_fields_there_are() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        detail = [{"type": "extra_forbidden", "loc": ["deviceId"], "msg": "Extra inputs"}]
        body = json.dumps({"error": "1 validation error for Input", "detail": detail}).encode()
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": body})

    sent, kinds = _run(app, [{"type": "http.request", "body": b"{}"}], [])
    answer = json.loads(sent[1]["body"])
    assert sent[0]["status"] == 422 and answer["field"] == "deviceId"
    assert answer["error"] == (
        "deviceId: unknown field; the fields are features, device_id, wafer_id, lot_id"
    )
    assert kinds == ["bad_input"]


@pytest.mark.parametrize(
    ("media", "framing", "says"),
    [
        ("application/json", "length", "send fewer devices"),
        ("application/octet-stream", "length", "split it by wafer"),
        ("application/octet-stream", "chunked", "split it by wafer"),
        ("application/octet-stream", "gzip", "split it by wafer"),
    ],
)
def test_the_413_says_what_to_send_instead_on_each_kind_of_route(
    media: str, framing: str, says: str
) -> None:
    """A file route's 413 names the file and its limit in bytes; a JSON route's, devices."""
    table = RouteTable()
    table.declare("/in", Access.PREDICT, media)
    big = b"\x00" * (LIMIT + 1)
    headers = [(b"content-type", media.encode())]
    if framing == "length":
        headers.append((b"content-length", str(len(big)).encode()))
    if framing == "gzip":
        big = gzip.compress(big)
        headers.append((b"content-encoding", b"gzip"))
    ran: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        ran.append(True)
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    pieces = [big[i : i + 65536] for i in range(0, len(big), 65536)]
    queue = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1}
             for i, p in enumerate(pieces)]  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    edge = EdgeMiddleware(app, EdgeConfig(max_body_bytes=LIMIT), routes=table)
    scope = {"type": "http", "method": "POST", "path": "/in", "headers": headers}
    asyncio.run(edge(scope, receive, send))
    assert sent[0]["status"] == 413
    error = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))["error"]
    assert says in error and "YIELD_ENSEMBLE_MAX_BODY_MB" in error, error
    if media == "application/octet-stream":
        assert f"over the body limit of {LIMIT} bytes" in error and "devices" not in error
    assert ran == ([] if framing == "length" else [True])  # a declared length: never read


@pytest.mark.parametrize(
    ("error", "level"),
    [
        (Stopping("this worker is stopping"), logging.WARNING),
        (Unavailable("the members are away"), logging.ERROR),
    ],
    ids=["routine", "ours"],
)
def test_a_routine_503_is_logged_at_warning_and_another_at_error(
    error: ServiceError, level: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker refusing queued reads as it stops is a normal rollout, not an incident: an
    alert on ERROR lines stays quiet; a 503 of ours is still an ERROR. Both are counted."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await render(error)(scope, receive, send)

    with caplog.at_level(logging.INFO, logger="ops.edge"):
        sent, kinds = _run(app, [{"type": "http.request", "body": b"{}"}], [])
    assert sent[0]["status"] == 503 and kinds == [error.kind]
    assert (b"retry-after", b"1") in sent[0]["headers"]
    (line,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert line.levelno == level
