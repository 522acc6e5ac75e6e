"""The read routes: ``GET /ab/report`` and ``GET /dashboard/...`` over the prediction log.

Each read waits in the runtime's own read threads (``Runtime.read``), at most a few at
once, and computes in the reads' own process (``entry.read_process``): a crowd of
dashboards queues there, never in front of a probe or a prediction, and its CPU is not
the entry worker's.
Every route is declared with its access where it is made (``ops.access``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ensemble.arms import ARM_NAME, ENSEMBLE
from ensemble.errors import Conflict, InvalidInput, NotFound
from ensemble.validation import parse_count, parse_identifier, parse_window, shown
from entry.answers import answer, request_id
from entry.read_process import on_engine
from entry.runtime import current
from ops.access import ROUTES, Access
from ops.edge import current as current_request

request_log = logging.getLogger("yield_ensemble.requests")


def _query(request: Request, allowed: set[str]) -> Any:
    q = request.query_params
    extra = set(q) - allowed
    if extra:
        names = ", ".join(sorted(allowed))
        raise InvalidInput(sorted(extra)[0], f"unknown query parameter ({names})")
    return q


async def _report(request: Request) -> dict[str, Any]:
    q = _query(request, {"since", "until", "arm"})
    since, until = parse_window(q.get("since"), q.get("until"))
    arm = q.get("arm") or None
    if arm is not None and not ARM_NAME.fullmatch(arm):
        raise InvalidInput("arm", f"must be an arm name like '{ENSEMBLE}', got {shown(arm)}")
    started = time.perf_counter()
    from ledger.queries import UnknownArm

    runtime = current()
    try:
        report = await runtime.read(runtime.report, since, until, arm)
    except UnknownArm as exc:
        raise InvalidInput("arm", str(exc)) from None
    state = current_request()
    request_log.info(
        "report",
        extra={
            "fields": {
                "request_id": request_id(),
                "endpoint": "/ab/report",
                "key_id": state.key_id if state else None,
                "window": {"since": since, "until": until, "arm": arm},
                "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            }
        },
    )
    return {"request_id": request_id(), **report}


async def ab_report(request: Request) -> Response:
    """GET /ab/report?since=&until=&arm=: the A/B accuracy report over the prediction log."""
    return await answer("/ab/report", _report(request))


_REPORT_PATH = ROUTES.declare("/ab/report", Access.REPORT)
report_app = Starlette(routes=[Route(_REPORT_PATH.removeprefix("/ab"), ab_report, methods=["GET"])])

#: Query parameters of the dashboard reads besides since and until.
_PAGE = {"limit", "offset"}


def _reference() -> Any:
    """The serving champion's reference distributions; Conflict if it was saved without."""
    champion = current().serving.champion
    if champion.reference is None:
        raise Conflict(
            f"version {champion.name} was saved without reference distributions; drift "
            "reads need a model trained by this release (yield-ensemble train)"
        )
    return champion.reference


def _dashboard_route(
    path: str, params: set[str], reader: str, module: str = "dashboard", **fixed: Any
) -> Route:
    """A GET route under /dashboard: checked query, log flushed, a ``ledger.<module>`` read
    (``dashboard``, ``spatial_read``, or ``drift``, which is handed the champion's reference).

    ``reader(engine, since=, until=, **fixed, **path and query params)`` runs in a read
    thread; None answers 404. ``ledger`` is imported on the first call: SQLAlchemy stays
    out of the member processes, which import the service module too.
    """
    endpoint = ROUTES.declare(f"/dashboard{path}", Access.REPORT)
    allowed = {"since", "until", *params}
    drift = module == "drift"

    async def read(request: Request) -> dict[str, Any]:
        import importlib

        from ledger import dashboard
        from ledger import drift as drift_reads

        reads = importlib.import_module(f"ledger.{module}")
        q = _query(request, allowed)
        since, until = parse_window(q.get("since"), q.get("until"))
        kwargs: dict[str, Any] = {}
        if "limit" in params:
            most = drift_reads.MAX_LIMIT if drift else dashboard.MAX_LIMIT
            default = most if path.endswith("/map") else 100
            kwargs["limit"] = parse_count(q.get("limit"), "limit", default, 1, most)
            kwargs["offset"] = parse_count(q.get("offset"), "offset", 0, 0, 2**31 - 1)
        if "lot_id" in params:
            kwargs["lot_id"] = parse_identifier(q.get("lot_id"), "lot_id")
        if "bucket_s" in params:
            low, high = drift_reads.BUCKETS_S
            kwargs["bucket_s"] = parse_count(q.get("bucket_s"), "bucket_s", 86400, low, high)
        for name, value in request.path_params.items():
            kwargs[name] = parse_identifier(value, name)
        if drift:
            kwargs["reference"] = _reference()
        runtime = current()
        # In the reads' own process; run again across a lost database connection there
        # (503 once ledger_retry_s is spent).
        body = await runtime.read(
            runtime.flushed_read, on_engine, getattr(reads, reader), since=since,
            until=until, what=endpoint, **fixed, **kwargs,
        )  # fmt: skip
        logged = {k: v for k, v in kwargs.items() if k != "reference"}
        request_log.info(
            "dashboard read",
            extra={"fields": {"request_id": request_id(), "endpoint": endpoint, **logged}},
        )
        if body is None:
            named = ", ".join(f"{k} {shown(kwargs[k])}" for k in request.path_params)
            raise NotFound(f"no predictions for {named or 'this read'} in the window")
        return {"request_id": request_id(), **body}

    async def handle(request: Request) -> Response:
        return await answer(endpoint, read(request))

    return Route(path, handle, methods=["GET"])


dashboard_app = Starlette(
    routes=[
        _dashboard_route("/wafers", {*_PAGE, "lot_id"}, "groups", by="wafer_id"),
        _dashboard_route("/lots", _PAGE, "groups", by="lot_id", lot_id=None),
        _dashboard_route("/wafers/{wafer_id}", set(), "wafer"),
        _dashboard_route("/wafers/{wafer_id}/map", _PAGE, "die_map"),
        _dashboard_route("/wafers/{wafer_id}/spatial", set(), "spatial", "spatial_read"),
        _dashboard_route("/drift/lots", _PAGE, "groups", "drift", by="lot_id", lot_id=None),
        _dashboard_route("/drift/wafers", {*_PAGE, "lot_id"}, "groups", "drift", by="wafer_id"),
        _dashboard_route("/drift/lots/{lot_id}", set(), "lot", "drift"),
        _dashboard_route("/drift/wafers/{wafer_id}", set(), "wafer", "drift"),
        _dashboard_route("/drift/timeline", {"bucket_s"}, "timeline", "drift"),
    ]
)
