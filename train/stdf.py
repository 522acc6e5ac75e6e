"""Training from tester files: one row per part, labels, the stop-on-fail leak, empty cells.

``dataset`` turns STDF files into the :class:`train.data.Dataset` the usual training path
takes, with the :class:`stdf.testmap.TestMap` in its metadata so every saved model carries
it. ``leak`` measures how much the pattern of empty cells alone tells about the label;
``empty_cell_options`` compares ways of filling them on held-out parts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stdf import NO_COORD, Parts, StdfInvalid, concat
from stdf.decode import decode
from stdf.testmap import METADATA_KEY, PRIOR_FAIL, TestMap
from train.data import Dataset, TrainingDataError, from_frame

#: Largest tester file read from disk (decompressed), bytes.
MAX_FILE_BYTES = 4 << 30
#: A missingness-only classifier this much more accurate than always-the-majority is a leak.
LEAK_MARGIN = 0.02

Say = Callable[[str], None]


def read(paths: Sequence[str | Path]) -> Parts:
    """Every file's parts, tests aligned; TrainingDataError naming the file that is refused."""
    many = []
    for path in paths:
        try:
            many.append(decode(Path(path).read_bytes(), max_bytes=MAX_FILE_BYTES))
        except OSError as exc:
            raise TrainingDataError(f"cannot read {path}: {exc.strerror}") from None
        except StdfInvalid as exc:
            raise TrainingDataError(f"{path}: {exc.message}") from None
        many[-1].info["path"] = str(path)
    return concat(many)


def labels(
    parts: Parts, good_bins: Sequence[int] | None = None, outcomes: Parts | None = None
) -> np.ndarray:
    """(n,) float: 1 pass, 0 fail, NaN unknown. From PRR PART_FLG, else hard bins in
    ``good_bins``, else a later insertion's parts joined by PART_ID, or by lot/wafer/x/y."""
    if outcomes is not None:
        known = [
            (pid, lot, wafer, int(x), int(y), bool(ok))
            for pid, lot, wafer, x, y, ok, sure in zip(
                outcomes.part_id, outcomes.lot, outcomes.wafer, outcomes.x, outcomes.y,
                outcomes.passed, outcomes.pass_known, strict=True,
            )
            if sure
        ]  # fmt: skip
        by_id = {k[0]: k[5] for k in known if k[0] is not None}
        by_xy = {k[1:5]: k[5] for k in known if k[2] is not None and k[3] != NO_COORD}
        out = np.full(len(parts), np.nan)
        for i in range(len(parts)):
            found = by_id.get(parts.part_id[i])
            if found is None and parts.wafer[i] is not None:
                key = (parts.lot[i], parts.wafer[i], int(parts.x[i]), int(parts.y[i]))
                found = by_xy.get(key)
            if found is not None:
                out[i] = float(found)
        return out
    if good_bins is not None:
        return np.isin(parts.hard_bin, list(good_bins)).astype(float)
    return np.where(parts.pass_known, parts.passed.astype(float), np.nan)


@dataclass(frozen=True)
class Leak:
    """How much which cells are empty gives the label away, on held-out parts."""

    fail_share_with_empty: float  # share of fails among parts with any empty chosen cell
    fail_share_complete: float  # among parts with every chosen cell
    parts_with_empty: int
    accuracy_missingness: float  # held-out accuracy of a tree on the empty-cell pattern only
    accuracy_majority: float  # always the commoner class

    @property
    def leaky(self) -> bool:
        return self.accuracy_missingness > self.accuracy_majority + LEAK_MARGIN

    def describe(self) -> str:
        if not self.parts_with_empty:
            return "no part has an empty cell of these tests"
        return (
            f"{self.parts_with_empty} parts have an empty cell: {self.fail_share_with_empty:.1%} "
            f"of them fail against {self.fail_share_complete:.1%} of the complete ones; the "
            f"empty-cell pattern alone predicts held-out parts {self.accuracy_missingness:.1%} "
            f"right (always-the-majority {self.accuracy_majority:.1%})"
        )


def _split(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The held-out parts: 20%, stratified, as the training path splits (by part, not wafer)."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(np.arange(len(y)), test_size=0.2, random_state=seed, stratify=y)
    return np.sort(train), np.sort(test)


def leak(empty: np.ndarray, y: np.ndarray, seed: int) -> Leak:
    """``empty`` (n, k) bool cells of the chosen tests, ``y`` (n,) 1 = pass."""
    from sklearn.tree import DecisionTreeClassifier

    any_empty: np.ndarray = np.asarray(empty.any(axis=1))
    train, test = _split(y, seed)
    tree = DecisionTreeClassifier(max_depth=6, random_state=seed).fit(empty[train], y[train])
    majority = float(max(y[test].mean(), 1 - y[test].mean()))

    def fail_share(rows: np.ndarray) -> float:
        return float(1 - y[rows].mean()) if rows.any() else float("nan")

    return Leak(
        fail_share(any_empty), fail_share(~any_empty), int(any_empty.sum()),
        float((tree.predict(empty[test]) == y[test]).mean()), majority,
    )  # fmt: skip


def empty_cell_options(
    parts: Parts, y: np.ndarray, patterns: Sequence[str] | None, seed: int
) -> dict[str, float]:
    """Held-out accuracy of a RandomForest (100 trees) per way of handling empty cells, the
    fills taken from the training parts only: median, median + indicators, complete tests."""
    from sklearn.ensemble import RandomForestClassifier

    train, test = _split(y, seed)
    fit_parts = subset(parts, train)
    scores: dict[str, float] = {}
    for name, kwargs in (
        ("median", {}),
        ("median + empty indicators", {"indicators": True}),
        ("only tests every part ran", {"only_complete": True}),
    ):
        try:
            test_map = TestMap.choose(fit_parts, patterns, **kwargs)
        except ValueError:
            continue
        model = RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
        model.fit(test_map.rows(fit_parts), y[train])
        scores[name] = float((model.predict(test_map.rows(subset(parts, test))) == y[test]).mean())
    return scores


def subset(parts: Parts, rows: np.ndarray) -> Parts:
    """The parts at ``rows`` (indices or a mask)."""
    arrays: dict[str, Any] = {
        name: getattr(parts, name)[rows]
        for name in ("part_id", "lot", "wafer", "head", "site", "x", "y", "hard_bin",
                     "soft_bin", "passed", "pass_known", "retests", "values")
    }  # fmt: skip
    return replace(parts, **arrays)


def dataset(
    parts: Parts,
    y: np.ndarray,
    test_map: TestMap,
    source: str,
) -> Dataset:
    """One row per part with a known label, through the usual checks (``from_frame``)."""
    known = ~np.isnan(y)
    rows = test_map.rows(subset(parts, np.flatnonzero(known)))
    frame = pd.DataFrame(rows, columns=list(test_map.feature_names))
    frame["passed"] = y[known].astype(np.int8)
    data = from_frame(frame, "passed", list(test_map.feature_names), source=source)
    return replace(data, metadata={METADATA_KEY: test_map.to_dict()})


def spatial_dataset(
    parts: Parts,
    y: np.ndarray,
    keep: np.ndarray,
    test_map: TestMap,
    features: Sequence[str],
    tests: Sequence[str] | None,
    source: str,
) -> Dataset:
    """One row per part in ``keep`` (indices): the test map's columns then the derived
    spatial ``features`` (``train.spatial.spatial_dataset``, whole wafers held out).

    The features are derived over every part of ``parts`` with ``test_map.rows``, as
    ``/predict_stdf`` derives them over every part of a file: a die's neighbours are all its
    wafer's dies, training rows or not. ``prior`` reads ``sort_fail`` (the map's
    ``prior_fail`` column). TrainingDataError when a part has no die position (PRR
    X_COORD/Y_COORD -32768) or no wafer (WIR), as serving refuses such a file (422).
    """
    from stdf.format import id_text
    from train import spatial

    unplaced = int(((parts.x == NO_COORD) | (parts.y == NO_COORD)).sum())
    if unplaced:
        raise TrainingDataError(
            f"{unplaced} of {len(parts)} parts have no die position (PRR X_COORD/Y_COORD "
            f"{NO_COORD}): spatial features need every die's place on its wafer (/predict_stdf "
            "answers such a file 422 naming die_x, die_y)"
        )
    wafer = id_text(parts.wafer)
    if None in wafer:
        raise TrainingDataError(
            f"{wafer.count(None)} of {len(parts)} parts are outside any wafer (no WIR "
            "WAFER_ID): spatial training holds out whole wafers"
        )
    raw = list(test_map.feature_names)
    frame = pd.DataFrame(test_map.rows(parts), columns=raw)
    frame["die_x"], frame["die_y"] = parts.x, parts.y
    frame["wafer_id"], frame["lot_id"] = wafer, id_text(parts.lot)
    frame["passed"] = y
    mask = np.zeros(len(parts), dtype=bool)
    mask[keep] = True
    prior = PRIOR_FAIL if "prior" in features else None
    chosen = list(tests) if tests else [t.feature for t in test_map.tests]
    data = spatial.spatial_dataset(frame, "passed", raw, features, chosen, prior, source, mask)
    return replace(data, metadata={METADATA_KEY: test_map.to_dict(), **data.metadata})


def inspect(parts: Parts, say: Say = print) -> None:
    """What a yield engineer checks first: tester, lot, wafers, parts, sites, tests, bins."""
    info = parts.info
    say(f"tester {info.get('tester')} ({info.get('node')}), {info.get('byte_order')}, "
        f"{info.get('bytes', 0):,} bytes; part type {info.get('part_type')}, "
        f"job {info.get('job')}")  # fmt: skip
    lots = sorted({str(v) for v in parts.lot})
    wafers = pd.Series([str(w) for w in parts.wafer]).value_counts(sort=False)
    say(f"lot {', '.join(lots)}; {len(wafers)} wafer(s): "
        + ", ".join(f"{w} ({n} parts)" for w, n in wafers.items()))  # fmt: skip
    sites = sorted(set(zip(parts.head.tolist(), parts.site.tolist(), strict=True)))
    say(f"{len(parts):,} parts ({parts.n_retests} retests of a die dropped, the last test "
        f"counts); sites {', '.join(f'{h}/{s}' for h, s in sites)} (head/site)")  # fmt: skip
    known = parts.pass_known
    yield_ = parts.passed[known].mean() if known.any() else float("nan")
    say(f"yield {yield_:.2%} (PRR PART_FLG: {int(parts.passed[known].sum())} pass, "
        f"{int((~parts.passed[known]).sum())} fail, {int((~known).sum())} without)")  # fmt: skip
    say("hard bins: " + ", ".join(f"{b}: {n}" for b, n in _counts(parts.hard_bin)))
    say("soft bins: " + ", ".join(f"{b}: {n}" for b, n in _counts(parts.soft_bin)))
    share = parts.empty_share()
    say(f"{len(parts.tests)} PTR tests, {float(np.isnan(parts.values).mean()):.1%} of cells "
        "empty (not tested):")  # fmt: skip
    say(f"  {'TEST_NUM':>8}  {'TEST_TXT':<40} {'UNITS':<6} {'empty':>6}")
    for test, empty in zip(parts.tests, share, strict=True):
        say(f"  {test.number:>8}  {test.text[:40]:<40} {test.units[:6]:<6} {empty:>6.1%}")


def _counts(values: np.ndarray) -> list[tuple[int, int]]:
    bins, counts = np.unique(values, return_counts=True)
    return list(zip(bins.tolist(), counts.tolist(), strict=True))
