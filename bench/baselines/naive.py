"""Baseline 1, naive: one BentoML service holding all three models, called one after another.

bentoml serve bench.baselines.naive:Naive
"""

from __future__ import annotations

from typing import Any

import bentoml
import numpy as np

from bench.baselines._models import answer, load, p_pass, rows_of

MEMBERS = ("random_forest", "xgboost", "keras")


@bentoml.service(name="naive")
class Naive:
    def __init__(self) -> None:
        self.models = {m: load(m) for m in MEMBERS}

    def _vote(self, rows: np.ndarray) -> list[dict[str, Any]]:
        return answer({m: p_pass(m, model, rows) for m, model in self.models.items()})

    @bentoml.api(route="/predict")
    def predict(self, features: list[float]) -> dict[str, Any]:
        return self._vote(np.asarray([features], dtype=np.float32))[0]

    @bentoml.api(route="/predict_batch")
    def predict_batch(self, devices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"results": self._vote(rows_of(devices))}
