"""yield-ensemble's entry service: validation, parallel member calls, majority vote.

Wiring only: the maths lives in ``ensemble/``, the models in ``models/``.
Serve with ``bentoml serve`` from the repository root.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable
from typing import Annotated, Any

import bentoml
import numpy as np
from bentoml._internal.context import trace_context
from pydantic import Field
from starlette.responses import JSONResponse

from ensemble import EnsemblePredictor, InvalidInput, MembersUnavailable
from ensemble.cache import PredictionCache
from ensemble.router import Router, SplitConfig
from ensemble.schema import FeatureSchema, common_schema
from ensemble.settings import MEMBERS, get_settings
from ensemble.validation import parse_batch, parse_features, parse_identifier, split_key
from models.base import model_schema, stored_model
from models.services import KerasMember, RandomForestMember, XGBoostMember

logger = logging.getLogger("yield_ensemble")
SETTINGS = get_settings()
FEATURES_DOC = (
    "The device's parametric measurements: a list in schema order "
    "(vdd_v, idd_ma, freq_mhz, temp_c, test_time_ms, neighbor_yield by default) "
    "or an object keyed by feature name."
)
ID_DOC = "Optional key; the first of device_id, wafer_id, lot_id given fixes the A/B arm."


def _request_id() -> str:
    """The id BentoML returns in ``X-BentoML-Request-ID``, so logs and responses join."""
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


def _error(status: int, message: str, request_id: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, "request_id": request_id, **extra}, status_code=status)


async def _respond(request_id: str, work: Awaitable[dict[str, Any]]) -> Any:
    """An endpoint's answer; bad input (422) and too few members (503) become JSON errors."""
    try:
        return await work
    except InvalidInput as exc:
        return _error(exc.status_code, str(exc), request_id, field=exc.field)
    except MembersUnavailable as exc:
        logger.error("request %s: %s", request_id, exc)
        return _error(exc.status_code, str(exc), request_id)


@bentoml.service(name="yield_ensemble", workers=1, traffic={"timeout": 60})
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

    def __init__(self) -> None:
        self.schema, self.model_versions = check_members()
        self._proxies = {m: getattr(self, m) for m in MEMBERS}
        self.predictor = EnsemblePredictor(
            {m: _member_call(proxy) for m, proxy in self._proxies.items()},
            timeout_s=SETTINGS.member_timeout_s,
            max_rows_per_call=SETTINGS.coalesce_max_rows,
            max_in_flight=SETTINGS.coalesce_max_in_flight,
        )
        self.router = Router(
            self.predictor,
            PredictionCache(SETTINGS.cache_maxsize, SETTINGS.cache_ttl_s),
            SplitConfig(SETTINGS.challenger, SETTINGS.challenger_fraction, SETTINGS.split_salt),
            self.model_versions,
        )
        self._members_verified = False
        logger.info("serving %s on features %s", self.model_versions, list(self.schema.names))

    async def __is_ready__(self) -> bool:
        """Ready once every member answers and serves the model version we report."""
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
        return await _respond(request_id, self._predict_one(request_id, features, raw_ids))

    @bentoml.api(route="/predict_batch")
    async def predict_batch(
        self,
        devices: Annotated[Any, Field(description="List of {features, device_id} objects.")],
    ) -> dict[str, Any]:
        """Pass/fail for many devices (a whole wafer); results keep the request's order."""
        request_id = _request_id()
        return await _respond(request_id, self._predict_many(request_id, devices))

    async def _predict_one(
        self, request_id: str, features: Any, raw_ids: dict[str, Any]
    ) -> dict[str, Any]:
        row = np.asarray([parse_features(features, self.schema)], dtype=np.float32)
        ids = {f: parse_identifier(v, f) for f, v in raw_ids.items()}
        (result,) = await self.router.predict(row, [split_key(ids)])
        return {
            "request_id": request_id,
            **{f: v for f, v in ids.items() if v is not None or f == "device_id"},
            **result,
            "model_versions": self.model_versions,
        }

    async def _predict_many(self, request_id: str, devices: Any) -> dict[str, Any]:
        rows, ids = parse_batch(devices, self.schema, SETTINGS.max_batch_devices)
        results = await self.router.predict(rows, [split_key(i) for i in ids])
        for i, (r, device) in enumerate(zip(results, ids, strict=True)):
            r["request_id"] = f"{request_id}.{i}"
            r["device_id"] = device["device_id"]
        return {
            "request_id": request_id,
            "count": len(results),
            "results": results,
            "model_versions": self.model_versions,
            "degraded": any(r["degraded"] for r in results),
        }
