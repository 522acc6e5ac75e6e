"""yield-ensemble's entry service: validation, parallel member calls, majority vote.

Wiring only: the maths lives in ``ensemble/``, the models in ``models/``.
Serve with ``bentoml serve`` from the repository root.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable
from typing import Annotated, Any

import bentoml
import numpy as np
from bentoml._internal.context import trace_context
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ensemble import EnsemblePredictor, InvalidInput, MembersUnavailable, logs
from ensemble.cache import PredictionCache
from ensemble.gc_tuning import tune_gc
from ensemble.metrics import ServiceMetrics
from ensemble.router import Router, SplitConfig
from ensemble.schema import FeatureSchema, common_schema
from ensemble.settings import MEMBERS, get_settings
from ensemble.split import CHALLENGER, ENSEMBLE
from ensemble.validation import (
    parse_batch,
    parse_features,
    parse_identifier,
    parse_outcomes,
    parse_time,
    split_key,
)
from models.base import model_schema, stored_model
from models.services import KerasMember, RandomForestMember, XGBoostMember

logger = logging.getLogger("yield_ensemble")
#: One line per request at the edge.
request_log = logging.getLogger("yield_ensemble.requests")
SETTINGS = get_settings()
FEATURES_DOC = (
    "The device's parametric measurements: a list in schema order "
    "(vdd_v, idd_ma, freq_mhz, temp_c, test_time_ms, neighbor_yield by default) "
    "or an object keyed by feature name."
)
ID_DOC = "Optional key; the first of device_id, wafer_id, lot_id given fixes the A/B arm."
OUTCOMES_DOC = (
    'Ground truth: [{"request_id": ..., "actual": "pass"|"fail"}] or with "device_id" '
    "instead of request_id (the device's latest prediction)."
)
MAX_OUTCOMES = 100_000


#: Response header with the request id; BentoML's name, set by us when tracing is off.
REQUEST_ID_HEADER = "X-BentoML-Request-ID"
#: Without an exporter BentoML still makes an OpenTelemetry span per request and per
#: member call; py-spy put it at ~30% of the entry's CPU, and a member call took
#: 2.3 ms instead of 4.2 without. Off for the hot paths unless tracing is wanted.
ENTRY_TRACING: dict[str, Any] = (
    {} if SETTINGS.tracing else {"tracing": {"excluded_urls": ["/predict", "/feedback"]}}
)


def _request_id() -> str:
    """The request's id: BentoML's span id when traced, else 16 random hex digits like it."""
    span = trace_context.request_id
    return format(span, "016x") if span is not None else secrets.token_hex(8)


def _member_call(proxy: Any) -> Any:
    """``proxy.to_async.predict_proba``, looked up per call: BentoML binds it after __init__."""

    async def call(rows: np.ndarray) -> np.ndarray:
        return await proxy.to_async.predict_proba(rows)

    return call


def check_members() -> tuple[FeatureSchema, dict[str, str]]:
    """The members' common schema and tags; raises ModelMissing or SchemaMismatch, both clear."""
    stored = {m: stored_model(m) for m in MEMBERS}
    # Models trained on different features would vote noise: refuse to start.
    schema = common_schema({m: model_schema(s) for m, s in stored.items()})
    return schema, {m: str(s.tag) for m, s in stored.items()}


def check_log() -> None:
    """Create the prediction log's tables; raises, naming the location, if it cannot be written."""
    from ensemble.predlog import PredictionLog

    try:
        log = PredictionLog(SETTINGS.log_url)
    except Exception as exc:
        raise RuntimeError(f"prediction log {SETTINGS.log_url} cannot be opened: {exc}") from exc
    problem = log.writable()
    log.close()
    if problem is not None:
        raise RuntimeError(problem)


def _error(status: int, message: str, request_id: str, **extra: Any) -> JSONResponse:
    body = {"error": message, "request_id": request_id, **extra}
    return JSONResponse(body, status_code=status, headers={REQUEST_ID_HEADER: request_id})


async def ab_report(request: Request) -> JSONResponse:
    """GET /ab/report?since=&until=&arm=: the A/B accuracy report over the prediction log."""
    service: YieldEnsemble = bentoml.get_current_service()
    request_id = _request_id()
    try:
        q = request.query_params
        extra = set(q) - {"since", "until", "arm"}
        if extra:
            raise InvalidInput(sorted(extra)[0], "unknown query parameter (since, until, arm)")
        since, until = parse_time(q.get("since"), "since"), parse_time(q.get("until"), "until")
        arm = q.get("arm") or None
        if arm not in (None, ENSEMBLE, CHALLENGER):
            raise InvalidInput("arm", f"must be '{ENSEMBLE}' or '{CHALLENGER}', got {arm!r}")
    except InvalidInput as exc:
        return service.bad_input("/ab/report", request_id, exc)
    report = await asyncio.to_thread(service.report, since, until, arm)
    return JSONResponse(
        {"request_id": request_id, **report}, headers={REQUEST_ID_HEADER: request_id}
    )


report_app = Starlette(routes=[Route("/report", ab_report, methods=["GET"])])


@bentoml.asgi_app(report_app, path="/ab")
@bentoml.service(
    name="yield_ensemble", workers=SETTINGS.entry_workers, traffic={"timeout": 60}, **ENTRY_TRACING
)
class YieldEnsemble:
    """POST /predict and /predict_batch: pass/fail for devices from parametric test data."""

    random_forest = bentoml.depends(RandomForestMember)
    xgboost = bentoml.depends(XGBoostMember)
    keras = bentoml.depends(KerasMember)

    @bentoml.on_deployment
    def _check_before_workers_start() -> None:
        # Runs once in the `bentoml serve` process: a bad store stops the server
        # with the message, instead of a worker restarting in a loop.
        check_members()
        check_log()

    def __init__(self) -> None:
        logs.configure(SETTINGS.log_format, SETTINGS.log_level)
        self.schema, self.model_versions = check_members()
        self.metrics = ServiceMetrics()
        self.metrics.set_models(self.model_versions)
        self._proxies = {m: getattr(self, m) for m in MEMBERS}
        self.predictor = EnsemblePredictor(
            {m: _member_call(proxy) for m, proxy in self._proxies.items()},
            timeout_s=SETTINGS.member_timeout_s,
            max_rows_per_call=SETTINGS.coalesce_max_rows,
            max_in_flight=SETTINGS.coalesce_max_in_flight,
            observer=self.metrics.member_call,
        )
        self.router = Router(
            self.predictor,
            PredictionCache(SETTINGS.cache_maxsize, SETTINGS.cache_ttl_s),
            SplitConfig(SETTINGS.challenger, SETTINGS.challenger_fraction, SETTINGS.split_salt),
            self.model_versions,
        )
        # Imported here, not at the top: `bentoml serve` and every member import this
        # module too, and SQLAlchemy is ~12 MB of RSS in each of them.
        from ensemble.predlog import PredictionLog, Retention

        days = SETTINGS.prediction_log_retention_days
        self.log = PredictionLog(
            SETTINGS.log_url,
            flush_interval_s=SETTINGS.prediction_log_flush_interval_s,
            retention=Retention(days * 86400 if days else None, SETTINGS.prediction_log_max_rows),
            on_written=self._log_written,
        )
        self.metrics.accuracy(self.log.accuracy_by_arm())
        self._members_verified = False
        tune_gc()
        logger.info("serving %s on features %s", self.model_versions, list(self.schema.names))
        logger.info("prediction log: %s", self.log.engine.url.render_as_string(hide_password=True))

    def _log_written(self, rows: int) -> None:
        """Called by the log's writer thread after each batch it wrote."""
        self.metrics.log_written.inc(rows)
        self.metrics.log_pending.set(self.log.pending_rows)

    @bentoml.on_shutdown
    def _flush_log(self) -> None:
        # Uvicorn has drained in-flight requests by now: everything served is queued.
        pending = self.log.pending_rows
        ok = self.log.close()
        logger.info("prediction log flushed %d rows at shutdown (%s)", pending,
                    "complete" if ok else "INCOMPLETE")  # fmt: skip

    async def __is_ready__(self) -> bool:
        """Ready once every member answers and serves the model version we report."""
        problem = self.log.writable()
        if problem is not None:
            logger.error("not ready: %s", problem)
            return False
        if self._members_verified:
            return True
        try:
            infos = await asyncio.gather(*(p.to_async.info() for p in self._proxies.values()))
        except Exception as exc:  # a member still starting up
            logger.info("not ready: %s", exc)
            return False
        for info in infos:
            expected = self.model_versions[info["member"]]
            if info["tag"] != expected:
                logger.error(
                    "member %s serves %s but the entry reports %s; restart the service",
                    info["member"],
                    info["tag"],
                    expected,
                )
                return False
        self._members_verified = True
        return True

    @bentoml.api(route="/predict")
    async def predict(
        self,
        features: Annotated[Any, Field(description=FEATURES_DOC)],
        device_id: Annotated[str | int | None, Field(description=ID_DOC)] = None,
        wafer_id: Annotated[str | int | None, Field(description=ID_DOC)] = None,
        lot_id: Annotated[str | int | None, Field(description=ID_DOC)] = None,
    ) -> dict[str, Any]:
        """Pass/fail for one device. ``features``: a list in schema order, or name -> value."""
        request_id = _request_id()
        raw_ids = {"device_id": device_id, "wafer_id": wafer_id, "lot_id": lot_id}
        work = self._predict_one(request_id, features, raw_ids)
        return await self._respond("/predict", request_id, work)

    @bentoml.api(route="/predict_batch")
    async def predict_batch(
        self,
        devices: Annotated[Any, Field(description="List of {features, device_id} objects.")],
    ) -> dict[str, Any]:
        """Pass/fail for many devices (a whole wafer); results keep the request's order."""
        request_id = _request_id()
        return await self._respond(
            "/predict_batch", request_id, self._predict_many(request_id, devices)
        )

    @bentoml.api(route="/feedback")
    async def feedback(
        self, outcomes: Annotated[Any, Field(description=OUTCOMES_DOC)]
    ) -> dict[str, Any]:
        """Record what final test said about devices we predicted; idempotent per prediction."""
        request_id = _request_id()
        return await self._respond("/feedback", request_id, self._feedback(request_id, outcomes))

    async def _feedback(self, request_id: str, raw: Any) -> dict[str, Any]:
        items = parse_outcomes(raw, MAX_OUTCOMES)
        # Predictions served a moment ago may still sit in the writer's queue.
        await asyncio.to_thread(self.log.flush, 10.0)
        statuses = await asyncio.to_thread(self.log.add_outcomes, items)
        counts = {s: 0 for s in ("recorded", "replaced", "unchanged", "unknown")}
        for st in statuses:
            counts[st["status"]] += 1
        unknown = [{"index": i, **st} for i, st in enumerate(statuses) if st["status"] == "unknown"]
        for status, n in counts.items():
            if n:
                self.metrics.feedback.labels(status=status).inc(n)
        self.metrics.accuracy(await asyncio.to_thread(self.log.accuracy_by_arm))
        request_log.info(
            "feedback",
            extra={"fields": {"request_id": request_id, "received": len(items), **counts}},
        )
        return {
            "request_id": request_id,
            "received": len(items),
            "counts": counts,
            "unknown": unknown,
        }

    def report(self, since: float | None, until: float | None, arm: str | None) -> dict[str, Any]:
        """The A/B report over the logged predictions in [since, until), optionally one arm."""
        self.log.flush(10.0)
        return self.log.report(SETTINGS.challenger, SETTINGS.challenger_fraction, since, until, arm)

    async def _respond(
        self, endpoint: str, request_id: str, work: Awaitable[dict[str, Any]]
    ) -> Any:
        """An endpoint's answer; every failure becomes a JSON error, logged once, counted."""
        started = time.perf_counter()
        try:
            answer = await work
        except InvalidInput as exc:
            return self.bad_input(endpoint, request_id, exc)
        except MembersUnavailable as exc:
            self.metrics.errors.labels(kind="members_unavailable").inc()
            logger.error(
                "members unavailable",
                extra={
                    "fields": {"request_id": request_id, "endpoint": endpoint, "error": str(exc)}
                },
            )
            return _error(exc.status_code, str(exc), request_id)
        except Exception:
            self.metrics.errors.labels(kind="internal").inc()
            logger.exception(
                "internal error", extra={"fields": {"request_id": request_id, "endpoint": endpoint}}
            )
            return _error(500, "internal error; the service log has the details", request_id)
        # Encoded here: BentoML's pydantic dump of a 10,000-device answer took 44% of
        # the entry's CPU (py-spy --gil); json.dumps of the same dict takes ~30 ms.
        response = Response(
            json.dumps(answer).encode(),
            media_type="application/json",
            headers={REQUEST_ID_HEADER: request_id},
        )
        self.metrics.request_duration.labels(endpoint=endpoint).observe(
            time.perf_counter() - started
        )
        return response

    def bad_input(self, endpoint: str, request_id: str, exc: InvalidInput) -> JSONResponse:
        self.metrics.errors.labels(kind="bad_input").inc()
        request_log.warning(
            "bad input",
            extra={
                "fields": {
                    "request_id": request_id,
                    "endpoint": endpoint,
                    "field": exc.field,
                    "error": str(exc),
                }
            },
        )
        return _error(exc.status_code, str(exc), request_id, field=exc.field)

    def _served(
        self,
        started: float,
        request_ids: list[str],
        ids: list[dict[str, str | None]],
        rows: np.ndarray,
        results: list[dict[str, Any]],
    ) -> tuple[float, dict[str, Any]]:
        """Log, count and record one request's predictions: (latency in ms, their tally)."""
        from ensemble.predlog import Served

        latency_ms = (time.perf_counter() - started) * 1000
        self.log.record(
            Served(time.time(), latency_ms, request_ids, ids, rows, results, self.model_versions)
        )
        tally = self.metrics.served(results)
        self.metrics.cache_entries.set(len(self.router.cache))
        self.metrics.log_pending.set(self.log.pending_rows)
        if request_log.isEnabledFor(logging.DEBUG):
            request_log.debug(
                "features",
                extra={"fields": {"request_id": request_ids[0], "features": rows.tolist()}},
            )
        return latency_ms, tally

    async def _predict_one(
        self, request_id: str, features: Any, raw_ids: dict[str, Any]
    ) -> dict[str, Any]:
        started = time.perf_counter()
        row = np.asarray([parse_features(features, self.schema)], dtype=np.float32)
        ids = {f: parse_identifier(v, f) for f, v in raw_ids.items()}
        (result,) = await self.router.predict(row, [split_key(ids)])
        latency_ms, _ = self._served(started, [request_id], [ids], row, [result])
        request_log.info(
            "prediction",
            extra={
                "fields": {
                    "request_id": request_id,
                    "endpoint": "/predict",
                    "device_id": ids["device_id"],
                    **{
                        k: result[k]
                        for k in (
                            "arm",
                            "prediction",
                            "probability",
                            "cached",
                            "degraded",
                            "missing_members",
                        )
                    },
                    "latency_ms": round(latency_ms, 3),
                    "model_versions": self.model_versions,
                }
            },
        )
        return {
            "request_id": request_id,
            **{f: v for f, v in ids.items() if v is not None or f == "device_id"},
            **result,
            "model_versions": self.model_versions,
        }

    async def _predict_many(self, request_id: str, devices: Any) -> dict[str, Any]:
        started = time.perf_counter()
        rows, ids = parse_batch(devices, self.schema, SETTINGS.max_batch_devices)
        results = await self.router.predict(rows, [split_key(i) for i in ids])
        request_ids = [f"{request_id}.{i}" for i in range(len(results))]
        for r, rid, device in zip(results, request_ids, ids, strict=True):
            r["request_id"] = rid
            r["device_id"] = device["device_id"]
        latency_ms, tally = self._served(started, request_ids, ids, rows, results)
        request_log.info(
            "prediction batch",
            extra={
                "fields": {
                    "request_id": request_id,
                    "endpoint": "/predict_batch",
                    "devices": len(results),
                    **tally,
                    "latency_ms": round(latency_ms, 3),
                    "model_versions": self.model_versions,
                }
            },
        )
        return {
            "request_id": request_id,
            "count": len(results),
            "results": results,
            "model_versions": self.model_versions,
            "degraded": tally["degraded"] > 0,
        }
