"""RandomForest member adapter: ONNX Runtime or scikit-learn, chosen per batch size by training."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import bentoml
import numpy as np

from models.onnx_trees import OnnxTreeEnsemble
from models.runtimes import Loader, RuntimeAdapter, store_model

#: Files inside the member's model-store directory.
SKLEARN_FILE = "model.joblib"
ONNX_FILE = "model.onnx"


def pass_column(metadata: Mapping[str, Any]) -> int:
    """Which column of the forest's probabilities is P(pass) (metadata ``pass_column``)."""
    column = metadata.get("pass_column", 1)
    if not isinstance(column, int):
        raise ValueError(f"pass_column must be an int, got {column!r}")
    return column


class SklearnForest:
    """``RandomForestClassifier.predict_proba`` with one thread (the worker owns one core)."""

    def __init__(self, directory: Path) -> None:
        import joblib

        path = directory / SKLEARN_FILE
        if path.exists():
            self._clf = joblib.load(path)
        else:  # saved by bentoml.sklearn before the ONNX export existed
            self._clf = bentoml.sklearn.load_model(store_model(directory))
        self._clf.set_params(n_jobs=1)
        self._pass_column = list(self._clf.classes_).index(1)

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self._clf.predict_proba(rows)[:, self._pass_column], dtype=np.float32)


class RandomForestAdapter(RuntimeAdapter):
    """P(pass) from the forest; runtimes "onnx" (default) and "sklearn" (native).

    tl2cgen was measured too and left out: on the 100-tree forest it ties ONNX Runtime
    at 10,000 rows, is 1.25x slower at 1,000, and takes ~110 s to compile.
    """

    LOADERS: Mapping[str, Loader] = {
        "onnx": lambda d, m: OnnxTreeEnsemble((d / ONNX_FILE).read_bytes(), pass_column(m)),
        "sklearn": lambda d, m: SklearnForest(d),
    }
