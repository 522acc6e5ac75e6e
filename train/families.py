"""How each built-in model family is fitted, saved and exported (``models.families`` names them).

A trainer is built from the ``TrainConfig`` and offers: ``fit(x, y)``, ``describe()``,
``predict_proba(x)`` (the native model's P(pass)), ``metadata()`` (what the adapter needs
besides the files), ``save(directory)`` (native files), and ``export(x)``: the fast
runtime as ``Export`` (runtime, file, bytes, and that export's P(pass) on ``x`` for the
parity check), a list of them, or None.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from train.fit import TrainConfig


@dataclass(frozen=True)
class Export:
    runtime: str
    file: str
    blob: bytes
    p_pass: np.ndarray  # the export's P(pass) on the rows it was checked on


class Trainer(Protocol):
    def fit(self, x: np.ndarray, y: np.ndarray) -> None: ...
    def describe(self) -> str: ...
    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...
    def metadata(self) -> dict[str, Any]: ...
    def save(self, directory: Path) -> None: ...
    def export(self, x: np.ndarray) -> Export | list[Export] | None: ...


class RandomForestTrainer:
    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.model: Any = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> None:
        from sklearn.ensemble import RandomForestClassifier

        c = self.config
        self.model = RandomForestClassifier(
            n_estimators=c.rf_trees,
            max_depth=c.rf_max_depth,
            min_samples_leaf=2,
            n_jobs=-1,
            random_state=c.seed,
        ).fit(x, y)

    def describe(self) -> str:
        return f"{self.config.rf_trees} trees"

    @property
    def pass_column(self) -> int:
        return list(self.model.classes_).index(1)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(x)[:, self.pass_column])

    def metadata(self) -> dict[str, Any]:
        return {"pass_column": self.pass_column}

    def save(self, directory: Path) -> None:
        import joblib

        from models.random_forest import SKLEARN_FILE

        joblib.dump(self.model, directory / SKLEARN_FILE)

    def export(self, x: np.ndarray) -> Export | None:
        from models.onnx_trees import OnnxTreeEnsemble
        from models.random_forest import ONNX_FILE
        from train.export import random_forest_onnx

        blob = random_forest_onnx(self.model, x.shape[1])
        return Export(
            "onnx", ONNX_FILE, blob, OnnxTreeEnsemble(blob, self.pass_column).predict_proba(x)
        )


class XGBoostTrainer:
    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.model: Any = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> None:
        import xgboost as xgb

        c = self.config
        self.model = (
            xgb.XGBClassifier(
                n_estimators=c.xgb_rounds,
                max_depth=c.xgb_max_depth,
                learning_rate=0.1,
                subsample=0.9,
                colsample_bytree=0.9,
                random_state=c.seed,
                n_jobs=2,
                objective="binary:logistic",
                eval_metric="logloss",
            )
            .fit(x, y)
            .get_booster()
        )

    def describe(self) -> str:
        return f"{self.config.xgb_rounds} rounds"

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.inplace_predict(x))

    def metadata(self) -> dict[str, Any]:
        return {}

    def save(self, directory: Path) -> None:
        from models.xgb import BOOSTER_FILE

        self.model.save_model(directory / BOOSTER_FILE)

    def export(self, x: np.ndarray) -> list[Export]:
        import tempfile

        from models.onnx_trees import OnnxTreeEnsemble
        from models.xgb import ONNX_FILE, TL2CGEN_FILE, CompiledTrees
        from train.export import xgboost_onnx, xgboost_tl2cgen

        blob = xgboost_onnx(self.model, x.shape[1])
        exports = [Export("onnx", ONNX_FILE, blob, OnnxTreeEnsemble(blob, 1).predict_proba(x))]
        with tempfile.TemporaryDirectory() as tmp:
            library = Path(tmp) / TL2CGEN_FILE
            if xgboost_tl2cgen(self.model, library):
                p_pass = CompiledTrees(library).predict_proba(x)
                exports.append(Export("tl2cgen", TL2CGEN_FILE, library.read_bytes(), p_pass))
        return exports


class KerasTrainer:
    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.model: Any = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras

        # Out-of-fold training builds a model per fold; TensorFlow warns of "retracing".
        logging.getLogger("tensorflow").setLevel(logging.ERROR)

        c = self.config
        keras.utils.set_random_seed(c.seed)
        norm = keras.layers.Normalization()
        norm.adapt(x)
        net = keras.Sequential(
            [keras.Input(shape=(x.shape[1],)), norm]
            + [keras.layers.Dense(units, activation="relu") for units in c.keras_hidden]
            + [keras.layers.Dense(1, activation="sigmoid")]
        )
        net.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
        net.fit(
            x,
            y.astype(np.float32),
            epochs=c.keras_epochs,
            batch_size=256,
            validation_split=0.1,
            shuffle=True,
            verbose=0,
            callbacks=[keras.callbacks.EarlyStopping(patience=4, restore_best_weights=True)],
        )
        self.model = net
        self.width = x.shape[1]

    def describe(self) -> str:
        return f"MLP {self.width}-{'-'.join(map(str, self.config.keras_hidden))}-1"

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(x)).reshape(-1)

    def metadata(self) -> dict[str, Any]:
        return {}

    def save(self, directory: Path) -> None:
        from models.keras_mlp import KERAS_FILE

        self.model.save(directory / KERAS_FILE)

    def export(self, x: np.ndarray) -> Export | None:
        from models.keras_mlp import TFLITE_FILE, LiteRTNet
        from train.export import keras_tflite

        blob = keras_tflite(self.model)
        return Export("litert", TFLITE_FILE, blob, LiteRTNet(blob).predict_proba(x))
