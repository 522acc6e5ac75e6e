"""Baseline 2, plain composition, as BentoML's composition guide shows it.

Three member services and an entry that ``bentoml.depends()`` on them and
``asyncio.gather``s them: no adaptive batching, default calls, default
``runner_connection``. ``/predict_batch`` takes today's device records,
``/predict_columns`` one feature matrix (the wafer format's baseline).

    bentoml serve bench.baselines.plain:Entry
"""

from __future__ import annotations

import asyncio
from typing import Any

import bentoml
import numpy as np

from bench.baselines._models import answer, load, p_pass, rows_of


class _Member:
    member: str

    def __init__(self) -> None:
        self.model = load(self.member)

    @bentoml.api
    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return p_pass(self.member, self.model, rows)


@bentoml.service(name="plain_random_forest")
class RandomForest(_Member):
    member = "random_forest"


@bentoml.service(name="plain_xgboost")
class XGBoost(_Member):
    member = "xgboost"


@bentoml.service(name="plain_keras")
class Keras(_Member):
    member = "keras"


@bentoml.service(name="plain_entry")
class Entry:
    random_forest = bentoml.depends(RandomForest)
    xgboost = bentoml.depends(XGBoost)
    keras = bentoml.depends(Keras)

    async def _vote(self, rows: np.ndarray) -> list[dict[str, Any]]:
        members = {
            "random_forest": self.random_forest,
            "xgboost": self.xgboost,
            "keras": self.keras,
        }
        p = await asyncio.gather(*(s.to_async.predict_proba(rows) for s in members.values()))
        return answer(dict(zip(members, p, strict=True)))

    @bentoml.api(route="/predict")
    async def predict(self, features: list[float]) -> dict[str, Any]:
        return (await self._vote(np.asarray([features], dtype=np.float32)))[0]

    @bentoml.api(route="/predict_batch")
    async def predict_batch(self, devices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"results": await self._vote(rows_of(devices))}

    @bentoml.api(route="/predict_columns")
    async def predict_columns(self, features: list[list[float]]) -> dict[str, Any]:
        """The wafer as one matrix in, two arrays out: the columnar like-for-like baseline."""
        results = await self._vote(np.asarray(features, dtype=np.float32))
        return {
            "prediction": [r["prediction"] for r in results],
            "probability": [r["probability"] for r in results],
        }
