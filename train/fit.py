"""Fit every model family's member out of fold and in full, fit the decision, save them all.

``fit`` trains each member k times on k-1 folds of the training split (out-of-fold
probabilities, what ``train.decide`` fits calibrations, combiners and the threshold
on), then once on the whole training split (the served model), and judges every
member and combiner once on the held-out split.
"""

from __future__ import annotations

import functools
import platform
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ensemble import decision as decision_store
from ensemble.combiners import Objective
from ensemble.decision import Decision
from ensemble.drift import Reference
from models.families import families
from models.runtimes import CHOICE_KEY
from train.data import Dataset
from train.decide import Fitted, decide_all, fit_decision, fold_ids, table, verdict
from train.evaluate import classification_metrics
from train.export import PARITY_LIMIT
from train.reference import fit_reference
from train.runtimes import measure

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
    #: Folds of the training split for the out-of-fold probabilities.
    folds: int = 5

    @classmethod
    def tiny(cls, seed: int = 7) -> TrainConfig:
        """Seconds to train; for tests (3 folds: each Keras fit costs ~1 s of tracing)."""
        return cls(
            seed=seed,
            rf_trees=10,
            rf_max_depth=6,
            xgb_rounds=15,
            keras_epochs=3,
            keras_hidden=(16, 8),
            folds=3,
        )


@dataclass
class TrainedMembers:
    """Fitted trainers (member -> ``train.families.Trainer``), the decision, the evaluations."""

    models: dict[str, Any]
    metrics: dict[str, dict[str, float]]  # held-out, per member and the served combiner
    p_pass_test: dict[str, np.ndarray]
    x_test: np.ndarray
    version: str
    fitted: Fitted
    held_out: dict[str, dict[str, Any]]  # ledger.stats.decision_metrics per candidate
    verdict: dict[str, Any]
    #: The features' reference distributions (``ensemble.drift``), saved with the models.
    reference: Reference | None = None

    @property
    def decision(self) -> Decision:
        return self.fitted.decision


def _split(
    n: int, fraction: float, labels: np.ndarray, seed: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test indices; with ``groups`` (wafers), whole groups held out."""
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    idx = np.arange(n)
    if groups is not None:
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        train_idx, test_idx = next(splitter.split(idx, labels, groups))
        return np.sort(train_idx), np.sort(test_idx)
    train_idx, test_idx = train_test_split(
        idx, test_size=fraction, random_state=seed, stratify=labels
    )
    return np.sort(train_idx), np.sort(test_idx)


def out_of_fold(
    x: np.ndarray,
    y: np.ndarray,
    fold: np.ndarray,
    makers: Mapping[str, Callable[[], Any]],
    progress: Progress = print,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Each member's out-of-fold P(pass) on (x, y), and its final fit on all of them.

    ``makers``: member -> a function making an unfitted ``train.families.Trainer``.
    """
    p_oof: dict[str, np.ndarray] = {}
    models: dict[str, Any] = {}
    folds = np.unique(fold)
    for name, make in makers.items():
        start = time.perf_counter()
        p_oof[name] = np.empty(len(y))
        for j in folds:
            held = fold == j
            trainer = make()
            trainer.fit(x[~held], y[~held])
            p_oof[name][held] = trainer.predict_proba(x[held])
        trainer = make()
        trainer.fit(x, y)
        progress(
            f"{name}: {trainer.describe()}, {len(folds)} folds and the final fit in "
            f"{time.perf_counter() - start:.1f} s"
        )
        models[name] = trainer
    return p_oof, models


def fit(
    data: Dataset,
    config: TrainConfig,
    progress: Progress = print,
    objective: Objective | None = None,
    combiner: str = "majority",
    version: str | None = None,
) -> tuple[TrainedMembers, np.ndarray]:
    """Train all members on a stratified split; returns them and the held-out indices."""
    objective = objective or Objective()
    version = version or new_version()
    wafers = data.groups if data.whole_wafers else None
    train_idx, test_idx = _split(
        len(data.labels), config.test_fraction, data.labels, config.seed, wafers
    )
    x_train, y_train = data.features[train_idx], data.labels[train_idx]
    x_test, y_test = data.features[test_idx], data.labels[test_idx]
    held = "" if wafers is None else f" ({len(np.unique(wafers[test_idx]))} whole wafers)"
    progress(
        f"data: {data.source}: {len(train_idx)} train / {len(test_idx)} held-out rows{held}, "
        f"{len(data.schema)} features, {1 - data.labels.mean():.1%} fail"
    )
    fold = fold_ids(y_train, config.folds, config.seed)
    makers = {f.name: functools.partial(f.load_trainer(), config) for f in families()}
    p_oof, models = out_of_fold(x_train, y_train, fold, makers, progress)
    tags = {f.name: f"{f.store_name}:{version}" for f in families()}
    fitted = fit_decision(p_oof, y_train, fold, objective, combiner, version, tags)
    d = fitted.decision
    progress(
        "calibration: "
        + ", ".join(f"{m} {c.calibration[m].kind}" for m, c in d.singles.items())
        + f"; serving {d.chosen} ({fitted.reason}), threshold {d.combiners[d.chosen].threshold:.4f}"
    )
    p_test = {name: trainer.predict_proba(x_test) for name, trainer in models.items()}
    passed = decide_all(d, p_test)
    held_out = table(passed, y_test, objective)
    metrics = {m: classification_metrics(y_test, p, p >= 0.5) for m, p in p_test.items()}
    served = d.combiners[d.chosen]
    passed_served, probability = served.combine(p_test)
    metrics[f"ensemble_{d.chosen}"] = classification_metrics(y_test, probability, passed_served)
    groups = None if data.groups is None else data.groups[train_idx]
    reference = fit_reference(data.schema.names, x_train, x_test, groups)
    trained = TrainedMembers(
        models,
        metrics,
        p_test,
        x_test,
        version,
        fitted,
        held_out,
        verdict(passed, y_test, d),
        reference,
    )
    return trained, test_idx


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
        **{p: _version(p) for p in ("tl2cgen", "treelite") if _installed(p)},
    }


def _installed(package: str) -> bool:
    from importlib.util import find_spec

    return find_spec(package) is not None


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def new_version() -> str:
    """A model-store version shared by the three members of one training run."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + secrets.token_hex(2)


def save(trained: TrainedMembers, data: Dataset, config: TrainConfig) -> dict[str, str]:
    """Save each member and the decision to the store under one version; returns name -> tag."""
    import bentoml

    version = trained.version
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
        "ensemble_metrics": metadata_safe(trained.held_out[trained.decision.chosen]),
        "combiner": trained.decision.combiners[trained.decision.chosen].key,
        **({} if trained.reference is None else {"reference": trained.reference.to_dict()}),
        **data.metadata,
    }
    exports = _exports(trained)
    x = np.ascontiguousarray(trained.x_test, dtype=np.float32)
    tags: dict[str, str] = {}
    for family in families():
        member = family.name
        trainer = trained.models[member]
        tag = f"{family.store_name}:{version}"
        metadata = {
            **common,
            "member": member,
            "metrics": trained.metrics[member],
            "runtimes": {},
            **trainer.metadata(),
        }
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            trainer.save(directory)
            for export, check in exports[member]:
                saved_export = check["max_abs_diff"] <= PARITY_LIMIT
                metadata["runtimes"][export.runtime] = {
                    "file": export.file,
                    "parity": check,
                    "saved": saved_export,
                }
                if saved_export:
                    (directory / export.file).write_bytes(export.blob)
            print(f"{member}: runtimes timed on held-out rows")
            choice = measure(
                family.load_adapter(), directory, metadata, x, trained.p_pass_test[member]
            )
            if choice is not None:
                metadata[CHOICE_KEY] = metadata_safe(choice.to_metadata())
            with bentoml.models.create(tag, metadata=metadata) as saved:
                shutil.copytree(directory, saved.path, dirs_exist_ok=True)
        tags[member] = str(saved.tag)
    tags["decision"] = _save_decision(trained, common, data.metadata)
    return tags


def metadata_safe(value: Any) -> Any:
    """``value`` without the None entries BentoML's model metadata refuses (an empty interval)."""
    if isinstance(value, dict):
        return {k: metadata_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [metadata_safe(v) for v in value if v is not None]
    return value


def _save_decision(trained: TrainedMembers, common: dict[str, Any], extra: dict[str, Any]) -> str:
    """The decision as ``yield-decision:<version>``: its JSON, and its tables in the metadata."""
    import json

    import bentoml

    d = trained.decision
    tables = {**d.tables, "held_out": trained.held_out, "verdict": trained.verdict}
    metadata = {
        **{k: common[k] for k in ("data_sha256", "data_source", "training_run", "versions")},
        **extra,
        "chosen": d.chosen,
        "objective": d.objective.to_dict(),
        "members": dict(d.members),
        "tables": tables,
    }
    tag = f"{decision_store.STORE_NAME}:{trained.version}"
    with bentoml.models.create(tag, metadata=metadata_safe(metadata)) as saved:
        body = {**d.to_dict(), "tables": tables}
        Path(saved.path_of(decision_store.FILE)).write_text(json.dumps(body, indent=1))
    return str(saved.tag)


def _exports(trained: TrainedMembers) -> dict[str, list[tuple[Any, dict[str, Any]]]]:
    """Each member's fast runtimes and their parity with the native model on the held-out
    rows."""
    from train.export import parity

    x = np.ascontiguousarray(trained.x_test, dtype=np.float32)
    out: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
    for member, trainer in trained.models.items():
        made = trainer.export(x)
        out[member] = []
        for export in made if isinstance(made, list) else [made] if made is not None else []:
            check = parity(trained.p_pass_test[member], export.p_pass)
            ok = check["max_abs_diff"] <= PARITY_LIMIT
            print(
                f"{member}: {export.runtime} export, max |dP| {check['max_abs_diff']:.2e} on "
                f"{check['rows']} held-out rows" + ("" if ok else " - too far, not saved")
            )
            out[member].append((export, check))
    return out
