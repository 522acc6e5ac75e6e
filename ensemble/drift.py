"""Reference distributions saved with a model, and the out-of-range flag of each die.

A ``Reference`` is what training saw of each feature (``train.reference`` makes it):
its range, a few quantiles, and a histogram of the training rows and of the held-out
rows over fixed bins. The bins of a feature are its training range cut at the training
deciles (up to 10 equal-mass bins; fewer where values repeat, as a test insertion's 4
temperatures do) plus two open tail bins, below the training minimum and above the
maximum. The ledger's drift reads count served values into the same bins
(``ledger.drift``). With the drift test's p-value table (``SfTable``) it is a few
hundred numbers, stored in the model's metadata.

``out_of_range(rows, ranges)`` flags, for a whole batch at once, each die's features
outside the training range and how far, in training ranges (0.5: half the training
range beyond the nearest bound). The flag never changes a decision.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ensemble.schema import FeatureSchema

#: Quantiles stored per feature (of the training rows).
QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)


@dataclass(frozen=True)
class FeatureReference:
    """One feature's reference: range, quantiles and histograms.

    ``inner``: the inner bin edges (at most 9, increasing); bins are 0 below
    ``minimum``, 1 .. len(inner)+1 inside the range (bin i+1 is [inner[i], inner[i+1])),
    and len(inner)+2 above ``maximum``. ``train``/``held_out``: row counts per bin.
    ``wafer_modes``: how much more than independent dies the training wafers' bin shares
    varied, as the eigenvalues of (multinomial covariance)^-1 (between-wafer covariance)
    over the inner bins (empty when training had no wafer ids); a lot's test is widened
    by them (``ledger.drift_stats``).
    """

    name: str
    minimum: float
    maximum: float
    quantiles: tuple[float, ...]
    inner: tuple[float, ...]
    train: tuple[int, ...]
    held_out: tuple[int, ...]
    wafer_modes: tuple[float, ...] = ()
    #: Training wafers the modes were estimated from (0: none).
    wafers: int = 0
    #: The training wafers' size-weighted mean dies (sum of squared sizes / training rows).
    wafer_dies: float = 0.0

    @property
    def bins(self) -> int:
        return len(self.inner) + 3

    def bin_of(self, values: np.ndarray) -> np.ndarray:
        """(n,) values -> (n,) int bin numbers, as the ledger's SQL counts them."""
        v = np.asarray(values, dtype=np.float64)
        idx = np.searchsorted(np.asarray(self.inner), v, side="right") + 1
        idx = np.where(v < self.minimum, 0, idx)
        return np.where(v > self.maximum, self.bins - 1, idx)

    def counts(self, values: np.ndarray) -> np.ndarray:
        """(bins,) counts of ``values``."""
        return np.bincount(self.bin_of(values), minlength=self.bins)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "min": self.minimum,
            "max": self.maximum,
            "quantiles": dict(zip((str(q) for q in QUANTILES), self.quantiles, strict=True)),
            "inner_edges": list(self.inner),
            "train_counts": list(self.train),
            "held_out_counts": list(self.held_out),
            "wafer_modes": list(self.wafer_modes),
            "wafers": self.wafers,
            "wafer_dies": self.wafer_dies,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureReference:
        return cls(
            name=str(data["name"]),
            minimum=float(data["min"]),
            maximum=float(data["max"]),
            quantiles=tuple(float(v) for v in data["quantiles"].values()),
            inner=tuple(float(v) for v in data["inner_edges"]),
            train=tuple(int(v) for v in data["train_counts"]),
            held_out=tuple(int(v) for v in data["held_out_counts"]),
            wafer_modes=tuple(float(v) for v in data.get("wafer_modes", ())),
            wafers=int(data.get("wafers", 0)),
            wafer_dies=float(data.get("wafer_dies", 0.0)),
        )


@dataclass(frozen=True)
class SfTable:
    """The survival function of an F(df1, df2) distribution, tabulated at training.

    ``log10_sf[i]`` is log10 P(F > x_i) at ``points`` statistics x_i spaced evenly in
    log10 x from ``log10_x_lo`` to ``log10_x_hi`` (computed with scipy by
    ``train.reference``), so serving turns a statistic into a p-value without scipy:
    linear interpolation of log10 p in log10 x, monotone as the table is.
    """

    df1: int
    df2: int
    log10_x_lo: float
    log10_x_hi: float
    log10_sf: tuple[float, ...]

    @property
    def p_min(self) -> float:
        """The smallest p-value the table resolves (at its largest statistic)."""
        return float(10.0 ** self.log10_sf[-1])

    def sf(self, x: float) -> tuple[float, bool]:
        """(p-value of statistic ``x``, whether it is only a bound: p < ``p_min``).

        Below the grid p is the table's first value (about 1); above it ``p_min``, with
        True: the true p-value is smaller. Matches scipy to 0.5% relative from 1e-6 to
        1 (``tests/unit/test_drift_pvalues.py``).
        """
        if not x > 0:
            return 1.0, False
        lx = np.log10(x)
        if lx > self.log10_x_hi:
            return self.p_min, True
        grid = np.linspace(self.log10_x_lo, self.log10_x_hi, len(self.log10_sf))
        return min(1.0, float(10.0 ** np.interp(lx, grid, self.log10_sf))), False

    def to_dict(self) -> dict[str, Any]:
        return {
            "distribution": "F",
            "df1": self.df1,
            "df2": self.df2,
            "log10_x": [self.log10_x_lo, self.log10_x_hi],
            "log10_sf": list(self.log10_sf),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SfTable:
        lo, hi = (float(v) for v in data["log10_x"])
        sf = tuple(float(v) for v in data["log10_sf"])
        return cls(int(data["df1"]), int(data["df2"]), lo, hi, sf)


@dataclass(frozen=True)
class Reference:
    """Every feature's reference, in schema order, and the p-value table of its drift
    test (``ledger.drift_stats``; None without training wafers)."""

    features: tuple[FeatureReference, ...]
    sf_table: SfTable | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        """For model metadata, which takes no None: without a table, no ``sf_table``."""
        out: dict[str, Any] = {"features": [f.to_dict() for f in self.features]}
        if self.sf_table is not None:
            out["sf_table"] = self.sf_table.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reference:
        table = data.get("sf_table")
        return cls(
            tuple(FeatureReference.from_dict(f) for f in data["features"]),
            None if table is None else SfTable.from_dict(table),
        )

    def ranges(self) -> Ranges:
        lo = [f.minimum for f in self.features]
        return Ranges(self.names, np.asarray(lo), np.asarray([f.maximum for f in self.features]))


@dataclass(frozen=True)
class Ranges:
    """Each feature's training range: ``low`` and ``high`` (k,) in schema order."""

    names: tuple[str, ...]
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def of_schema(cls, schema: FeatureSchema) -> Ranges | None:
        """The ranges a schema stores; None when it stores none (an old model)."""
        if not schema.minimums or not schema.maximums:
            return None
        return cls(schema.names, np.asarray(schema.minimums), np.asarray(schema.maximums))

    @functools.cached_property
    def bounds(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(low, high, span) (k,) float64, made once: ``span`` is the range, at least
        float32's smallest normal (a feature training saw at one value)."""
        low, high = self.low.astype(np.float64), self.high.astype(np.float64)
        span = np.maximum(self.high - self.low, np.finfo(np.float32).tiny).astype(np.float64)
        return low, high, span

    @functools.cached_property
    def bound_pairs(self) -> list[tuple[float, float]]:
        """(low, high) per feature as Python floats, for one die at a time."""
        low, high, _ = self.bounds
        return list(zip(low.tolist(), high.tolist(), strict=True))


@dataclass(frozen=True)
class OutOfRange:
    """A batch's out-of-range flags: ``distance`` (n, k) float, 0 inside the range, else
    how far beyond the nearest bound in training ranges; ``dies`` the rows with any."""

    names: tuple[str, ...]
    distance: np.ndarray
    dies: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))

    def __len__(self) -> int:
        return len(self.distance)

    def per_die(self) -> list[dict[str, float] | None]:
        """Per die None (in range) or {feature: distance} of its features out of range."""
        out: list[dict[str, float] | None] = [None] * len(self.distance)
        if not len(self.dies):
            return out
        for i, flags in zip(self.dies.tolist(), self._flags(self.dies), strict=True):
            out[i] = flags
        return out

    def die(self, i: int) -> dict[str, float]:
        """Die ``i``'s {feature: distance} (empty when in range): ``per_die``'s, to the bit
        (the ledger stores ``per_die``; ``round`` and ``np.round`` differ past ~1e9)."""
        if not len(self.dies):
            return {}
        return self._flags(np.array([i]))[0]

    def _flags(self, dies: np.ndarray) -> list[dict[str, float]]:
        """{feature: distance} of each of ``dies``, rounded to 6 places in float64, the
        features whose distance rounds to 0 left out: the one rule for answers and ledger."""
        rows = np.round(self.distance[dies].astype(np.float64), 6).tolist()
        return [{n: d for n, d in zip(self.names, row, strict=True) if d} for row in rows]

    def by_feature(self) -> dict[str, int]:
        """Feature -> how many dies have it out of range (features with none left out)."""
        counts = np.count_nonzero(self.distance[self.dies], axis=0) if len(self.dies) else []
        return {self.names[j]: int(c) for j, c in enumerate(counts) if c}

    def summary(self) -> dict[str, Any]:
        """For answers and log lines: how many dies, and per feature how many."""
        return {"dies": len(self.dies), "features": self.by_feature()}


def out_of_range(rows: np.ndarray, ranges: Ranges | None) -> OutOfRange:
    """(n, k) rows in schema order -> their ``OutOfRange`` against ``ranges``.

    None ranges (a model saved without them) flag nothing. Vectorised over the batch:
    a few array passes, whatever the number of dies; a single die inside every range
    (most requests) is checked in Python, a few microseconds where the array passes
    took ~10 us in a loop and ~45 us in a serving worker (py-spy).
    """
    n = len(rows)
    if ranges is None:
        return OutOfRange((), np.zeros((n, 0), dtype=np.float32))
    if n == 1 and all(
        lo <= v <= hi for v, (lo, hi) in zip(rows[0].tolist(), ranges.bound_pairs, strict=True)
    ):
        return OutOfRange(ranges.names, np.zeros(rows.shape))
    # In float64: a float32-finite 3e38 over a narrow range overflows float32 to inf,
    # which no JSON answer may hold.
    low, high, span = ranges.bounds
    values = rows.astype(np.float64)
    # In place, against float zeros: an int 0 made each np.maximum half again as slow.
    distance = np.maximum(low - values, 0.0)
    distance += np.maximum(values - high, 0.0)
    distance /= span
    dies = np.flatnonzero(distance.any(axis=1))
    return OutOfRange(ranges.names, distance, dies)
