"""yield-ensemble's entry service: its routes, one dependency per model family, its hooks.

Wiring only. Each predict route is a request format (``ensemble.formats``) run through
the one prediction pipeline (``ensemble.pipeline``); the worker's parts are built in
``entry.runtime``, start-up checks are ``entry.startup``, readiness ``entry.health``, the
reads ``entry.reads``. Every route is declared with the access it needs
(``ops.access``); the edge (``ops.edge``) authenticates, limits bodies and renders,
logs and counts every error. Serve with ``bentoml serve`` from the repository root.
"""

from __future__ import annotations

from typing import Annotated, Any

import bentoml
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import entry.preflight  # first of ours: a bad setting stops start-up in one line
from ensemble.formats import RECORDS, SINGLE, WAFER
from ensemble.pipeline import Format
from ensemble.settings import get_settings
from entry import health
from entry.answers import answer, request_id
from entry.feedback import feedback as record_feedback
from entry.feedback import feedback_file
from entry.reads import dashboard_app, report_app
from entry.runtime import TRAFFIC_TIMEOUT_S, Runtime, current, install, served_schema
from entry.startup import check_deployment, check_keys, load_version
from models import bentoml_quirks
from models.base import decision_reference
from models.services import MEMBER_SERVICES
from ops import logs, openapi
from ops.access import FILE_MEDIA, ROUTES, Access
from ops.admin import admin_app
from ops.api_docs import (
    ANSWER_DOC,
    DIE_DOC,
    FEATURES_DOC,
    ID_DOC,
    OUTCOMES_DOC,
    WAFER_FEATURES_DOC,
    WAFER_IDS_DOC,
)
from ops.docs_page import docs_app
from ops.edge import EdgeConfig, EdgeMiddleware
from ops.settings import get_ops_settings
from stdf.format import STDF

# Every area's settings, validated by ``entry.preflight`` before any of ours was imported.
SETTINGS, OPS = get_settings(), get_ops_settings()
# Before BentoML's worker builds its uvicorn config, which it does after loading this module.
bentoml_quirks.serve_connections(OPS.keepalive_s, OPS.header_timeout_s)
JSON = "application/json"

#: The edge's settings, filled in by the entry worker (keys, metrics) when it starts.
EDGE = EdgeConfig(
    predict_requires_key=OPS.predict_requires_key,
    max_body_bytes=int(OPS.max_body_mb * (1 << 20)),
    new_request_id=bentoml_quirks.new_request_id,
)


class _Entry:
    """POST /predict, /predict_batch, /predict_wafer and /feedback.

    One dependency per model family (``models.families``), attached below as
    ``self.<member>`` before the class becomes the BentoML service.
    """

    @bentoml.on_deployment
    def _check_before_workers_start() -> None:
        # Runs once in the `bentoml serve` process: a bad store stops the server
        # with the message, instead of a worker restarting in a loop.
        try:
            check_deployment()
        except (RuntimeError, ValueError) as exc:  # a start-up check's message, not a bug's
            entry.preflight.cannot_start(exc)
        bentoml_quirks.exit_nonzero_on_worker_loss()

    def __init__(self) -> None:
        logs.configure(OPS.log_format, OPS.log_level)
        bentoml_quirks.quiet_client_errors()
        proxies = {m: getattr(self, m) for m in MEMBER_SERVICES}
        self.runtime: Runtime = install(Runtime(proxies, load_version()))
        bentoml_quirks.refuse_new_connections_on_sigterm(self.runtime.stopping)
        metrics = self.runtime.metrics
        EDGE.keys = check_keys()
        EDGE.count_error = lambda kind: metrics.errors.labels(kind=kind).inc()

    async def _predict(self, fmt: Format, body: Any) -> Any:
        """``body`` through the pipeline in ``fmt``. Returns a Response; the endpoints'
        dict annotation only types BentoML's schema."""
        work = self.runtime.pipeline.run(fmt, request_id(), body)
        return await answer(fmt.endpoint, work, self.runtime.observe)

    @bentoml.api(route=ROUTES.declare("/predict", Access.PREDICT, JSON))
    async def predict(
        self,
        features: Annotated[Any, Field(description=FEATURES_DOC)],
        # Any, not str | int: pydantic would turn true into 1 before our checks see it.
        device_id: Annotated[Any, Field(description=ID_DOC)] = None,
        wafer_id: Annotated[Any, Field(description=ID_DOC)] = None,
        lot_id: Annotated[Any, Field(description=ID_DOC)] = None,
    ) -> dict[str, Any]:
        """Pass/fail for one device. ``features``: a list in schema order, or name -> value."""
        body = {"features": features, "device_id": device_id, "wafer_id": wafer_id,
                "lot_id": lot_id}  # fmt: skip
        answer_: dict[str, Any] = await self._predict(SINGLE, body)
        return answer_

    @bentoml.api(route=ROUTES.declare("/predict_batch", Access.PREDICT, JSON))
    async def predict_batch(
        self,
        devices: Annotated[Any, Field(description="List of {features, device_id} objects.")],
    ) -> dict[str, Any]:
        """Pass/fail for many devices (a whole wafer); results keep the request's order."""
        answer_: dict[str, Any] = await self._predict(RECORDS, {"devices": devices})
        return answer_

    @bentoml.api(route=ROUTES.declare("/predict_wafer", Access.PREDICT, JSON))
    async def predict_wafer(
        self,
        features: Annotated[Any, Field(description=WAFER_FEATURES_DOC)],
        device_id: Annotated[Any, Field(description=WAFER_IDS_DOC)] = None,
        wafer_id: Annotated[Any, Field(description=WAFER_IDS_DOC)] = None,
        lot_id: Annotated[Any, Field(description=WAFER_IDS_DOC)] = None,
        die_x: Annotated[Any, Field(description=DIE_DOC)] = None,
        die_y: Annotated[Any, Field(description=DIE_DOC)] = None,
        answer: Annotated[Any, Field(description=ANSWER_DOC)] = "columns",
    ) -> dict[str, Any]:
        """Pass/fail for a whole wafer in columns: one feature matrix in, arrays out."""
        body = {"features": features, "device_id": device_id, "wafer_id": wafer_id,
                "lot_id": lot_id, "die_x": die_x, "die_y": die_y, "answer": answer}  # fmt: skip
        answer_: dict[str, Any] = await self._predict(WAFER, body)
        return answer_

    @bentoml.api(route=ROUTES.declare("/feedback", Access.FEEDBACK, JSON))
    async def feedback(
        self, outcomes: Annotated[Any, Field(description=OUTCOMES_DOC)]
    ) -> dict[str, Any]:
        """Record what final test said about devices we predicted; idempotent per prediction."""
        work = record_feedback(self.runtime, request_id(), outcomes)
        response: Any = await answer("/feedback", work, self.runtime.observe)
        return response  # type: ignore[no-any-return]

    @bentoml.on_startup
    def _start_following(self) -> None:
        self.runtime.start()

    @bentoml.on_shutdown
    def _flush_log(self) -> None:
        lost = self.runtime.shutdown()
        if lost:
            bentoml_quirks.report_loss(lost)

    def __is_alive__(self) -> bool:
        return health.alive(self.runtime)

    async def __is_ready__(self) -> bool:
        return await health.ready(self.runtime)


for _member, _service in MEMBER_SERVICES.items():
    setattr(_Entry, _member, bentoml.depends(_service))
# The training run's decision (``ensemble.decision``), referenced so `bentoml build` packs it
# beside the members; only when the store has one, since `bentoml serve` refuses to start
# with a reference it cannot find (a store trained before decisions serves unfitted rules).
_decision = decision_reference()
if _decision is not None:
    _Entry.decision_model = _decision  # type: ignore[attr-defined]
if SETTINGS.candidate_version is not None:
    _candidate_decision = decision_reference(SETTINGS.candidate_version)
    if _candidate_decision is not None:
        _Entry.candidate_decision_model = _candidate_decision  # type: ignore[attr-defined]


async def _predict_stdf(request: Request) -> Response:
    """POST /predict_stdf: a tester's STDF file (the body, gzip accepted), every die."""
    runtime = current()
    work = runtime.pipeline.run(STDF, request_id(), await request.body())
    return await answer(STDF.endpoint, work, runtime.observe)


async def _feedback_stdf(request: Request) -> Response:
    """POST /feedback_stdf: a final-test STDF file's outcomes for the dies we predicted."""
    runtime = current()
    body = await request.body()
    work = feedback_file(runtime, request_id(), body, runtime.pipeline.limits().max_bytes)
    return await answer("/feedback_stdf", work, runtime.observe)


#: Routes that take a raw body (BentoML's APIs take JSON), matched by exact path.
raw_app = Starlette(
    routes=[
        Route(ROUTES.declare(STDF.endpoint, Access.PREDICT, FILE_MEDIA), _predict_stdf,
              methods=["POST"]),
        Route(ROUTES.declare("/feedback_stdf", Access.FEEDBACK, FILE_MEDIA), _feedback_stdf,
              methods=["POST"]),
    ]
)  # fmt: skip


YieldEnsemble = bentoml.service(
    name="yield_ensemble",
    workers=OPS.entry_workers,
    traffic={"timeout": TRAFFIC_TIMEOUT_S},
    # BentoML's own probe of the members waits 5 s for a stopped one; __is_ready__ asks.
    runner_probe={"enabled": False, "timeout": 1, "period": 10},
    **bentoml_quirks.tracing_options(OPS.tracing, ["/predict", "/feedback"]),
)(_Entry)
for _app, _path in (
    (report_app, "/ab"),
    (dashboard_app, "/dashboard"),
    (admin_app(current), "/admin"),
    (docs_app, "/"),  # before BentoML's own "/" (its index page), which it adds after these
    (raw_app, "/"),  # last: BentoML's PassiveMount matches only its routes' own paths
):
    YieldEnsemble = bentoml.asgi_app(_app, path=_path)(YieldEnsemble)
YieldEnsemble.add_asgi_middleware(EdgeMiddleware, config=EDGE)
# Inside the edge (request id, error accounting): /readyz answered with its verdict as JSON.
YieldEnsemble.add_asgi_middleware(health.ReadinessRoute)
bentoml_quirks.refuse_unknown_fields(YieldEnsemble)
bentoml_quirks.add_openapi_paths("yield_ensemble", openapi.served(served_schema), openapi.finish)
