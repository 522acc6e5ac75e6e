"""Baseline 2, the fair plain composition: what a competent user writes without us.

Three member services and an entry that ``bentoml.depends()`` on them and
``asyncio.gather``s them, as BentoML's composition guide shows, each member with the
library's fast call: scikit-learn ``predict_proba`` with ``n_jobs=1``, XGBoost
``inplace_predict`` (one thread, like the forest), the Keras net under one traced
``tf.function``. No adaptive batching, default ``runner_connection``.
``/predict_batch`` takes device records, ``/predict_columns`` one feature matrix (the
wafer format's like-for-like baseline).

    bentoml serve bench.baselines.fair:Entry
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import bentoml
import numpy as np

from bench.baselines._models import answer, load, rows_of


class _Member:
    member: str

    def __init__(self) -> None:
        self.model = load(self.member)

    @bentoml.api
    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(rows))[:, 1]


@bentoml.service(name="fair_random_forest")
class RandomForest(_Member):
    member = "random_forest"

    def __init__(self) -> None:
        super().__init__()
        self.model.set_params(n_jobs=1)


@bentoml.service(name="fair_xgboost")
class XGBoost:
    def __init__(self) -> None:
        self.booster = load("xgboost").get_booster()
        self.booster.set_param({"nthread": 1})

    @bentoml.api
    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(rows))


@bentoml.service(name="fair_keras")
class Keras:
    def __init__(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        net = load("keras")
        width = int(net.input_shape[-1])
        self.tf = tf
        self.fn = tf.function(
            lambda x: net(x, training=False),
            input_signature=[tf.TensorSpec(shape=(None, width), dtype=tf.float32)],
        )

    @bentoml.api
    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(self.tf.constant(rows, dtype=self.tf.float32))).reshape(-1)


@bentoml.service(name="fair_entry")
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
