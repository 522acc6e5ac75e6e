"""Fast serving runtimes for trained members, and their parity with the native model.

RandomForest -> ONNX (skl2onnx), XGBoost -> ONNX (onnxmltools), both run by ONNX
Runtime; XGBoost -> a shared library compiled by tl2cgen (treelite); Keras -> LiteRT
(TFLite flatbuffer).
Each export is checked at training time: the largest absolute difference of
P(pass) against the native model on the held-out rows goes into the metadata.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

#: Exports whose answers differ more than this from the native model are not saved.
PARITY_LIMIT = 1e-4


def random_forest_onnx(clf: Any, width: int) -> bytes:
    """The forest as ONNX: float32 input ``X`` (n, width), output ``probabilities`` (n, 2)."""
    from skl2onnx import to_onnx

    sample = np.zeros((1, width), dtype=np.float32)
    onx = to_onnx(clf, sample, options={id(clf): {"zipmap": False}}, target_opset=17)
    return bytes(onx.SerializeToString())


def xgboost_onnx(booster: Any, width: int) -> bytes:
    """The booster as ONNX, same layout as the forest: ``probabilities`` (n, 2)."""
    from onnxmltools.convert import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    # onnxmltools converts XGBoost up to opset 15.
    onx = convert_xgboost(
        booster, initial_types=[("X", FloatTensorType([None, width]))], target_opset=15
    )
    return bytes(onx.SerializeToString())


def xgboost_tl2cgen(booster: Any, library: Path) -> bool:
    """Compile the booster to ``library`` (a shared object) with tl2cgen; False, and
    nothing written, when tl2cgen or a C compiler is not installed."""
    if shutil.which("gcc") is None:
        return False
    try:
        import tl2cgen
        import treelite
    except ImportError:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "model.ubj"
        booster.save_model(saved)
        trees = treelite.frontend.load_xgboost_model(str(saved))
        tl2cgen.export_lib(trees, toolchain="gcc", libpath=str(library), nthread=1)
    return True


def keras_tflite(net: Any) -> bytes:
    """The Keras model as a LiteRT flatbuffer (float32, no quantisation)."""
    import contextlib
    import io

    import tensorflow as tf

    # The converter prints its intermediate SavedModel's signature; keep the CLI readable.
    with contextlib.redirect_stdout(io.StringIO()):
        return bytes(tf.lite.TFLiteConverter.from_keras_model(net).convert())


def parity(native: np.ndarray, exported: np.ndarray) -> dict[str, Any]:
    """How far the export's P(pass) strays from the native model's on the same rows."""
    diff = np.abs(np.asarray(native, dtype=np.float64) - np.asarray(exported, dtype=np.float64))
    decision = np.sum((np.asarray(native) >= 0.5) != (np.asarray(exported) >= 0.5))
    return {
        "rows": len(diff),
        "max_abs_diff": float(diff.max()) if len(diff) else 0.0,
        "decisions_changed": int(decision),
    }
