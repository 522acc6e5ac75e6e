"""The dies of one request on their wafers: what every derived feature reads.

Dies are grouped into wafers by (``lot_id``, ``wafer_id``); dies without a wafer id are
one wafer (per lot). Neighbours are the up to 8 dies one grid step away (x +-1, y +-1) on
the same wafer, found by an array lookup on the integer die grid (a sorted key and
``np.searchsorted``: no dense grid, so sparse coordinates up to +-100,000 cost nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ensemble.errors import InvalidInput

#: The 8-neighbourhood on the die grid, (dx, dy).
OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
#: Key stride per coordinate: |x|, |y| <= 100,000 (``ensemble.wafer.DIE_LIMIT``) < 2**19.
_STRIDE = 1 << 20


@dataclass(frozen=True)
class Geometry:
    """The product's die map, learned from the training positions: its centre (die
    units) and radius (the farthest die centre from it). Serving uses the saved one, so a
    partial wafer's dies sit where they would on a whole wafer."""

    centre_x: float
    centre_y: float
    radius: float

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray) -> Geometry:
        """The centre of the positions' bounding box and the farthest die from it."""
        cx = (float(x.min()) + float(x.max())) / 2
        cy = (float(y.min()) + float(y.max())) / 2
        radius = float(np.hypot(x - cx, y - cy).max())
        return cls(cx, cy, max(radius, 1.0))


@dataclass(frozen=True)
class WaferDies:
    """n dies: raw measured columns (n, k) float64 named ``names``, integer positions,
    the wafer index (0..n_wafers-1) of each, the geometry, and each die's neighbours
    ((n, 8) row indexes, -1 where the grid place is empty or off the wafer)."""

    raw: np.ndarray
    names: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray
    wafer: np.ndarray
    n_wafers: int
    geometry: Geometry
    neighbours: np.ndarray = field(repr=False)

    @classmethod
    def of(
        cls,
        raw: np.ndarray,
        names: Sequence[str],
        positions: np.ndarray,
        wafer_keys: Sequence[Any],
        geometry: Geometry,
    ) -> WaferDies:
        """Group ``raw`` (n, k) by ``wafer_keys`` (n hashable) and find neighbours;
        InvalidInput naming both dies when two of one wafer share a position."""
        x = np.asarray(positions[:, 0], dtype=np.int64)
        y = np.asarray(positions[:, 1], dtype=np.int64)
        wafer, n_wafers = _wafer_index(wafer_keys)
        neighbours = _neighbours(x, y, wafer)
        return cls(np.asarray(raw, dtype=np.float64), tuple(names), x, y, wafer, n_wafers,
                   geometry, neighbours)  # fmt: skip

    def __len__(self) -> int:
        return len(self.x)

    def columns(self, names: Sequence[str]) -> np.ndarray:
        """The raw columns ``names`` as (n, len(names)) float64."""
        return self.raw[:, [self.names.index(n) for n in names]]

    def around(self, values: np.ndarray) -> np.ndarray:
        """(n, m) per-die values -> (n, 8, m) of each die's neighbours, NaN where none."""
        padded = np.vstack([values, np.full((1, values.shape[1]), np.nan)])
        return np.asarray(padded[self.neighbours])  # index -1 is the NaN row

    def wafers(self) -> list[np.ndarray]:
        """The row indexes of each wafer."""
        if self.n_wafers == 1:
            return [np.arange(len(self))]
        order = np.argsort(self.wafer, kind="stable")
        cuts = np.flatnonzero(np.diff(self.wafer[order])) + 1
        return np.split(order, cuts)


@dataclass(frozen=True)
class Feature:
    """One derived feature: its name (as ``train --spatial`` says it), what it means,
    its column names given the spec, and ``compute(dies, spec) -> (n, len(columns))``."""

    name: str
    describe: str
    columns: Callable[[Any], list[str]]
    compute: Callable[[WaferDies, Any], np.ndarray]


def _wafer_index(keys: Sequence[Any]) -> tuple[np.ndarray, int]:
    n = len(keys)
    distinct = set(keys)
    if len(distinct) == 1:
        return np.zeros(n, dtype=np.int64), 1
    index: dict[Any, int] = {}
    wafer = np.fromiter((index.setdefault(k, len(index)) for k in keys), np.int64, n)
    return wafer, len(index)


def _key(wafer: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.asarray((wafer * _STRIDE + (x + _STRIDE // 2)) * _STRIDE + (y + _STRIDE // 2))


def _neighbours(x: np.ndarray, y: np.ndarray, wafer: np.ndarray) -> np.ndarray:
    n = len(x)
    key = _key(wafer, x, y)
    order = np.argsort(key, kind="stable")
    ranked = key[order]
    twice = np.flatnonzero(ranked[1:] == ranked[:-1])
    if len(twice):
        a, b = sorted((int(order[twice[0]]), int(order[twice[0] + 1])))
        raise InvalidInput(
            f"die_x[{b}], die_y[{b}]",
            f"die position ({int(x[b])}, {int(y[b])}) is also die {a}'s on the same wafer; "
            "spatial features need one die per position",
        )
    out = np.full((n, len(OFFSETS)), -1, dtype=np.int64)
    for j, (dx, dy) in enumerate(OFFSETS):
        wanted = _key(wafer, x + dx, y + dy)
        at = np.minimum(np.searchsorted(ranked, wanted), n - 1)
        out[:, j] = np.where(ranked[at] == wanted, order[at], -1)
    return out


def nan_median(values: np.ndarray) -> np.ndarray:
    """Median over axis 1 of (n, 8, m) ignoring NaN (sorted last); NaN where all are."""
    ranked = np.sort(values, axis=1)
    count = (~np.isnan(values)).sum(axis=1, keepdims=True)
    lo = np.take_along_axis(ranked, np.maximum(count - 1, 0) // 2, axis=1)
    hi = np.take_along_axis(ranked, count // 2, axis=1)
    middle = np.where(count > 0, (lo + hi) / 2, np.nan)
    return np.asarray(middle[:, 0, :])
