"""Load the stored members the way a user would: the native libraries, default calls."""

from __future__ import annotations

import os
from typing import Any

import bentoml
import numpy as np

from models.families import family

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def load(member: str) -> Any:
    """The member's native model object from the latest training run in the store."""
    model = bentoml.models.get(f"{family(member).store_name}:latest")
    if member == "random_forest":
        import joblib

        return joblib.load(model.path_of("model.joblib"))
    if member == "xgboost":
        import xgboost

        clf = xgboost.XGBClassifier()
        clf.load_model(model.path_of("model.ubj"))
        return clf
    import keras

    return keras.saving.load_model(model.path_of("model.keras"), compile=False)


def p_pass(member: str, model: Any, rows: np.ndarray) -> np.ndarray:
    """The default call of each library: ``predict_proba``, or Keras ``model.predict``."""
    if member == "keras":
        return np.asarray(model.predict(rows, verbose=0)).reshape(-1)
    return np.asarray(model.predict_proba(rows))[:, 1]


def answer(p: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Majority vote of the three P(pass), one dict per row."""
    stacked = np.stack(list(p.values()))
    passed = (stacked >= 0.5).sum(axis=0) >= 2
    prob = stacked.mean(axis=0)
    return [
        {"prediction": "pass" if ok else "fail", "probability": float(q)}
        for ok, q in zip(passed, prob, strict=True)
    ]


def rows_of(devices: list[dict[str, Any]]) -> np.ndarray:
    return np.asarray([d["features"] for d in devices], dtype=np.float32)
