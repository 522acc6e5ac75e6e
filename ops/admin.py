"""``/admin/serving``: read and change which model versions serve (the ``admin`` role).

GET shows the ledger's serving state, what this replica serves and the history of
changes with who made them and when. POST ``candidate``, ``promote`` and ``rollback``
change it for every replica (``ensemble.serving``); the entry applies the change
before it answers, and the other replicas follow within their poll interval. The
``yield-ensemble promote|rollback|candidate|status`` commands call these routes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ensemble.serving import InvalidChange, ServingState, check_version
from ensemble.switchboard import ServingUnavailable, Switchboard
from ensemble.validation import InvalidInput, number, parse_count, printable, shown
from ops.edge import current, json_answer

#: Largest body an admin call needs.
MAX_BODY = 4096
REASON_CHARS = 500
HISTORY_MAX = 1000


class Admin(Protocol):
    """What these routes need of the entry service."""

    switch: Switchboard

    async def members_loaded(self) -> dict[str, Any]: ...


class Malformed(InvalidInput):
    """A body that is not a JSON object at all: 400, as BentoML answers on the other routes."""

    status_code = 400


def _answer(status: int, body: Mapping[str, Any]) -> JSONResponse:
    """The answer; an error one is counted and logged by the edge, by its status."""
    state = current()
    return json_answer(body, state.request_id if state else "", status)


async def _body(request: Request, allowed: set[str]) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise Malformed("body", f"at most {MAX_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise Malformed("body", "is not JSON") from None
    except RecursionError:  # 4 KB of "[" is nested deeper than the parser goes
        raise Malformed("body", "is nested too deeply") from None
    if not isinstance(body, dict):
        raise Malformed("body", "must be a JSON object")
    extra = sorted(set(body) - allowed)
    if extra:
        raise InvalidInput(extra[0], f"unknown field (fields: {', '.join(sorted(allowed))})")
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > REASON_CHARS):
        raise InvalidInput("reason", f"a text of at most {REASON_CHARS} characters")
    if reason is not None:
        printable(reason, "reason", allowed="\n\t")  # lines and tabs are a reason's own
    return body


def _who() -> str:
    state = current()
    return (state.key_id if state is not None else None) or "anonymous"


def _change(action: str, fields: set[str], make: Callable[[dict[str, Any]], Any]) -> Route:
    """POST /serving/<action>: ``make(body)`` gives the transition; 409 if it cannot apply."""

    async def handle(request: Request) -> JSONResponse:
        service: Admin = bentoml.get_current_service()
        try:
            body = await _body(request, fields | {"reason"})
            transition = make(body)
        except InvalidInput as exc:
            return _answer(exc.status_code, {"error": str(exc), "field": exc.field})
        try:
            state = await service.switch.change(action, transition, _who(), body.get("reason"))
        except InvalidChange as exc:
            return _answer(409, {"error": str(exc)})
        except RuntimeError as exc:  # a member could not load the version
            return _answer(503, {"error": str(exc)})
        versions = service.switch.serving.versions()
        return _answer(200, {"state": state.as_dict(), "versions": versions})

    return Route(f"/serving/{action}", handle, methods=["POST"])


def _candidate(body: dict[str, Any]) -> Callable[[ServingState], ServingState]:
    if "version" not in body:
        raise InvalidInput("version", "missing (a model-store version, or null to stop one)")
    version = body["version"]
    if version is not None:
        try:
            check_version(version)
        except ValueError as exc:
            raise InvalidInput("version", str(exc).split(": ", 1)[1]) from None
        if version == "latest":
            # Every replica would resolve it on its own, and to another run after training.
            raise InvalidInput("version", "name a trained version (yield-ensemble status, "
                               "bentoml models list), not latest")  # fmt: skip
    share = 0.0
    if version is not None:
        if "share" not in body:
            raise InvalidInput("share", "missing (the candidate's share of traffic, e.g. 0.1)")
        share = number(body["share"], "share")
        if not 0 < share <= 1:
            raise InvalidInput("share", f"must be in (0, 1], got {shown(body['share'])}")

    # At most what the configured arms leave the ensemble arm.
    service: Admin = bentoml.get_current_service()
    most = service.switch.fleet.arms[0].share
    return lambda state: state.with_candidate(version, share, most)


async def _status(request: Request) -> JSONResponse:
    service: Admin = bentoml.get_current_service()
    q = request.query_params
    try:
        extra = sorted(set(q) - {"history"})
        if extra:
            raise InvalidInput(extra[0], "unknown query parameter (history)")
        # Not isdecimal and int(): '١' passes both, and int() raises past 4,300 digits.
        history = parse_count(q.get("history"), "history", 20, 0, HISTORY_MAX)
    except InvalidInput as exc:
        return _answer(exc.status_code, {"error": str(exc), "field": exc.field})
    try:
        status = await asyncio.to_thread(service.switch.status, history)
    except ServingUnavailable as exc:
        return _answer(503, {"error": str(exc)})
    status["here"]["members"] = await service.members_loaded()
    return _answer(200, status)


admin_app = Starlette(
    routes=[
        Route("/serving", _status, methods=["GET"]),
        _change("candidate", {"version", "share"}, _candidate),
        _change("promote", set(), lambda body: ServingState.promoted),
        _change("rollback", set(), lambda body: ServingState.rolled_back),
    ]
)
