"""A seeded generator of device-parametric test data, for when no real data is given.

Each wafer is a disc of dies on a grid. Per wafer: a process corner (a shift in
supply and speed) and zero to three defect clusters. Per die:

- ``vdd_v``: supply at test, around 1.2 V, shifted by the wafer corner;
- ``temp_c``: the test insertion, one of -40, 25, 85, 125 C;
- ``freq_mhz``: maximum frequency found, around 2000 MHz, faster at higher Vdd
  and on fast wafers, slower when hot;
- ``idd_ma``: supply current, around 100 mA, growing with Vdd and exponentially
  with temperature, with a leaky tail;
- ``test_time_ms``: around 50 ms, longer for marginal dies (retests);
- ``neighbor_yield``: share of the die's (up to 8) grid neighbours that passed an
  earlier wafer-sort screen, so defect clusters show up in it.

A die fails final test (``passed`` = 0) when it sits in a defect (spatial), leaks
too much for its temperature, misses the speed bin when hot, or runs outside the
Vdd window at low speed; then 3% of labels are flipped as noise. With the
defaults about 18% of dies fail.

``truth=SPATIAL`` (``SpatialTruth``) adds what the derived spatial features
(``ensemble.spatial``) are judged on: edge rings and centre spots that fail (on some
wafers), a supply-current gradient across each wafer and a per-wafer speed offset that do
not change a die's fate (the raw values mislead, the die's place among its neighbours does
not), leaky outliers that stand out only against their neighbours, and the wafer-sort
result ``sort_fail`` as a raw column in place of the precomputed ``neighbor_yield`` (the
client of a spatial model sends raw results; the model derives the neighbourhood). The
default (``truth=None``) output is unchanged, byte for byte (a test checks its hash).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ensemble.schema import DEFAULT_FEATURES

TEMPERATURES_C = np.array([-40.0, 25.0, 85.0, 125.0])
LABEL_NOISE = 0.03


@dataclass(frozen=True)
class ProcessShift:
    """How a later lot differs from the training data: the process has moved.

    ``vdd_offset_v`` and ``speed_offset`` move every wafer's corner (a slow, low-supply
    corner by default); ``insertion_weights`` puts more dies on the hot insertions;
    ``scratch_rate`` is the share of wafers with a new defect pattern, a straight
    scratch across the wafer, which the training data never had.
    """

    vdd_offset_v: float = -0.015
    speed_offset: float = -0.8
    insertion_weights: tuple[float, float, float, float] = (0.15, 0.25, 0.30, 0.30)
    scratch_rate: float = 0.4


#: A process shift worth checking a model against (``generate(..., shift=SHIFTED)``).
SHIFTED = ProcessShift()


@dataclass(frozen=True)
class SpatialTruth:
    """Spatial patterns with a known answer. Per wafer: an edge ring of failing dies with
    probability ``edge_rate`` (outermost ``edge_dies`` rings), a centre spot with
    ``spot_rate`` (within ``spot_radius`` of the radius); in each, a die fails with
    ``pattern_fail``, and wafer sort saw it with ``sort_sees``. ``gradient_ma``: the supply
    current's tilt across the wafer (mA, centre to edge, a random direction);
    ``wafer_speed_sd``: the per-wafer speed offset (MHz), both without effect on the label.
    ``outlier_rate`` dies leak ``outlier_ma`` more than their neighbours and fail."""

    edge_rate: float = 0.35
    edge_dies: float = 2.0
    spot_rate: float = 0.3
    spot_radius: float = 0.3
    pattern_fail: float = 0.7
    sort_sees: float = 0.5
    gradient_ma: float = 30.0
    wafer_speed_sd: float = 80.0
    outlier_rate: float = 0.04
    outlier_ma: float = 16.0


#: Spatial patterns for judging derived features (``generate(..., truth=SPATIAL)``).
SPATIAL = SpatialTruth()
#: The raw features of ``truth=SPATIAL`` data: the wafer-sort result instead of the
#: client-computed neighbour yield.
SPATIAL_FEATURES: tuple[str, ...] = (*DEFAULT_FEATURES[:-1], "sort_fail")


def _wafer_grid(radius: int) -> np.ndarray:
    """(x, y) of the dies whose centre lies within ``radius`` grid steps of the centre."""
    span = np.arange(-radius, radius + 1)
    xx, yy = np.meshgrid(span, span)
    inside = xx**2 + yy**2 <= radius**2
    return np.column_stack([xx[inside], yy[inside]])


def generate(
    n_devices: int = 20_000,
    seed: int = 7,
    wafer_radius: int = 15,
    shift: ProcessShift | None = None,
    truth: SpatialTruth | None = None,
) -> pd.DataFrame:
    """``n_devices`` dies (whole wafers, the last one cut short) as a DataFrame.

    Columns: ``device_id``, ``wafer_id``, ``die_x``, ``die_y``, the six default
    features, and ``passed`` (1 pass, 0 fail). ``shift`` makes a shifted lot;
    ``truth`` adds spatial patterns (the features are then ``SPATIAL_FEATURES``).
    """
    if n_devices < 1:
        raise ValueError(f"n_devices must be positive, got {n_devices}")
    rng = np.random.default_rng(seed)
    grid = _wafer_grid(wafer_radius)
    n_wafers = -(-n_devices // len(grid))
    frames = [_wafer(rng, grid, wafer_radius, w, shift, truth) for w in range(n_wafers)]
    data = pd.concat(frames, ignore_index=True).iloc[:n_devices].reset_index(drop=True)
    return data


def _wafer(
    rng: np.random.Generator,
    grid: np.ndarray,
    radius: int,
    wafer: int,
    shift: ProcessShift | None = None,
    truth: SpatialTruth | None = None,
) -> pd.DataFrame:
    n = len(grid)
    x, y = grid[:, 0].astype(float), grid[:, 1].astype(float)
    r = np.hypot(x, y) / radius

    # Spatial defects: Gaussian clusters plus an edge ring.
    density = 0.6 * np.clip(r - 0.8, 0, None) / 0.2
    for _ in range(rng.integers(0, 4)):
        cx, cy = rng.uniform(-radius * 0.8, radius * 0.8, 2)
        size = rng.uniform(1.5, 4.0)
        density += 2.5 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * size**2))
    # Shifted lots draw extra random numbers; unshifted ones keep the seeded stream as it was.
    if shift is not None and rng.random() < shift.scratch_rate:  # a scratch across the wafer
        angle, offset = rng.uniform(0, np.pi), rng.uniform(-radius * 0.5, radius * 0.5)
        distance = np.abs(x * np.sin(angle) - y * np.cos(angle) - offset)
        density += 3.0 * (distance < 0.8)
    p_defect = 1 / (1 + np.exp(-(4.0 * density - 5.2)))
    defect = rng.random(n) < p_defect
    # Wafer sort sees the defect through a noisy screen; neighbours' results are known.
    screened_bad = defect ^ (rng.random(n) < 0.05)
    neighbor_yield = _neighbour_pass_share(grid, ~screened_bad)

    vdd_shift = rng.normal(shift.vdd_offset_v if shift else 0.0, 0.015)
    speed_corner = rng.normal(shift.speed_offset if shift else 0.0, 1)
    vdd = 1.2 + vdd_shift + rng.normal(0, 0.03, n)
    if shift is None:
        temp = rng.choice(TEMPERATURES_C, n)
    else:
        temp = rng.choice(TEMPERATURES_C, n, p=np.asarray(shift.insertion_weights))
    leak = rng.lognormal(0, 0.25, n)
    idd = 100 * (vdd / 1.2) ** 2 * np.exp(0.006 * (temp - 25)) * leak + rng.normal(0, 3, n)
    freq = (
        2000
        + 900 * (vdd - 1.2)
        + 60 * speed_corner
        - 0.8 * (temp - 25)
        + rng.normal(0, 55, n)
        - 120 * defect * rng.random(n)
    )
    marginal = (np.abs(vdd - 1.2) > 0.05) | (leak > 1.4)
    test_time = 50 + rng.normal(0, 4, n) + 25 * marginal * rng.random(n)

    leaky = idd > 165 * np.exp(0.006 * (temp - 25))
    slow_hot = (temp >= 85) & (freq < 1790)
    out_of_window = (np.abs(vdd - 1.2) > 0.06) & (freq < 1980)
    fail = defect | leaky | slow_hot | out_of_window
    fail ^= rng.random(n) < LABEL_NOISE

    names, last = DEFAULT_FEATURES, neighbor_yield
    if truth is not None:  # extra draws after all of the default's: its stream is unchanged
        idd, freq, fail, last = _spatial_truth(rng, truth, x, y, radius, idd, freq, fail, defect)
        names = SPATIAL_FEATURES
    columns = dict(zip(names, (vdd, idd, freq, temp, test_time, last), strict=True))
    return pd.DataFrame(
        {
            "device_id": [f"W{wafer:04d}-X{int(a):+03d}Y{int(b):+03d}" for a, b in grid],
            "wafer_id": f"W{wafer:04d}",
            "die_x": grid[:, 0],
            "die_y": grid[:, 1],
            **{k: v.astype(np.float32) for k, v in columns.items()},
            "passed": (~fail).astype(np.int8),
        }
    )


def _spatial_truth(
    rng: np.random.Generator,
    truth: SpatialTruth,
    x: np.ndarray,
    y: np.ndarray,
    radius: int,
    idd: np.ndarray,
    freq: np.ndarray,
    fail: np.ndarray,
    defect: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Edge ring, centre spot, gradient, speed offset and leaky outliers on one wafer;
    returns idd, freq, fail and the wafer-sort fail flag."""
    n = len(x)
    distance = np.hypot(x, y)
    pattern = np.zeros(n, dtype=bool)
    if rng.random() < truth.edge_rate:
        pattern |= distance > radius - truth.edge_dies
    if rng.random() < truth.spot_rate:
        pattern |= distance < truth.spot_radius * radius
    pattern &= rng.random(n) < truth.pattern_fail
    angle = rng.uniform(0, 2 * np.pi)
    tilt = truth.gradient_ma * rng.uniform(0.5, 1.0) / radius
    idd = idd + tilt * (x * np.cos(angle) + y * np.sin(angle))
    freq = freq + rng.normal(0, truth.wafer_speed_sd)
    outlier = rng.random(n) < truth.outlier_rate
    idd = idd + outlier * truth.outlier_ma
    sort_fail = ((defect | pattern) & (rng.random(n) < truth.sort_sees)) ^ (rng.random(n) < 0.03)
    return idd, freq, fail | pattern | outlier, sort_fail.astype(np.float64)


def _neighbour_pass_share(grid: np.ndarray, passed: np.ndarray) -> np.ndarray:
    """For each die, the share of its existing 8-neighbours that ``passed``."""
    offset = grid.min(axis=0)
    shape = grid.max(axis=0) - offset + 3
    good = np.zeros(shape)
    present = np.zeros(shape)
    gx, gy = (grid - offset + 1).T
    good[gx, gy] = passed
    present[gx, gy] = 1
    total_good = np.zeros(len(grid))
    total_present = np.zeros(len(grid))
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            if dx or dy:
                total_good += good[gx + dx, gy + dy]
                total_present += present[gx + dx, gy + dy]
    return total_good / np.maximum(total_present, 1)


def feature_rows(n_devices: int, seed: int = 7) -> list[list[float]]:
    """Just the six default features of ``generate``, as JSON-ready rows (benchmarks, tests)."""
    table = generate(n_devices, seed)[list(DEFAULT_FEATURES)].astype(float)
    rows: list[list[float]] = table.to_numpy().tolist()
    return rows
