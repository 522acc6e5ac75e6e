"""Fit every model family's member, evaluate them and their vote, save them to the store."""

from __future__ import annotations

import platform
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ensemble.combiners import majority_vote
from models.families import families
from train.data import Dataset
from train.evaluate import classification_metrics
from train.export import PARITY_LIMIT

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
    """Fitted trainers (member -> ``train.families.Trainer``) and the held-out evaluation."""

    models: dict[str, Any]
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
    train_idx, test_idx = _split(len(data.labels), config.test_fraction, data.labels, config.seed)
    x_train, y_train = data.features[train_idx], data.labels[train_idx]
    x_test, y_test = data.features[test_idx], data.labels[test_idx]
    progress(
        f"data: {data.source}: {len(train_idx)} train / {len(test_idx)} held-out rows, "
        f"{len(data.schema)} features, {1 - data.labels.mean():.1%} fail"
    )
    models: dict[str, Any] = {}
    for family in families():
        start = time.perf_counter()
        trainer = family.load_trainer()(config)
        trainer.fit(x_train, y_train)
        progress(f"{family.name}: {trainer.describe()} in {time.perf_counter() - start:.1f} s")
        models[family.name] = trainer
    p_test = {name: trainer.predict_proba(x_test) for name, trainer in models.items()}
    metrics = {m: classification_metrics(y_test, p, p >= 0.5) for m, p in p_test.items()}
    vote, probability = majority_vote(p_test)
    metrics["majority_vote"] = classification_metrics(y_test, probability, vote)
    return TrainedMembers(models, metrics, p_test, x_test), test_idx


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
    for family in families():
        member = family.name
        trainer = trained.models[member]
        tag = f"{family.store_name}:{version}"
        export, check = exports[member]
        metadata = {
            **common,
            "member": member,
            "metrics": trained.metrics[member],
            "runtimes": {},
            **trainer.metadata(),
        }
        if export is not None:
            saved_export = check["max_abs_diff"] <= PARITY_LIMIT
            metadata["runtimes"] = {
                export.runtime: {"file": export.file, "parity": check, "saved": saved_export}
            }
        with bentoml.models.create(tag, metadata=metadata) as saved:
            trainer.save(Path(saved.path))
            if export is not None and metadata["runtimes"][export.runtime]["saved"]:
                Path(saved.path_of(export.file)).write_bytes(export.blob)
        tags[member] = str(saved.tag)
    return tags


def _exports(trained: TrainedMembers) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Each member's fast runtime and its parity with the native model on the held-out rows."""
    from train.export import parity

    x = np.ascontiguousarray(trained.x_test, dtype=np.float32)
    out: dict[str, tuple[Any, dict[str, Any]]] = {}
    for member, trainer in trained.models.items():
        export = trainer.export(x)
        if export is None:
            out[member] = (None, {})
            continue
        check = parity(trained.p_pass_test[member], export.p_pass)
        ok = check["max_abs_diff"] <= PARITY_LIMIT
        print(
            f"{member}: {export.runtime} export, max |dP| {check['max_abs_diff']:.2e} on "
            f"{check['rows']} held-out rows" + ("" if ok else " - too far, not saved")
        )
        out[member] = (export, check)
    return out
