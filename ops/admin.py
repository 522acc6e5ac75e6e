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

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ensemble.errors import InvalidInput, Malformed, ServiceError
from ensemble.serving import ServingState, check_version
from ensemble.switchboard import Switchboard
from ensemble.validation import number, parse_count, printable, shown
from ops.access import ROUTES, Access
from ops.edge import current, json_answer, render

#: Largest body an admin call needs.
MAX_BODY = 4096
REASON_CHARS = 500
HISTORY_MAX = 1000


class Admin(Protocol):
    """What these routes need of the entry worker (``entry.runtime.Runtime``)."""

    switch: Switchboard

    async def members_loaded(self, key: str = "loaded") -> dict[str, Any]: ...


def _answer(body: Mapping[str, Any]) -> JSONResponse:
    state = current()
    return json_answer(body, state.request_id if state else "")


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


Make = Callable[[Admin, dict[str, Any]], Callable[[ServingState], ServingState]]


def _change(get: Callable[[], Admin], action: str, fields: set[str], make: Make) -> Route:
    """POST /serving/<action>: ``make(admin, body)`` gives the transition; 409 (Conflict)
    if it cannot apply, 503 if a member cannot load the version or the ledger is down."""
    ROUTES.declare(f"/admin/serving/{action}", Access.ADMIN, "application/json")

    async def handle(request: Request) -> JSONResponse:
        admin = get()
        try:
            body = await _body(request, fields | {"reason"})
            transition = make(admin, body)
            state = await admin.switch.change(action, transition, _who(), body.get("reason"))
        except ServiceError as exc:
            return render(exc)
        versions = admin.switch.serving.versions()
        return _answer({"state": state.as_dict(), "versions": versions})

    return Route(f"/serving/{action}", handle, methods=["POST"])


def _candidate(admin: Admin, body: dict[str, Any]) -> Callable[[ServingState], ServingState]:
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
    most = admin.switch.fleet.ensemble_share
    return lambda state: state.with_candidate(version, share, most)


def admin_app(get: Callable[[], Admin]) -> Starlette:
    """The ``/admin`` routes over the worker ``get()`` returns (declared admin-only)."""
    ROUTES.declare("/admin/serving", Access.ADMIN)

    async def status(request: Request) -> JSONResponse:
        try:
            return await _status(get(), request)
        except ServiceError as exc:
            return render(exc)

    return Starlette(
        routes=[
            Route("/serving", status, methods=["GET"]),
            _change(get, "candidate", {"version", "share"}, _candidate),
            _change(get, "promote", set(), lambda admin, body: ServingState.promoted),
            _change(get, "rollback", set(), lambda admin, body: ServingState.rolled_back),
        ]
    )


async def _status(admin: Admin, request: Request) -> JSONResponse:
    q = request.query_params
    extra = sorted(set(q) - {"history"})
    if extra:
        raise InvalidInput(extra[0], "unknown query parameter (history)")
    # Not isdecimal and int(): '١' passes both, and int() raises past 4,300 digits.
    history = parse_count(q.get("history"), "history", 20, 0, HISTORY_MAX)
    status = await asyncio.to_thread(admin.switch.status, history)
    status["here"]["members"] = await admin.members_loaded()
    # Which runtime each member answers a batch of each size with, and training's timings.
    status["here"]["runtimes"] = await admin.members_loaded("runtime_choice")
    return _answer(status)
