"""yield-ensemble's entry service: validation, parallel member calls, the combined decision.

Wiring only: the request core lives in ``ensemble/``, the evidence in ``ledger/``, the
models in ``models/``. Serve with ``bentoml serve`` from the repository root. Over 300
lines because it is the one BentoML class of the entry: its endpoints, start-up and
shutdown hooks and health checks belong together, and each is a few lines of calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Awaitable, Sequence
from typing import Annotated, Any

import bentoml
import numpy as np
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ensemble import EnsemblePredictor, InvalidInput, MembersUnavailable
from ensemble.arms import ARM_NAME, ENSEMBLE
from ensemble.batch import Batch
from ensemble.cache import PredictionCache
from ensemble.decision import Decision
from ensemble.fleet import Fleet, Loaded, Snapshot
from ensemble.responses import (
    Ids,
    batch_answer,
    batch_log,
    single_answer,
    single_log,
)
from ensemble.serving import ServingState
from ensemble.settings import get_settings
from ensemble.switchboard import Switchboard
from ensemble.validation import (
    parse_batch,
    parse_count,
    parse_features,
    parse_identifier,
    parse_outcomes,
    parse_window,
    shown,
    split_key,
)
from ensemble.wafer import columns_answer, parse_wafer
from ledger.spool import LogBackedUp
from models import bentoml_quirks
from models.base import configured_state, decision_reference
from models.base import load_version as base_load_version
from models.services import MEMBER_SERVICES
from ops import logs
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
from ops.auth import KeyRing, load_keys
from ops.edge import REQUEST_ID_HEADER, EdgeConfig, EdgeMiddleware, current, json_answer
from ops.gc_tuning import tune_gc
from ops.metrics import ServiceMetrics
from ops.openapi import PATHS as OPENAPI_PATHS

logger = logging.getLogger("yield_ensemble")
#: One line per request at the edge.
request_log = logging.getLogger("yield_ensemble.requests")
SETTINGS = get_settings()
MAX_OUTCOMES = 100_000
#: How long a member may take to load the versions of a new serving state.
PREPARE_TIMEOUT_S = 120.0


ENTRY_TRACING = bentoml_quirks.tracing_options(SETTINGS.tracing, ["/predict", "/feedback"])


def _request_id() -> str:
    """The id the edge gave the request being handled."""
    state = current()
    return state.request_id if state is not None else bentoml_quirks.new_request_id()


def _handled(kind: str) -> None:
    """Tell the edge the handler logged this request's error itself, of ``kind``."""
    state = current()
    if state is not None:
        state.logged, state.kind = True, kind


#: The edge's settings, filled in by the entry worker (keys, metrics) when it starts.
EDGE = EdgeConfig(
    predict_requires_key=SETTINGS.predict_requires_key,
    max_body_bytes=int(SETTINGS.max_body_mb * (1 << 20)),
    new_request_id=bentoml_quirks.new_request_id,
)


def _member_call(proxy: Any, version: str | None) -> Any:
    """A member's P(pass) from ``version`` (None: its start-up model, batched by the member).

    ``proxy.to_async`` is looked up per call: BentoML binds it after __init__.
    """

    async def call(rows: np.ndarray) -> np.ndarray:
        return np.asarray(await proxy.to_async.predict_proba(rows))

    async def call_version(rows: np.ndarray) -> np.ndarray:
        return np.asarray(await proxy.to_async.predict_version(rows, version))

    return call if version is None else call_version


def load_version(version: str | None = None) -> Loaded:
    """``models.base.load_version`` with the served combiner."""
    return base_load_version(version, SETTINGS.combiner)


def reconcile(engine: Any) -> ServingState:
    """The ledger's serving state, with the start-up settings applied if they changed
    (``ledger.serving.reconcile``)."""
    from ledger.serving import ServingStore
    from ledger.serving import reconcile as apply_settings

    by = f"start-up:{socket.gethostname()}"[:64]
    state, changed = apply_settings(ServingStore(engine), configured_state(SETTINGS), by)
    if changed:
        logger.info("serving state %d from the start-up settings: %s", state.revision,
                    state.as_dict())  # fmt: skip
    return state


def check_keys() -> KeyRing:
    """The configured API keys; raises KeyConfigError naming the bad entry (never a secret)."""
    return KeyRing(load_keys(SETTINGS.api_keys, SETTINGS.api_keys_file))


def check_log(started: Loaded) -> None:
    """Create the prediction log's tables and agree the serving state; raises, naming the
    location, if it cannot be written, or naming the version this store cannot serve
    (``started``: the start-up version, as loaded)."""
    from ledger.predlog import PredictionLog

    try:
        log = PredictionLog(SETTINGS.log_url)
    except Exception as exc:
        raise RuntimeError(f"prediction log {SETTINGS.log_url} cannot be opened: {exc}") from exc
    try:
        problem = log.writable()
        if problem is not None:
            raise RuntimeError(problem)
        state = reconcile(log.engine)
        for version in state.versions:
            try:
                loaded = started if version == started.version else load_version(version)
            except Exception as exc:
                raise RuntimeError(
                    f"the serving state in {log.safe_url} (revision {state.revision}, by "
                    f"{state.changed_by}) serves version {version}, which this service cannot "
                    f"serve: {exc}"
                ) from exc
            wrong = loaded.other_features(started.schema)
            if wrong:
                raise RuntimeError(wrong)
    finally:
        log.close()


def _arm_versions(serving: Snapshot, batch: Batch) -> dict[str, dict[str, str]]:
    """The model versions of each arm in the answer (a candidate's differ from the champion's)."""
    return {batch.arms[a]: dict(serving.tags_of(batch.arms[a])) for a in np.unique(batch.arm)}


def _error(status: int, message: str, request_id: str, **extra: Any) -> JSONResponse:
    return json_answer({"error": message, **extra}, request_id, status)


async def ab_report(request: Request) -> JSONResponse:
    """GET /ab/report?since=&until=&arm=: the A/B accuracy report over the prediction log."""
    service: _Entry = bentoml.get_current_service()
    request_id = _request_id()
    try:
        q = request.query_params
        extra = set(q) - {"since", "until", "arm"}
        if extra:
            raise InvalidInput(sorted(extra)[0], "unknown query parameter (since, until, arm)")
        since, until = parse_window(q.get("since"), q.get("until"))
        arm = q.get("arm") or None
        if arm is not None and not ARM_NAME.fullmatch(arm):
            raise InvalidInput("arm", f"must be an arm name like '{ENSEMBLE}', got {shown(arm)}")
    except InvalidInput as exc:
        return service.bad_input("/ab/report", request_id, exc)
    started = time.perf_counter()
    from ledger.queries import UnknownArm

    try:
        report = await asyncio.to_thread(service.report, since, until, arm)
    except UnknownArm as exc:
        return service.bad_input("/ab/report", request_id, InvalidInput("arm", str(exc)))
    except Exception as exc:
        return service.server_error("/ab/report", request_id, exc)
    state = current()
    request_log.info(
        "report",
        extra={
            "fields": {
                "request_id": request_id,
                "endpoint": "/ab/report",
                "key_id": state.key_id if state else None,
                "window": {"since": since, "until": until, "arm": arm},
                "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            }
        },
    )
    return json_answer(report, request_id)


report_app = Starlette(routes=[Route("/report", ab_report, methods=["GET"])])

#: Query parameters of the dashboard reads besides since and until.
_PAGE = {"limit", "offset"}


def _dashboard_route(path: str, params: set[str], reader: str, **fixed: Any) -> Route:
    """A GET route under /dashboard: checked query, log flushed, a ``ledger.dashboard`` read.

    ``reader(engine, since=, until=, **fixed, **path and query params)`` runs in a thread;
    None answers 404. ``ledger`` is imported on the first call: SQLAlchemy stays out of the
    member processes, which import this module too.
    """
    endpoint = f"/dashboard{path}"
    allowed = {"since", "until", *params}

    async def handle(request: Request) -> JSONResponse:
        from ledger import dashboard

        service: _Entry = bentoml.get_current_service()
        request_id = _request_id()
        q = request.query_params
        try:
            extra = set(q) - allowed
            if extra:
                raise InvalidInput(
                    sorted(extra)[0], f"unknown query parameter ({', '.join(sorted(allowed))})"
                )
            since, until = parse_window(q.get("since"), q.get("until"))
            kwargs: dict[str, Any] = {}
            if "limit" in params:
                most = dashboard.MAX_LIMIT
                default = most if path.endswith("/map") else 100
                kwargs["limit"] = parse_count(q.get("limit"), "limit", default, 1, most)
                kwargs["offset"] = parse_count(q.get("offset"), "offset", 0, 0, 2**31 - 1)
            if "lot_id" in params:
                kwargs["lot_id"] = parse_identifier(q.get("lot_id"), "lot_id")
            for name, value in request.path_params.items():
                kwargs[name] = parse_identifier(value, name)
        except InvalidInput as exc:
            return service.bad_input(endpoint, request_id, exc)
        await asyncio.to_thread(service.log.flush, 10.0)
        read = getattr(dashboard, reader)
        try:
            body = await asyncio.to_thread(
                read, service.log.engine, since=since, until=until, **fixed, **kwargs
            )
        except Exception as exc:
            return service.server_error(endpoint, request_id, exc)
        request_log.info(
            "dashboard read",
            extra={"fields": {"request_id": request_id, "endpoint": endpoint, **kwargs}},
        )
        if body is None:  # the edge logs the refusal and counts it as not_found
            return _error(404, f"no predictions for {kwargs} in the window", request_id)
        return json_answer(body, request_id)

    return Route(path, handle, methods=["GET"])


dashboard_app = Starlette(
    routes=[
        _dashboard_route("/wafers", {*_PAGE, "lot_id"}, "groups", by="wafer_id"),
        _dashboard_route("/lots", _PAGE, "groups", by="lot_id", lot_id=None),
        _dashboard_route("/wafers/{wafer_id}", set(), "wafer"),
        _dashboard_route("/wafers/{wafer_id}/map", _PAGE, "die_map"),
    ]
)


class _Entry:
    """POST /predict and /predict_batch: pass/fail for devices from parametric test data.

    One dependency per model family (``models.families``), attached below as
    ``self.<member>`` before the class becomes the BentoML service.
    """

    @bentoml.on_deployment
    def _check_before_workers_start() -> None:
        # Runs once in the `bentoml serve` process: a bad store stops the server
        # with the message, instead of a worker restarting in a loop.
        started = load_version()
        check_keys()
        check_log(started)
        bentoml_quirks.exit_nonzero_on_worker_loss()

    def __init__(self) -> None:
        logs.configure(SETTINGS.log_format, SETTINGS.log_level)
        bentoml_quirks.quiet_client_errors()
        bentoml_quirks.refuse_new_connections_on_sigterm()
        started = load_version()
        self.schema, self.startup_tags, self.startup = started.schema, started.tags, started.version
        self.metrics = ServiceMetrics()
        EDGE.keys = check_keys()
        EDGE.count_error = lambda kind: self.metrics.errors.labels(kind=kind).inc()
        self._proxies = {m: getattr(self, m) for m in MEMBER_SERVICES}
        # Imported here, not at the top: `bentoml serve` and every member import this
        # module too, and SQLAlchemy is ~12 MB of RSS in each of them.
        from ledger.predlog import Durability, PredictionLog, Retention
        from ledger.serving import ServingStore

        days = SETTINGS.prediction_log_retention_days
        self.log = PredictionLog(
            SETTINGS.log_url,
            flush_interval_s=SETTINGS.prediction_log_flush_interval_s,
            retention=Retention(days * 86400 if days else None, SETTINGS.prediction_log_max_rows),
            durability=Durability(
                spill_dir=SETTINGS.spill_dir,
                spill_max_bytes=int(SETTINGS.prediction_log_spill_max_mb * (1 << 20)),
                max_pending_rows=SETTINGS.prediction_log_max_pending_rows,
                stall_s=SETTINGS.prediction_log_stall_s,
            ),
            on_event=self._log_event,
        )
        self.fleet = Fleet(
            SETTINGS.arm_list(),
            SETTINGS.split_salt,
            PredictionCache(SETTINGS.cache_maxsize, SETTINGS.cache_ttl_s),
            self.schema,
            lambda version: started if version == started.version else load_version(version),
            self._predictor,
            self._prepare_members,
        )
        store = ServingStore(self.log.engine)
        self.switch = Switchboard(
            self.fleet,
            store,
            store.read() or reconcile(self.log.engine),
            self.metrics,
            SETTINGS.serving_poll_s,
            report=self._guardrail_report if SETTINGS.guardrail else None,
            guardrail_interval_s=SETTINGS.guardrail_interval_s,
        )
        self._following: asyncio.Task[None] | None = None
        self.metrics.log_spool_rows(*self._spool_rows())
        self.metrics.accuracy(self.log.accuracy_by_arm())
        self._members_verified = False
        tune_gc()
        logger.info("serving %s on features %s", self.serving.versions(), list(self.schema.names))
        logger.info("prediction log: %s", self.log.safe_url)

    def _spool_rows(self) -> tuple[int, int]:
        """Rows in the spill and in the dead letter, counted from the files."""
        spill, dead = self.log.spill, self.log.dead_letter
        return (spill.size()[0] if spill else 0), (dead.size()[0] if dead else 0)

    def _log_event(self, kind: str, rows: int) -> None:
        """Called by the log's writer thread: what it did with how many rows."""
        self.metrics.log_event(kind, rows)
        self.metrics.log_pending.set(self.log.pending_rows)
        if kind != "written":
            self.metrics.log_spool_rows(*self._spool_rows())

    def _predictor(self, version: str, decision: Decision) -> EnsemblePredictor:
        """The ensemble of ``version``'s members, deciding with its trained combiner."""
        own = None if version == self.startup else version
        return EnsemblePredictor(
            {m: _member_call(proxy, own) for m, proxy in self._proxies.items()},
            timeout_s=SETTINGS.member_timeout_s,
            max_rows_per_call=SETTINGS.coalesce_max_rows,
            max_in_flight=SETTINGS.coalesce_max_in_flight,
            observer=self.metrics.member_call,
            combiner=decision.combiner(SETTINGS.combiner),
        )

    async def _prepare_members(self, versions: Sequence[str]) -> None:
        """Have every member load ``versions``; raises naming the member that could not."""

        async def prepare(member: str, proxy: Any) -> None:
            try:
                await asyncio.wait_for(proxy.to_async.prepare(list(versions)), PREPARE_TIMEOUT_S)
            except Exception as exc:
                raise RuntimeError(f"member {member} could not load {list(versions)}: "
                                   f"{str(exc)[:300] or type(exc).__name__}") from exc  # fmt: skip

        await asyncio.gather(*(prepare(m, p) for m, p in self._proxies.items()))

    async def members_loaded(self) -> dict[str, Any]:
        """The model tags each member holds in memory (or why it did not say)."""

        async def loaded(proxy: Any) -> Any:
            try:
                return (await asyncio.wait_for(proxy.to_async.info(), 2.0))["loaded"]
            except Exception as exc:
                return f"unavailable: {str(exc)[:200] or type(exc).__name__}"

        answers = await asyncio.gather(*(loaded(p) for p in self._proxies.values()))
        return dict(zip(self._proxies, answers, strict=True))

    @bentoml.on_startup
    def _start_following(self) -> None:
        self._following = asyncio.get_running_loop().create_task(self.switch.run())

    @property
    def serving(self) -> Snapshot:
        """What serves now (``ensemble.switchboard``); a request reads it once."""
        return self.switch.serving

    @bentoml.on_shutdown
    def _flush_log(self) -> None:
        if self._following is not None:
            self._following.cancel()
        # Uvicorn has drained in-flight requests by now: everything served is queued.
        pending = self.log.pending_rows
        status = self.log.close()
        spilled = self._spool_rows()[0]
        logger.info("prediction log flushed %d rows at shutdown: %d lost, %d waiting in the "
                    "spill", pending, status.lost, spilled)  # fmt: skip
        if status.lost:
            bentoml_quirks.report_loss(status.lost)

    def __is_alive__(self) -> bool:
        """Alive unless the log writer has held rows without moving any for too long."""
        stalled = self.log.stalled_for()
        if stalled >= SETTINGS.prediction_log_stall_s:
            logger.error("not alive: the prediction log writer has moved no row for %.0f s "
                         "(%s)", stalled, self.log.status.database_error)  # fmt: skip
            return False
        return True

    async def __is_ready__(self) -> bool:
        """Ready when every member answers with the reported version and the log takes rows.

        Each check has its own short timeout: a stopped member or a locked database
        makes this replica unready within a second, never a hanging probe.
        """
        try:
            problem = await asyncio.wait_for(asyncio.to_thread(self.log.accepting), 0.5)
        except TimeoutError:
            problem = "the prediction log database did not answer within 0.5 s"
        if problem is not None:
            logger.warning("not ready: %s", problem)
            return False
        if self._members_verified:
            return True
        try:
            infos = await asyncio.wait_for(
                asyncio.gather(*(p.to_async.info() for p in self._proxies.values())), 0.5
            )
        except Exception as exc:  # a member still starting up, or stopped
            logger.info("not ready: members: %s", str(exc) or type(exc).__name__)
            return False
        if not self.switch.prepared:
            logger.info("not ready: members still loading %s", self.serving.state.versions)
            return False
        for info in infos:
            expected = self.startup_tags[info["member"]]
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
        answer: dict[str, Any] = await self._respond("/predict", request_id, work)
        return answer

    @bentoml.api(route="/predict_batch")
    async def predict_batch(
        self,
        devices: Annotated[Any, Field(description="List of {features, device_id} objects.")],
    ) -> dict[str, Any]:
        """Pass/fail for many devices (a whole wafer); results keep the request's order."""
        request_id = _request_id()
        answer: dict[str, Any] = await self._respond(
            "/predict_batch", request_id, self._predict_many(request_id, devices)
        )
        return answer

    @bentoml.api(route="/predict_wafer")
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
        request_id = _request_id()
        body = {
            "features": features,
            "device_id": device_id,
            "wafer_id": wafer_id,
            "lot_id": lot_id,
            "die_x": die_x,
            "die_y": die_y,
            "answer": answer,
        }
        result: dict[str, Any] = await self._respond(
            "/predict_wafer", request_id, self._predict_wafer(request_id, body)
        )
        return result

    @bentoml.api(route="/feedback")
    async def feedback(
        self, outcomes: Annotated[Any, Field(description=OUTCOMES_DOC)]
    ) -> dict[str, Any]:
        """Record what final test said about devices we predicted; idempotent per prediction."""
        request_id = _request_id()
        answer: dict[str, Any] = await self._respond(
            "/feedback", request_id, self._feedback(request_id, outcomes)
        )
        return answer

    async def _feedback(self, request_id: str, raw: Any) -> dict[str, Any]:
        items = parse_outcomes(raw, MAX_OUTCOMES)
        # Predictions served a moment ago may still sit in the writer's queue.
        await asyncio.to_thread(self.log.flush, 10.0)
        state = current()
        sent_by = state.key_id if state is not None and state.key_id else "anonymous"
        statuses = await asyncio.to_thread(self.log.add_outcomes, items, sent_by)
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
            extra={
                "fields": {
                    "request_id": request_id,
                    "key_id": sent_by,
                    "received": len(items),
                    **counts,
                }
            },
        )
        return {
            "request_id": request_id,
            "received": len(items),
            "counts": counts,
            "unknown": unknown,
        }

    def _guardrail_report(self, since: float | None) -> dict[str, Any]:
        return self.report(since, None, None)

    def report(self, since: float | None, until: float | None, arm: str | None) -> dict[str, Any]:
        """The A/B report over the logged predictions in [since, until), optionally one arm."""
        self.log.flush(10.0)
        serving = self.serving
        champion = serving.champion
        return self.log.report(
            serving.arms,
            since,
            until,
            arm,
            champion.decision,
            champion.predictor.combiner.key,
            candidate=serving.candidate_spec(SETTINGS.promotion_alpha),
        )

    async def _respond(
        self, endpoint: str, request_id: str, work: Awaitable[dict[str, Any]]
    ) -> Any:  # a Response; the endpoints' dict annotation only types BentoML's schema
        """An endpoint's answer; every failure becomes a JSON error, logged once, counted."""
        started = time.perf_counter()
        try:
            answer = await work
        except InvalidInput as exc:
            return self.bad_input(endpoint, request_id, exc)
        except (MembersUnavailable, LogBackedUp) as exc:
            kind = "members_unavailable" if isinstance(exc, MembersUnavailable) else "log_backed_up"
            _handled(kind)
            logger.error(
                kind.replace("_", " "),
                extra={
                    "fields": {"request_id": request_id, "endpoint": endpoint, "error": str(exc)}
                },
            )
            return _error(exc.status_code, str(exc), request_id)
        except Exception as exc:
            return self.server_error(endpoint, request_id, exc)
        # Encoded here: BentoML's pydantic dump of a 10,000-device answer took 44% of
        # the entry's CPU (py-spy --gil); json.dumps of the same dict takes ~30 ms.
        response = Response(
            json.dumps(answer, allow_nan=False).encode(),
            media_type="application/json",
            headers={REQUEST_ID_HEADER: request_id},
        )
        self.metrics.request_duration.labels(endpoint=endpoint).observe(
            time.perf_counter() - started
        )
        return response

    def server_error(self, endpoint: str, request_id: str, exc: Exception) -> JSONResponse:
        """The answer to an error no handler expected: 503 naming the database error if
        ``exc`` says the ledger cannot be read now (``ledger.errors``), else a 500 with the
        traceback in the log. Logged and counted once, either way."""
        from ledger.errors import unavailable

        fields = {"request_id": request_id, "endpoint": endpoint}
        message = unavailable(exc)
        if message is None:
            _handled("internal")
            logger.exception("internal error", extra={"fields": fields})
            return _error(500, "internal error; the service log has the details", request_id)
        _handled("ledger_unavailable")
        logger.error("ledger unavailable", extra={"fields": {**fields, "error": message}})
        return _error(503, message, request_id)

    def bad_input(self, endpoint: str, request_id: str, exc: InvalidInput) -> JSONResponse:
        _handled("bad_input")
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
        serving: Snapshot,
        started: float,
        request_ids: list[str],
        ids: list[Ids] | dict[str, list[str | None]],
        rows: np.ndarray,
        results: Batch,
        dies: list[tuple[int, int]] | None = None,
    ) -> tuple[float, dict[str, Any]]:
        """Log, count and record one request's predictions: (latency in ms, their tally)."""
        from ledger.predlog import Served

        latency_ms = (time.perf_counter() - started) * 1000
        self.log.record(
            Served(
                time.time(),
                latency_ms,
                request_ids,
                ids,
                rows,
                results,
                serving.model_versions,
                serving.arm_specs,
                dies,
                serving.arm_versions,
            )
        )
        tally = self.metrics.served(results)
        self.metrics.cache_entries.set(len(self.fleet.cache))
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
        serving = self.serving
        self.log.check_room()
        row = np.asarray([parse_features(features, self.schema)], dtype=np.float32)
        ids = {f: parse_identifier(v, f) for f, v in raw_ids.items()}
        batch = await serving.router.predict_batch(row, [split_key(ids)])
        latency_ms, _ = self._served(serving, started, [request_id], [ids], row, batch)
        (result,) = batch.records()
        versions = serving.tags_of(result["arm"])
        fields = single_log(request_id, ids, result, latency_ms, versions)
        request_log.info("prediction", extra={"fields": fields})
        return single_answer(request_id, ids, result, versions)

    async def _predict_many(self, request_id: str, devices: Any) -> dict[str, Any]:
        started = time.perf_counter()
        serving = self.serving
        self.log.check_room()
        rows, ids = parse_batch(devices, self.schema, SETTINGS.max_batch_devices)
        batch = await serving.router.predict_batch(rows, [split_key(i) for i in ids])
        request_ids = [f"{request_id}.{i}" for i in range(len(batch))]
        latency_ms, tally = self._served(serving, started, request_ids, ids, rows, batch)
        fields = batch_log(request_id, len(batch), tally, latency_ms, serving.model_versions)
        request_log.info("prediction batch", extra={"fields": fields})
        degraded = tally["degraded"] > 0
        results = batch.records()
        answer = batch_answer(
            request_id, request_ids, ids, results, serving.model_versions, degraded
        )
        return {**answer, "arm_versions": _arm_versions(serving, batch)}

    async def _predict_wafer(self, request_id: str, body: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        serving = self.serving
        self.log.check_room()
        wafer = parse_wafer(body, self.schema, SETTINGS.max_batch_devices)
        batch = await serving.router.predict_batch(wafer.rows, wafer.split_keys)
        request_ids = [f"{request_id}.{i}" for i in range(len(batch))]
        latency_ms, tally = self._served(
            serving, started, request_ids, wafer.columns, wafer.rows, batch, wafer.dies
        )
        versions = serving.model_versions
        fields = batch_log(request_id, len(batch), tally, latency_ms, versions)
        request_log.info(
            "prediction wafer", extra={"fields": {**fields, "endpoint": "/predict_wafer"}}
        )
        degraded = tally["degraded"] > 0
        if wafer.answer == "records":
            results = batch.records()
            answer = batch_answer(request_id, request_ids, wafer.ids, results, versions, degraded)
        else:
            answer = columns_answer(request_id, wafer.device_ids, batch, versions, degraded)
        return {**answer, "arm_versions": _arm_versions(serving, batch)}


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


async def _docs(request: Request) -> Response:
    """/docs: the API's Swagger page, which BentoML serves at the root."""
    return RedirectResponse("/", status_code=307)


docs_app = Starlette(routes=[Route("/", _docs, methods=["GET"])])
YieldEnsemble = bentoml.service(
    name="yield_ensemble",
    workers=SETTINGS.entry_workers,
    traffic={"timeout": 60},
    # BentoML's own probe of the members waits 5 s for a stopped one; __is_ready__ asks.
    runner_probe={"enabled": False, "timeout": 1, "period": 10},
    **ENTRY_TRACING,
)(_Entry)
for _app, _path in (
    (report_app, "/ab"),
    (dashboard_app, "/dashboard"),
    (docs_app, "/docs"),
    (admin_app, "/admin"),
):
    YieldEnsemble = bentoml.asgi_app(_app, path=_path)(YieldEnsemble)
YieldEnsemble.add_asgi_middleware(EdgeMiddleware, config=EDGE)
bentoml_quirks.add_openapi_paths("yield_ensemble", OPENAPI_PATHS)
