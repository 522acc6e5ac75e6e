"""RandomForest member adapter: ONNX Runtime by default, scikit-learn as the native fallback."""

from __future__ import annotations

from pathlib import Path

import bentoml
import numpy as np

from models.base import exported_model
from models.onnx_trees import OnnxTreeEnsemble

#: Files inside the member's model-store directory.
SKLEARN_FILE = "model.joblib"
ONNX_FILE = "model.onnx"


class RandomForestAdapter:
    """P(pass) from the forest; ``runtime`` "onnx" (default) or "sklearn"."""

    def __init__(self, model: bentoml.Model, runtime: str = "onnx") -> None:
        pass_column = model.info.metadata.get("pass_column", 1)
        if not isinstance(pass_column, int):
            raise ValueError(f"model {model.tag}: pass_column must be an int, got {pass_column!r}")
        onnx = exported_model(model, runtime, "onnx", ONNX_FILE)
        self.runtime = "onnx" if onnx else "sklearn"
        self._impl = OnnxTreeEnsemble(onnx, pass_column) if onnx else _SklearnForest(model)

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return self._impl.predict_proba(rows)


class _SklearnForest:
    """``RandomForestClassifier.predict_proba`` with one thread (the worker owns one core)."""

    def __init__(self, model: bentoml.Model) -> None:
        path = Path(model.path) / SKLEARN_FILE
        if path.exists():
            import joblib

            self._clf = joblib.load(path)
        else:  # saved by bentoml.sklearn before the ONNX export existed
            self._clf = bentoml.sklearn.load_model(model)
        self._clf.set_params(n_jobs=1)
        self._pass_column = list(self._clf.classes_).index(1)

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self._clf.predict_proba(rows)[:, self._pass_column], dtype=np.float32)
