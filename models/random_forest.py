"""scikit-learn RandomForest member adapter."""

from __future__ import annotations

import bentoml
import numpy as np


class RandomForestAdapter:
    """``RandomForestClassifier.predict_proba`` with one thread (the worker owns one core)."""

    runtime = "sklearn"

    def __init__(self, model: bentoml.Model) -> None:
        self._clf = bentoml.sklearn.load_model(model)
        self._clf.set_params(n_jobs=1)
        self._pass_column = list(self._clf.classes_).index(1)

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return self._clf.predict_proba(rows)[:, self._pass_column].astype(np.float32)
