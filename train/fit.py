"""Fit the three members, evaluate them and their vote, save them to the model store."""

from __future__ import annotations

import os
import platform
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ensemble.settings import MEMBERS, MODEL_NAMES
from ensemble.vote import majority_vote
from train.data import Dataset
from train.evaluate import classification_metrics

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainConfig:
    """Model sizes and seeds. The defaults are the shipped models; tests use tiny ones."""

    seed: int = 7
    test_fraction: float = 0.2
    rf_trees: int = 100
    rf_max_depth: int = 14
    xgb_rounds: int = 200
    xgb_max_depth: int = 5
    keras_epochs: int = 30
    keras_hidden: tuple[int, int] = (64, 32)

    @classmethod
    def tiny(cls, seed: int = 7) -> TrainConfig:
        """Seconds to train; for tests."""
        return cls(
            seed=seed,
            rf_trees=10,
            rf_max_depth=6,
            xgb_rounds=15,
            keras_epochs=3,
            keras_hidden=(16, 8),
        )


@dataclass
class TrainedMembers:
    """Fitted models plus the held-out evaluation of each and of the vote."""

    random_forest: Any
    xgboost: Any
    keras: Any
    metrics: dict[str, dict[str, float]]
    p_pass_test: dict[str, np.ndarray]
    x_test: np.ndarray


def _split(n: int, fraction: float, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test indices."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    train_idx, test_idx = train_test_split(
        idx, test_size=fraction, random_state=seed, stratify=labels
    )
    return np.sort(train_idx), np.sort(test_idx)


def fit(
    data: Dataset, config: TrainConfig, progress: Progress = print
) -> tuple[TrainedMembers, np.ndarray]:
    """Train all members on a stratified split; returns them and the held-out indices."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import xgboost as xgb
    from sklearn.ensemble import RandomForestClassifier

    train_idx, test_idx = _split(len(data.labels), config.test_fraction, data.labels, config.seed)
    x_train, y_train = data.features[train_idx], data.labels[train_idx]
    x_test, y_test = data.features[test_idx], data.labels[test_idx]
    progress(
        f"data: {data.source}: {len(train_idx)} train / {len(test_idx)} held-out rows, "
        f"{len(data.schema)} features, {1 - data.labels.mean():.1%} fail"
    )

    start = time.perf_counter()
    rf = RandomForestClassifier(
        n_estimators=config.rf_trees,
        max_depth=config.rf_max_depth,
        min_samples_leaf=2,
        n_jobs=-1,
        random_state=config.seed,
    ).fit(x_train, y_train)
    progress(f"random_forest: {config.rf_trees} trees in {time.perf_counter() - start:.1f} s")

    start = time.perf_counter()
    booster = (
        xgb.XGBClassifier(
            n_estimators=config.xgb_rounds,
            max_depth=config.xgb_max_depth,
            learning_rate=0.1,
            subsample=0.9,
            colsample_bytree=0.9,
            random_state=config.seed,
            n_jobs=2,
            objective="binary:logistic",
            eval_metric="logloss",
        )
        .fit(x_train, y_train)
        .get_booster()
    )
    progress(f"xgboost: {config.xgb_rounds} rounds in {time.perf_counter() - start:.1f} s")

    start = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    norm = keras.layers.Normalization()
    norm.adapt(x_train)
    net = keras.Sequential(
        [keras.Input(shape=(x_train.shape[1],)), norm]
        + [keras.layers.Dense(units, activation="relu") for units in config.keras_hidden]
        + [keras.layers.Dense(1, activation="sigmoid")]
    )
    net.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    net.fit(
        x_train,
        y_train.astype(np.float32),
        epochs=config.keras_epochs,
        batch_size=256,
        validation_split=0.1,
        shuffle=True,
        verbose=0,
        callbacks=[keras.callbacks.EarlyStopping(patience=4, restore_best_weights=True)],
    )
    progress(
        f"keras: MLP {x_train.shape[1]}-{'-'.join(map(str, config.keras_hidden))}-1 "
        f"in {time.perf_counter() - start:.1f} s"
    )

    p_test = {
        "random_forest": rf.predict_proba(x_test)[:, list(rf.classes_).index(1)],
        "xgboost": booster.inplace_predict(x_test),
        "keras": np.asarray(net.predict_on_batch(x_test)).reshape(-1),
    }
    metrics = {m: classification_metrics(y_test, p, p >= 0.5) for m, p in p_test.items()}
    vote, probability = majority_vote(p_test)
    metrics["majority_vote"] = classification_metrics(y_test, probability, vote)
    return TrainedMembers(rf, booster, net, metrics, p_test, x_test), test_idx


def _versions() -> dict[str, str]:
    import bentoml
    import keras
    import sklearn
    import tensorflow as tf
    import xgboost

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "bentoml": bentoml.__version__,
        "scikit-learn": sklearn.__version__,
        "xgboost": xgboost.__version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "onnxruntime": _version("onnxruntime"),
        "skl2onnx": _version("skl2onnx"),
        "ai-edge-litert": _version("ai-edge-litert"),
    }


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def new_version() -> str:
    """A model-store version shared by the three members of one training run."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + secrets.token_hex(2)


def save(
    trained: TrainedMembers, data: Dataset, config: TrainConfig, version: str | None = None
) -> dict[str, str]:
    """Save each member to the BentoML store under one version; returns member -> tag."""
    import bentoml
    import joblib

    from models.keras_mlp import KERAS_FILE
    from models.random_forest import SKLEARN_FILE
    from models.xgb import BOOSTER_FILE

    version = version or new_version()
    common: dict[str, Any] = {
        "features": data.schema.to_dict(),
        "data_sha256": data.sha256,
        "data_source": data.source,
        "n_rows": len(data.labels),
        "training_run": version,
        "train_config": {
            k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()
        },
        "versions": _versions(),
        "ensemble_metrics": trained.metrics["majority_vote"],
    }
    exports = _exports(trained)
    tags: dict[str, str] = {}
    for member in MEMBERS:
        tag = f"{MODEL_NAMES[member]}:{version}"
        runtime, file, blob, check = exports[member]
        metadata = {
            **common,
            "member": member,
            "metrics": trained.metrics[member],
            "runtimes": {runtime: {"file": file, "parity": check, "saved": blob is not None}},
        }
        if member == "random_forest":
            metadata["pass_column"] = list(trained.random_forest.classes_).index(1)
        with bentoml.models.create(tag, metadata=metadata) as saved:
            if member == "random_forest":
                joblib.dump(trained.random_forest, saved.path_of(SKLEARN_FILE))
            elif member == "xgboost":
                trained.xgboost.save_model(saved.path_of(BOOSTER_FILE))
            else:
                trained.keras.save(saved.path_of(KERAS_FILE))
            if blob is not None:
                Path(saved.path_of(file)).write_bytes(blob)
        tags[member] = str(saved.tag)
    return tags


def _exports(trained: TrainedMembers) -> dict[str, tuple[str, str, bytes | None, dict[str, Any]]]:
    """Each member's fast runtime, checked against its native model on the held-out rows."""
    from models.keras_mlp import TFLITE_FILE, LiteRTNet
    from models.random_forest import ONNX_FILE, OnnxForest
    from train.export import PARITY_LIMIT, keras_tflite, parity, random_forest_onnx, xgboost_onnx

    x = np.ascontiguousarray(trained.x_test, dtype=np.float32)
    pass_column = list(trained.random_forest.classes_).index(1)
    blobs = {
        "random_forest": ("onnx", ONNX_FILE, random_forest_onnx(trained.random_forest, x.shape[1])),
        "xgboost": ("onnx", ONNX_FILE, xgboost_onnx(trained.xgboost, x.shape[1])),
        "keras": ("litert", TFLITE_FILE, keras_tflite(trained.keras)),
    }
    served = {
        "random_forest": lambda b: OnnxForest(b, pass_column).predict_proba(x),
        "xgboost": lambda b: OnnxForest(b, 1).predict_proba(x),
        "keras": lambda b: LiteRTNet(b).predict_proba(x),
    }
    out: dict[str, tuple[str, str, bytes | None, dict[str, Any]]] = {}
    for member, (runtime, file, blob) in blobs.items():
        check = parity(trained.p_pass_test[member], served[member](blob))
        ok = check["max_abs_diff"] <= PARITY_LIMIT
        print(
            f"{member}: {runtime} export, max |dP| {check['max_abs_diff']:.2e} on "
            f"{check['rows']} held-out rows" + ("" if ok else " - too far, not saved")
        )
        out[member] = (runtime, file, blob if ok else None, check)
    return out
