"""XGBoost member adapter."""

from __future__ import annotations

import bentoml
import numpy as np


class XGBoostAdapter:
    """``Booster.inplace_predict``: no DMatrix construction per call, one thread."""

    runtime = "xgboost"

    def __init__(self, model: bentoml.Model) -> None:
        booster = bentoml.xgboost.load_model(model)
        if not hasattr(booster, "inplace_predict"):  # saved as XGBClassifier
            booster = booster.get_booster()
        booster.set_param({"nthread": 1})
        self._booster = booster

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        # binary:logistic yields P(label == 1), and label 1 is "pass".
        return np.asarray(self._booster.inplace_predict(rows), dtype=np.float32).reshape(-1)
