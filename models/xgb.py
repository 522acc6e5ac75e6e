"""XGBoost member adapter: ONNX Runtime, a tl2cgen-compiled predictor or the XGBoost library,
chosen per batch size by training.

The XGBoost library alone is ~250 MB of RSS (it imports scikit-learn); the other two
never import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import bentoml
import numpy as np

from models.onnx_trees import OnnxTreeEnsemble
from models.runtimes import Loader, RuntimeAdapter, store_model

#: Files inside the member's model-store directory.
BOOSTER_FILE = "model.ubj"
ONNX_FILE = "model.onnx"
TL2CGEN_FILE = "model.tl2cgen.so"


class CompiledTrees:
    """The boosted trees compiled to a shared library by tl2cgen, one thread.

    The library is built by training on the machine that trains (a C compiler) and loads
    where the same platform runs it; ``tl2cgen`` (with ``treelite``) is the only import.
    """

    def __init__(self, library: Path) -> None:
        if not library.exists():
            raise FileNotFoundError(library)
        import tl2cgen

        self._tl2cgen = tl2cgen
        self._predictor = tl2cgen.Predictor(str(library), nthread=1)

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        out = self._predictor.predict(self._tl2cgen.DMatrix(rows, dtype="float32"))
        return np.asarray(out, dtype=np.float32).reshape(len(rows))


class NativeBooster:
    """``Booster.inplace_predict``: no DMatrix construction per call, one thread."""

    def __init__(self, directory: Path) -> None:
        import xgboost

        path = directory / BOOSTER_FILE
        if path.exists():
            booster = xgboost.Booster(model_file=str(path))
        else:  # saved by bentoml.xgboost before the ONNX export existed
            booster = bentoml.xgboost.load_model(store_model(directory))
            if not hasattr(booster, "inplace_predict"):
                booster = booster.get_booster()
        booster.set_param({"nthread": 1})
        self._booster = booster

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        # binary:logistic yields P(label == 1), and label 1 is "pass".
        return np.asarray(self._booster.inplace_predict(rows), dtype=np.float32).reshape(-1)


class XGBoostAdapter(RuntimeAdapter):
    """P(pass) from the booster; runtimes "onnx" (default), "tl2cgen", "xgboost" (native)."""

    # Same ONNX output layout as the forest: probabilities (n, 2), column 1 = pass.
    LOADERS: Mapping[str, Loader] = {
        "onnx": lambda d, m: OnnxTreeEnsemble((d / ONNX_FILE).read_bytes(), 1),
        "tl2cgen": lambda d, m: CompiledTrees(d / TL2CGEN_FILE),
        "xgboost": lambda d, m: NativeBooster(d),
    }
