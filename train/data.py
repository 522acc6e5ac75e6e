"""Training data: a user's CSV/Parquet table, or the synthetic default, as checked arrays."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ensemble.schema import DEFAULT_FEATURES, FeatureSchema

#: Fewer labelled rows than this cannot give a meaningful held-out evaluation.
MIN_ROWS = 200
#: Fewest rows of the rarer class (pass or fail).
MIN_PER_CLASS = 10
_PASS_WORDS = {"pass", "passed", "good", "p", "true", "yes"}
_FAIL_WORDS = {"fail", "failed", "bad", "f", "false", "no"}


class TrainingDataError(ValueError):
    """The training table cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class Dataset:
    """Features (n, k) float32 in schema order and labels (n,) with 1 = pass."""

    features: np.ndarray
    labels: np.ndarray
    schema: FeatureSchema
    source: str
    #: Saved beside the feature schema in every member's and the decision's metadata
    #: (``stdf_tests``: the test-to-feature map of a model trained from tester files).
    metadata: dict[str, Any] = field(default_factory=dict)
    #: The wafer of each row when known: the reference keeps the wafer-to-wafer spread.
    groups: np.ndarray | None = None
    #: Hold out whole wafers (``groups``), as a new wafer will come (spatial training);
    #: else dies, stratified, as before.
    whole_wafers: bool = False

    @property
    def sha256(self) -> str:
        """Content hash of features, labels and feature names: identifies the training data."""
        digest = hashlib.sha256()
        digest.update("\0".join(self.schema.names).encode())
        digest.update(np.ascontiguousarray(self.features).tobytes())
        digest.update(np.ascontiguousarray(self.labels).tobytes())
        return digest.hexdigest()


def _labels(column: pd.Series, name: str) -> np.ndarray:
    """Map a label column to 1 = pass / 0 = fail: 0/1, booleans, or pass/fail words."""
    if column.isna().any():
        raise TrainingDataError(
            f"label column '{name}' has {int(column.isna().sum())} empty values"
        )
    if pd.api.types.is_bool_dtype(column):
        return np.asarray(column.to_numpy(), dtype=np.int8)
    if pd.api.types.is_numeric_dtype(column):
        values = set(np.unique(column.to_numpy()).tolist())
        if not values <= {0, 1}:
            raise TrainingDataError(
                f"label column '{name}' must hold 1 (pass) and 0 (fail); found {sorted(values)[:5]}"
            )
        return np.asarray(column.to_numpy(), dtype=np.int8)
    words = column.astype(str).str.strip().str.lower()
    unknown = sorted(set(words) - _PASS_WORDS - _FAIL_WORDS)
    if unknown:
        raise TrainingDataError(
            f"label column '{name}' must say pass or fail (or 1/0); found {unknown[:5]}"
        )
    return np.asarray(words.isin(_PASS_WORDS).to_numpy(), dtype=np.int8)


def from_frame(
    frame: pd.DataFrame, label: str, features: list[str] | None = None, source: str = "<frame>"
) -> Dataset:
    """Check a table and split it into features and labels.

    ``features`` defaults to every column but the label; each must be numeric
    with no missing or infinite values.
    """
    if label not in frame.columns:
        raise TrainingDataError(
            f"label column '{label}' not found in {source}; columns are {list(frame.columns)}"
        )
    names = features if features is not None else [c for c in frame.columns if c != label]
    missing = [c for c in names if c not in frame.columns]
    if missing:
        which = ", ".join(f"'{c}'" for c in missing)
        raise TrainingDataError(
            f"feature column{'s' * (len(missing) > 1)} {which} not found in {source}"
        )
    if not names:
        raise TrainingDataError(f"{source} has no feature columns besides the label '{label}'")
    text = [
        f"'{n}' ({frame[n].dtype})"
        for n in names
        if pd.api.types.is_bool_dtype(frame[n]) or not pd.api.types.is_numeric_dtype(frame[n])
    ]
    if text:
        raise TrainingDataError(
            f"feature column{'s' * (len(text) > 1)} {', '.join(text)} "
            f"{'are' if len(text) > 1 else 'is'} not numeric; drop "
            f"{'them' if len(text) > 1 else 'it'} or choose the feature columns with --features"
        )
    for name in names:
        column = frame[name]
        values = column.to_numpy(dtype=np.float64)
        bad = int((~np.isfinite(values)).sum())
        if bad:
            raise TrainingDataError(f"feature column '{name}' has {bad} missing or infinite values")
    if len(frame) < MIN_ROWS:
        raise TrainingDataError(f"{source} has {len(frame)} rows; at least {MIN_ROWS} are needed")
    labels = _labels(frame[label], label)
    n_pass = int(labels.sum())
    n_fail = len(labels) - n_pass
    if min(n_pass, n_fail) == 0:
        only = "pass" if n_fail == 0 else "fail"
        raise TrainingDataError(
            f"every row of {source} is labelled {only}; both classes are needed"
        )
    if min(n_pass, n_fail) < MIN_PER_CLASS:
        raise TrainingDataError(
            f"{source} has {n_pass} pass and {n_fail} fail rows; "
            f"at least {MIN_PER_CLASS} of each are needed"
        )
    x = frame[names].to_numpy(dtype=np.float32)
    schema = FeatureSchema(
        names=tuple(names),
        dtypes=tuple(str(frame[n].dtype) for n in names),
        minimums=tuple(float(v) for v in x.min(axis=0)),
        maximums=tuple(float(v) for v in x.max(axis=0)),
    )
    return Dataset(features=x, labels=labels, schema=schema, source=source)


def load_table(path: str | Path, label: str, features: list[str] | None = None) -> Dataset:
    """Read a .csv or .parquet file and check it with :func:`from_frame`."""
    return from_frame(read_table(path), label, features, source=str(path))


def read_table(path: str | Path) -> pd.DataFrame:
    """A .csv or .parquet file as a DataFrame; TrainingDataError when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise TrainingDataError(f"no such file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise TrainingDataError(f"{path}: expected a .csv or .parquet file")
    except TrainingDataError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        raise TrainingDataError(f"cannot read {path}: {exc}") from exc
    return frame


def synthetic(n_devices: int, seed: int) -> Dataset:
    """The documented synthetic default (see ``train.synthetic``)."""
    from train.synthetic import generate

    frame = generate(n_devices=n_devices, seed=seed)
    data = from_frame(
        frame, "passed", list(DEFAULT_FEATURES), source=f"synthetic(n={n_devices}, seed={seed})"
    )
    return replace(data, groups=frame["wafer_id"].to_numpy())
