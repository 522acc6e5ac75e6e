"""XGBoost member adapter: ONNX Runtime by default, the XGBoost library as the native fallback.

With ONNX the worker never imports xgboost, whose shared library alone is ~150 MB of RSS.
"""

from __future__ import annotations

from pathlib import Path

import bentoml
import numpy as np

from models.base import exported_model
from models.onnx_trees import OnnxTreeEnsemble

#: Files inside the member's model-store directory.
BOOSTER_FILE = "model.ubj"
ONNX_FILE = "model.onnx"


class XGBoostAdapter:
    """P(pass) from the booster; ``runtime`` "onnx" (default) or "xgboost"."""

    def __init__(self, model: bentoml.Model, runtime: str = "onnx") -> None:
        onnx = exported_model(model, runtime, "onnx", ONNX_FILE)
        self.runtime = "onnx" if onnx else "xgboost"
        # Same ONNX output layout as the forest: probabilities (n, 2), column 1 = pass.
        self._impl = OnnxTreeEnsemble(onnx, 1) if onnx else _NativeBooster(model)

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return self._impl.predict_proba(rows)


class _NativeBooster:
    """``Booster.inplace_predict``: no DMatrix construction per call, one thread."""

    def __init__(self, model: bentoml.Model) -> None:
        import xgboost

        path = Path(model.path) / BOOSTER_FILE
        if path.exists():
            booster = xgboost.Booster(model_file=str(path))
        else:  # saved by bentoml.xgboost before the ONNX export existed
            booster = bentoml.xgboost.load_model(model)
            if not hasattr(booster, "inplace_predict"):
                booster = booster.get_booster()
        booster.set_param({"nthread": 1})
        self._booster = booster

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        # binary:logistic yields P(label == 1), and label 1 is "pass".
        return np.asarray(self._booster.inplace_predict(rows), dtype=np.float32).reshape(-1)
