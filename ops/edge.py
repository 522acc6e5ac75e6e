"""The HTTP edge, as plain ASGI middleware around every route of the entry service.

One place decides, before a handler or BentoML reads the body: whether the route exists
(every route is declared with its access, ``ops.access``; an undeclared one is 404), who
may call it (API keys and roles), how large a body may be (413 unread; a Content-Length
that is not plain ASCII digits is 400), which media type and content coding are accepted
(415; gzip and deflate bodies are expanded on the way in, the limit counting the expanded
bytes, see ``ops.body``). It gives every request an id, and it is the one place every
error answer is rendered (``render``), counted once by kind and logged once: WARNING for
a client's mistake (no traceback) or a routine refusal (``ServiceError.routine``), ERROR
for ours. A field the route does not read is 422 naming it. A client that leaves before
sending its whole body is not answered: it is counted as ``client_disconnected``, logged
once at INFO, and its request ends at once (status 499 in BentoML's access log, the
"client closed request" of proxies' logs).
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse

from ensemble.errors import (
    BY_STATUS,
    Internal,
    InvalidInput,
    Malformed,
    NotFound,
    ServiceError,
    TooLarge,
    UnsupportedMedia,
    shown,
)
from ensemble.validation import REQUEST_FIELDS, unknown_field
from ops.access import FILE_MEDIA, ROUTES, RouteTable
from ops.auth import KeyRing
from ops.body import Body, BodyRefused, Inflater, coding, declared_length

logger = logging.getLogger("yield_ensemble.requests")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = "X-BentoML-Request-ID"

#: The status a request whose client left mid-body ends with (nginx's convention); the
#: client never sees it.
CLIENT_CLOSED = 499


@dataclass
class RequestState:
    """What the handler and the edge tell each other about one request."""

    request_id: str
    key_id: str | None = None
    started: float = field(default_factory=time.monotonic)  # when the edge took it
    error: ServiceError | None = None  # the error the handler answered with
    cause: BaseException | None = None  # what raised it, for an internal error's traceback


CURRENT: contextvars.ContextVar[RequestState | None] = contextvars.ContextVar(
    "yield_ensemble_request", default=None
)


@dataclass
class EdgeConfig:
    """Filled in by the service when its worker starts; read per request."""

    keys: KeyRing = field(default_factory=lambda: KeyRing([]))
    predict_requires_key: bool = False
    max_body_bytes: int = 32 << 20
    new_request_id: Callable[[], str] = lambda: "0" * 16
    count_error: Callable[[str], None] = lambda kind: None


class EdgeMiddleware:
    """See the module docstring. ``config`` is shared with the service that fills it."""

    def __init__(self, app: ASGIApp, config: EdgeConfig, routes: RouteTable = ROUTES) -> None:
        self.app = app
        self.config = config
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        config = self.config
        state = RequestState(config.new_request_id())
        token = CURRENT.set(state)
        try:
            await self._handle(scope, receive, send, state)
        finally:
            CURRENT.reset(token)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, state: RequestState
    ) -> None:
        config, path = self.config, scope["path"]
        values: dict[str, list[str]] = {}
        for k, v in scope["headers"]:
            values.setdefault(k.decode("latin-1").lower(), []).append(v.decode("latin-1"))
        headers = {k: v[-1] for k, v in values.items()}
        declared = self.routes.find(path)
        if declared is None:
            await self._refuse(send, state, path, NotFound(f"no route {shown(path)}"))
            return
        role = declared.access.role(config.predict_requires_key)
        if role is not None:
            try:
                state.key_id = config.keys.authenticate(headers.get("authorization"), role).id
            except ServiceError as exc:
                await self._refuse(send, state, path, exc)
                return
        inflater: Inflater | None = None
        if scope["method"] == "POST" and declared.body is not None:
            media = headers.get("content-type", declared.body).split(";")[0].strip().lower()
            try:
                if media != declared.body:
                    raise BodyRefused(
                        415, f"send Content-Type: {declared.body}, not {shown(media)}"
                    )
                declared_length(values.get("content-length", []), config.max_body_bytes)
                encoding = coding(values.get("content-encoding", []))
            except BodyRefused as exc:
                await self._refuse(send, state, path, self._typed(exc, declared.body))
                return
            if encoding is not None:
                inflater = Inflater(encoding, config.max_body_bytes)
                # The handler reads the expanded body: its length is not the one declared.
                framing = (b"content-length", b"content-encoding")
                scope = {
                    **scope,
                    "headers": [h for h in scope["headers"] if h[0].lower() not in framing],
                }
        body = Body(receive, config.max_body_bytes, inflater)
        started = False
        error_start: Message | None = None
        error_body = b""

        async def guarded_send(message: Message) -> None:
            nonlocal started, error_start, error_body
            if body.refused is not None or body.disconnected:
                return  # answered below, or nobody to answer
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", [])
                if not any(k.lower() == b"x-bentoml-request-id" for k, _ in message["headers"]):
                    message["headers"].append(
                        (REQUEST_ID_HEADER.lower().encode(), state.request_id.encode())
                    )
                if message["status"] >= 400:
                    error_start = message  # held until its body is known
                    return
                await send(message)
            elif message["type"] == "http.response.body" and error_start is not None:
                error_body += message.get("body", b"")
                if not message.get("more_body", False):
                    await self._finish_error(send, state, path, error_start, error_body)
            else:
                await send(message)

        try:
            await self.app(scope, body.receive, guarded_send)
        except (BodyRefused, ClientDisconnect):
            if body.refused is None and not body.disconnected:
                raise
        if body.refused is not None:
            await self._refuse(send, state, path, self._typed(body.refused, declared.body))
        elif body.disconnected:
            self._disconnected(state, path, body.seen)
            # Nobody reads this answer (the server drops it), but the middleware around
            # us waits for a response to start: BentoML's request timeout would hold the
            # request, and a SIGTERM's drain, for 60 s. 499 is the log's "client closed".
            await send({"type": "http.response.start", "status": CLIENT_CLOSED, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        elif not started:
            await self._refuse(send, state, path, Internal())

    def _typed(self, refused: BodyRefused, media: str | None) -> ServiceError:
        """``ops.body``'s refusal as the error it is, on a route taking ``media``."""
        if refused.status == 413:
            return TooLarge(refused.message or self._too_large(media))
        if refused.status == 415:
            return UnsupportedMedia(refused.message)
        field = "Content-Length" if refused.message.startswith("Content-Length") else "body"
        return Malformed(field, refused.message)

    def _disconnected(self, state: RequestState, path: str, received: int) -> None:
        """The client left before sending its whole body: not our error, no answer."""
        self.config.count_error("client_disconnected")
        fields = {
            "request_id": state.request_id,
            "endpoint": path,
            "kind": "client_disconnected",
            "received_bytes": received,
            **({"key_id": state.key_id} if state.key_id else {}),
        }
        logger.info("client disconnected before sending its body", extra={"fields": fields})

    def _too_large(self, media: str | None) -> str:
        """What to do about it: fewer devices, or on the tester-file routes a smaller file."""
        limit = self.config.max_body_bytes
        setting = f"{limit / (1 << 20):g} MB, YIELD_ENSEMBLE_MAX_BODY_MB"
        if media == FILE_MEDIA:
            return (f"the file is over the body limit of {limit} bytes ({setting}), as sent "
                    "or as it expands; split it by wafer")  # fmt: skip
        return f"request body over {setting}; send fewer devices"

    async def _finish_error(
        self, send: Send, state: RequestState, path: str, start: Message, body: bytes
    ) -> None:
        """An error answer: JSON with the request id, counted and logged once."""
        status = int(start["status"])
        try:
            parsed = json.loads(body or b"null")
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict) or parsed.get("request_id") != state.request_id:
            # BentoML's own answers (its pydantic 400s, its 500s): our shape, same detail.
            theirs = parsed if isinstance(parsed, dict) else {}
            text = theirs.get("error") or body[:200].decode("utf-8", "replace") or "error"
            parsed = {"error": str(text), "request_id": state.request_id}
            if "detail" in theirs:
                parsed["detail"] = theirs["detail"]
            unknown = _unknown_field(path, theirs.get("detail"))
            if unknown is not None:  # a field nobody reads: 422 naming it, as ours do
                status = start["status"] = 422
                state.error = unknown
                parsed = {"error": str(unknown), "request_id": state.request_id}
                parsed["field"] = unknown.field
            body = json.dumps(parsed).encode()
            kept = [
                (k, v)
                for k, v in start["headers"]
                if k.lower() not in (b"content-length", b"content-type")
            ]
            length = str(len(body)).encode()
            start["headers"] = [
                *kept,
                (b"content-type", b"application/json"),
                (b"content-length", length),
            ]
        self._account(state, path, status, str(parsed.get("error")))
        await send(start)
        await send({"type": "http.response.body", "body": body})

    async def _refuse(self, send: Send, state: RequestState, path: str, exc: ServiceError) -> None:
        """Answer ``exc`` before the route ran."""
        state.error = exc
        body = json.dumps({**exc.body(), "request_id": state.request_id}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (REQUEST_ID_HEADER.lower().encode(), state.request_id.encode()),
            *((k.lower().encode(), v.encode()) for k, v in exc.headers().items()),
        ]
        self._account(state, path, exc.status, str(exc))
        await send({"type": "http.response.start", "status": exc.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _account(self, state: RequestState, path: str, status: int, message: str) -> None:
        """Count and log one error answer: the one place every error is logged."""
        error = state.error
        kind = error.kind if error is not None else BY_STATUS.get(
            status, "client_error" if status < 500 else "internal"
        )  # fmt: skip
        self.config.count_error(kind)
        fields = {
            "request_id": state.request_id,
            "endpoint": path,
            "status": status,
            "kind": kind,
            "error": shown(message, 300, quote=False),
            **({"field": error.field} if error is not None and error.field else {}),
            **({"key_id": state.key_id} if state.key_id else {}),
        }
        if status < 500 or (error is not None and error.routine):
            logger.warning("request refused", extra={"fields": fields})
        elif kind == "internal":
            cause = state.cause
            exc_info = (type(cause), cause, cause.__traceback__) if cause is not None else None
            logger.error("internal error", exc_info=exc_info, extra={"fields": fields})
        else:
            logger.error(kind.replace("_", " "), extra={"fields": fields})


def _unknown_field(path: str, detail: Any) -> InvalidInput | None:
    """The error naming a body field that BentoML's input model forbids (its pydantic
    ``extra_forbidden`` detail), with the fields the route reads; None for other details."""
    if not isinstance(detail, list):
        return None
    for error in detail:
        if isinstance(error, dict) and error.get("type") == "extra_forbidden":
            loc = error.get("loc") or ["?"]
            field = ".".join(str(part) for part in loc)
            return unknown_field(field, REQUEST_FIELDS.get(path, ()))
    return None


def render(exc: ServiceError, cause: BaseException | None = None) -> JSONResponse:
    """The answer to a request that ended in ``exc``: what every handler of ours returns
    on an error (the edge logs and counts it, once). ``cause``: the unexpected exception
    behind an ``Internal`` error, whose traceback the log gets."""
    state = current()
    if state is not None:
        state.error, state.cause = exc, cause
    request_id = state.request_id if state is not None else ""
    response = json_answer(exc.body(), request_id, exc.status)
    response.headers.update(exc.headers())
    return response


def json_answer(body: Mapping[str, Any], request_id: str, status: int = 200) -> JSONResponse:
    """A JSON answer with the request's id in its body and its header: what every handler
    of ours answers, errors included (the edge counts and logs those)."""
    return JSONResponse(
        {"request_id": request_id, **body},
        status_code=status,
        headers={REQUEST_ID_HEADER: request_id},
    )


def current() -> RequestState | None:
    """The request being handled in this context, set by the edge."""
    return CURRENT.get()
