"""Training with derived spatial features, and the comparison that says whether they help.

``spatial_dataset`` derives the features of ``ensemble.spatial`` with the very function
serving calls (``ensemble.spatial.derive``) from a table's raw columns, ``die_x``,
``die_y``, ``wafer_id`` (and ``lot_id`` when there), learns the die map's geometry from
the positions, and saves the spec in the model's metadata (``spatial``). Its rows carry
their wafer, so the held-out split holds out whole wafers.

``compare`` trains the same ensemble with and without the derived features on the same
split and judges both on the same held-out wafers: the paired difference in error rate
and in cost per die, with 95% intervals from a bootstrap over held-out wafers (dies of
one wafer are not independent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from ensemble.combiners import Objective
from ensemble.schema import FeatureSchema
from ensemble.spatial import FEATURES, METADATA_KEY, Geometry, Spec, derive
from train.data import Dataset, TrainingDataError, from_frame

POSITION_COLUMNS = ("die_x", "die_y", "wafer_id")
#: Bootstrap resamples of held-out wafers for the comparison's intervals.
RESAMPLES = 2000


def parse_features(text: str) -> tuple[str, ...]:
    """``radial,nnr`` -> the names, checked against ``ensemble.spatial.FEATURES``."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in FEATURES]
    if unknown or not names:
        raise TrainingDataError(
            f"--spatial: unknown feature {unknown[0] if unknown else text!r}; "
            f"choose from {','.join(FEATURES)}"
        )
    return names


def wafer_keys(frame: pd.DataFrame) -> list[tuple[Any, Any]]:
    """Each row's (lot_id, wafer_id), as serving groups dies (lot None when absent)."""
    lots = frame["lot_id"].tolist() if "lot_id" in frame.columns else [None] * len(frame)
    return list(zip(lots, frame["wafer_id"].tolist(), strict=True))


def _positions(frame: pd.DataFrame, source: str) -> np.ndarray:
    missing = [c for c in POSITION_COLUMNS if c not in frame.columns]
    if missing:
        raise TrainingDataError(
            f"spatial features need columns {list(POSITION_COLUMNS)}; {source} lacks {missing[0]!r}"
        )
    where = frame[["die_x", "die_y"]].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(where).all(axis=1) | (where != np.round(where)).any(axis=1)
    if bad.any() or frame["wafer_id"].isna().any():
        raise TrainingDataError(
            f"{source}: {int(bad.sum())} rows have no integer die_x/die_y and "
            f"{int(frame['wafer_id'].isna().sum())} no wafer_id; spatial features need every "
            "die's wafer and position (drop those rows)"
        )
    return np.asarray(where, dtype=np.int64)


def spatial_dataset(
    frame: pd.DataFrame,
    label: str,
    raw: Sequence[str],
    features: Sequence[str],
    tests: Sequence[str] | None = None,
    prior: str | None = None,
    source: str = "<frame>",
    keep: np.ndarray | None = None,
) -> Dataset:
    """The raw features of ``frame`` then the derived ones, with the spec in the metadata.

    ``tests`` (default: every raw feature but ``prior``) are those nnr and zscore derive
    from; ``prior`` the previous insertion's fail column (1 failed). ``keep`` (n,) bool:
    the training rows (default all); the features are derived over every row first, so a
    die's neighbours are all its wafer's dies, as serving sees a tester file whose parts
    are not all training rows. TrainingDataError when positions or wafers are missing, a
    wafer has two dies at one position, or fewer than 2 wafers are left to hold one out.
    """
    keep = np.ones(len(frame), dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    base = from_frame(frame[keep].reset_index(drop=True), label, list(raw), source)
    everything = frame[list(raw)].to_numpy(dtype=np.float32)
    if not np.isfinite(everything).all():
        raise TrainingDataError(f"{source}: the raw features have missing or infinite values")
    where = _positions(frame, source)
    keys = wafer_keys(frame)
    wafers = dict.fromkeys(k for k, kept in zip(keys, keep, strict=True) if kept)
    if len(wafers) < 2:
        raise TrainingDataError(
            f"{source}: {len(wafers)} wafer ({', '.join(str(w) for _, w in wafers)}); "
            "spatial training holds out whole wafers, so it needs at least 2"
        )
    chosen = tuple(tests) if tests else tuple(n for n in raw if n != prior)
    try:
        spec = Spec(tuple(features), tuple(raw), chosen, prior,
                    Geometry.of(where[:, 0], where[:, 1]))  # fmt: skip
        rows = derive(spec, everything, where, keys)[keep]
    except ValueError as exc:  # a bad spec, or InvalidInput: two dies at one position
        raise TrainingDataError(f"{source}: {exc}") from exc
    keys = [k for k, kept in zip(keys, keep, strict=True) if kept]
    derived = spec.derived()
    schema = FeatureSchema(
        names=(*base.schema.names, *derived),
        dtypes=(*base.schema.dtypes, *["float32"] * len(derived)),
        minimums=tuple(float(v) for v in rows.min(axis=0)),
        maximums=tuple(float(v) for v in rows.max(axis=0)),
    )
    index = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    groups = np.asarray([index[k] for k in keys], dtype=np.int64)
    return Dataset(rows, base.labels, schema, f"{source} + spatial {','.join(features)}",
                   {METADATA_KEY: spec.to_dict()}, groups, whole_wafers=True)  # fmt: skip


def plain(data: Dataset) -> Dataset:
    """The same rows without the derived features (the raw ones only), same wafers."""
    spec = Spec.from_dict(data.metadata[METADATA_KEY])
    k = len(spec.raw)
    return replace(data, features=np.ascontiguousarray(data.features[:, :k]),
                   schema=spec.raw_schema(data.schema), source=f"{data.source} (raw only)",
                   metadata={})  # fmt: skip


def _bootstrap(per_die: np.ndarray, wafer: np.ndarray, seed: int) -> list[float]:
    """95% interval of the mean of ``per_die`` resampling whole wafers."""
    wafers, inverse = np.unique(wafer, return_inverse=True)
    sums = np.bincount(inverse, weights=per_die, minlength=len(wafers))
    counts = np.bincount(inverse, minlength=len(wafers)).astype(np.float64)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(wafers), size=(RESAMPLES, len(wafers)))
    means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return [float(lo), float(hi)]


def judge(
    passed: dict[str, np.ndarray],
    actual: np.ndarray,
    wafer: np.ndarray,
    objective: Objective,
    seed: int,
) -> dict[str, Any]:
    """Both ensembles' decisions on the same held-out dies: error rate, escapes, overkill
    and cost per die each, and the paired difference (spatial - plain) with intervals."""
    actual = actual.astype(bool)
    out: dict[str, Any] = {"dies": len(actual), "wafers": len(np.unique(wafer)), "arms": {}}
    cost: dict[str, np.ndarray] = {}
    wrong: dict[str, np.ndarray] = {}
    for name, called in passed.items():
        escape, overkill = called & ~actual, ~called & actual
        wrong[name] = (escape | overkill).astype(np.float64)
        cost[name] = objective.escape_cost * escape + objective.overkill_cost * overkill
        out["arms"][name] = {
            "error": float(wrong[name].mean()),
            "error_ci95": _bootstrap(wrong[name], wafer, seed),
            "escapes": int(escape.sum()),
            "overkill": int(overkill.sum()),
            "cost_per_die": float(cost[name].mean()),
        }
    for what, per in (("error", wrong), ("cost_per_die", cost)):
        diff = per["spatial"] - per["plain"]
        out[f"{what}_difference"] = {"value": float(diff.mean()),
                                     "ci95": _bootstrap(diff, wafer, seed)}  # fmt: skip
    return out


def format_comparison(result: dict[str, Any]) -> str:
    """The comparison as a few lines of text (printed by training, kept in bench/results)."""
    lines = [f"held out: {result['dies']} dies on {result['wafers']} whole wafers"]
    for name, arm in result["arms"].items():
        lo, hi = arm["error_ci95"]
        lines.append(
            f"  {name:8s} error {arm['error']:.2%} [{lo:.2%}, {hi:.2%}]  escapes "
            f"{arm['escapes']}  overkill {arm['overkill']}  cost/die {arm['cost_per_die']:.4f}"
        )
    for what in ("error", "cost_per_die"):
        d = result[f"{what}_difference"]
        lo, hi = d["ci95"]
        verdict = (
            "spatial better" if hi < 0 else "spatial worse" if lo > 0 else "no difference shown"
        )
        lines.append(
            f"  spatial - plain {what}: {d['value']:+.4f} [{lo:+.4f}, {hi:+.4f}] ({verdict})"
        )
    return "\n".join(lines)


def compare(
    data: Dataset,
    spatial: Any,
    test_idx: np.ndarray,
    config: Any,
    objective: Objective,
    combiner: str,
    progress: Any = print,
) -> dict[str, Any]:
    """Fit the same ensemble on ``plain(data)`` (same split: the same wafers held out) and
    judge it against ``spatial`` (``train.fit.TrainedMembers`` fitted on ``data``)."""
    from train.fit import fit

    progress("the same ensemble without the derived features, on the same wafers:")
    raw, raw_idx = fit(plain(data), config, progress, objective, combiner, spatial.version)
    if not np.array_equal(raw_idx, test_idx):
        raise AssertionError("the plain and spatial fits held out different dies")
    passed = {}
    for name, trained in (("plain", raw), ("spatial", spatial)):
        d = trained.decision
        passed[name] = np.asarray(d.combiners[d.chosen].combine(trained.p_pass_test)[0], bool)
    assert data.groups is not None
    return judge(passed, data.labels[test_idx], data.groups[test_idx], objective, config.seed)
