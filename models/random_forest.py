"""RandomForest member adapter: ONNX Runtime or scikit-learn, chosen per batch size by training."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import bentoml
import numpy as np

from models.runtimes import Loader, RuntimeAdapter, store_model

#: Files inside the member's model-store directory.
SKLEARN_FILE = "model.joblib"
ONNX_FILE = "model.onnx"


class OnnxForest:
    """The exported forest in one single-threaded ONNX Runtime session."""

    def __init__(self, onnx: bytes, pass_column: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        # The arena keeps the peak of the largest batch for good (+50 MB after a wafer).
        options.enable_cpu_mem_arena = False
        # Graph rewrites do nothing for one tree-ensemble node but keep a second copy
        # of it: 14 MB less RSS for the 100-tree forest, same speed.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self._session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._pass_column = pass_column

    @classmethod
    def load(cls, directory: Path, pass_column: int) -> OnnxForest:
        """From ``model.onnx`` in ``directory``; FileNotFoundError if it is not there."""
        return cls((directory / ONNX_FILE).read_bytes(), pass_column)

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        (proba,) = self._session.run(["probabilities"], {self._input: rows})
        return np.asarray(proba[:, self._pass_column], dtype=np.float32)


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
        "onnx": lambda d, m: OnnxForest.load(d, pass_column(m)),
        "sklearn": lambda d, m: SklearnForest(d),
    }
