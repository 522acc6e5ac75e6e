"""A wafer's spatial read, beside its die map: is the failing spread at random?

From each die's newest prediction and truth in the window (``ledger.dashboard.die_map``):

- ``morans_i``: Moran's I of predicted fails and of actual fails (1 fail, 0 pass) with
  the 8 grid neighbours as weights; near 0 for fails scattered at random, towards 1 when
  fails sit together. ``p_value`` is two-sided, from the normal approximation under
  randomisation (Cliff and Ord); None with fewer than 4 dies or no variation.
- ``clusters``: groups of touching (8-connected) fails on the die grid: size and centre
  (mean x, y), largest first, of predicted and of actual fails.
- ``rings``: predicted and actual yield by distance from the centre of this wafer's dies.
- ``escapes`` (called pass, failed) and ``overkill`` (called fail, passed) as (x, y).

Dies without a position are counted (``unplaced``) and left out.
"""

from __future__ import annotations

import itertools
from statistics import NormalDist
from typing import Any

import numpy as np
import sqlalchemy as sa

from ensemble.spatial.base import Geometry, WaferDies
from ledger import dashboard

#: Ring edges in normalised radius (0 centre, 1 the farthest die).
RINGS = (0.0, 0.5, 0.7, 0.85, 1.0001)


def morans_i(fail: np.ndarray, neighbours: np.ndarray) -> dict[str, Any]:
    """Moran's I of ``fail`` (n,) with binary weights to ``neighbours`` (n, 8; -1 none)."""
    n = len(fail)
    z = fail.astype(np.float64) - fail.mean()
    m2 = float((z**2).sum())
    s0 = float((neighbours >= 0).sum())
    if n < 4 or m2 == 0 or s0 == 0:
        return {"i": None, "p_value": None, "n": n}
    lag = np.where(neighbours >= 0, z[neighbours], 0.0).sum(axis=1)
    i = n / s0 * float((z * lag).sum()) / m2
    degree = (neighbours >= 0).sum(axis=1)
    s1, s2 = 2 * s0, float(((2 * degree) ** 2).sum())
    b2 = n * float((z**4).sum()) / m2**2
    expected = -1 / (n - 1)
    variance = (
        n * ((n * n - 3 * n + 3) * s1 - n * s2 + 3 * s0**2)
        - b2 * ((n * n - n) * s1 - 2 * n * s2 + 6 * s0**2)
    ) / ((n - 1) * (n - 2) * (n - 3) * s0**2) - expected**2
    if variance <= 0:
        return {"i": i, "p_value": None, "n": n}
    score = (i - expected) / variance**0.5
    p_value = 2 * (1 - NormalDist().cdf(abs(score)))  # the standard normal, two-sided
    return {"i": i, "expected": expected, "z": score, "p_value": p_value, "n": n}


def clusters(
    x: np.ndarray, y: np.ndarray, fail: np.ndarray, neighbours: np.ndarray
) -> list[dict[str, Any]]:
    """8-connected groups of fails on the die grid: size and centre, largest first.

    Connected components over the dies' grid neighbours (``neighbours`` (n, 8), -1 none):
    each fail takes the smallest label among itself and its failing neighbours until no
    label changes (as many rounds as the widest cluster is long). The serving image has
    no scipy, so this is not ``scipy.ndimage.label``; a test checks the two agree.
    """
    if not fail.any():
        return []
    n = len(fail)
    linked = (neighbours >= 0) & fail[:, None] & fail[np.where(neighbours >= 0, neighbours, 0)]
    labels = np.where(fail, np.arange(n), n)
    while True:
        around = np.where(linked, labels[np.where(linked, neighbours, 0)], n).min(axis=1)
        new = np.where(fail, np.minimum(labels, around), n)
        if np.array_equal(new, labels):
            break
        labels = new
    out = []
    for k in np.unique(labels[fail]):
        on = labels == k
        out.append({"size": int(on.sum()), "centre": [float(x[on].mean()), float(y[on].mean())]})
    return sorted(out, key=lambda c: (-c["size"], c["centre"]))


def analyse(dies: list[dict[str, Any]]) -> dict[str, Any]:
    """The spatial read of one wafer's dies (``die_map``'s entries)."""
    placed = [d for d in dies if d["x"] is not None and d["y"] is not None]
    out: dict[str, Any] = {"dies": len(placed), "unplaced": len(dies) - len(placed)}
    if not placed:
        return out
    x = np.asarray([d["x"] for d in placed], dtype=np.int64)
    y = np.asarray([d["y"] for d in placed], dtype=np.int64)
    where = WaferDies.of(np.zeros((len(x), 0)), (), np.column_stack([x, y]), [0] * len(x),
                         Geometry.of(x, y))  # fmt: skip
    predicted_fail = np.asarray([d["prediction"] == "fail" for d in placed])
    labelled = np.asarray([d["actual"] is not None for d in placed])
    actual_fail = np.asarray([d["actual"] == "fail" for d in placed])
    out["morans_i"] = {"predicted": morans_i(predicted_fail, where.neighbours)}
    out["clusters"] = {"predicted": clusters(x, y, predicted_fail, where.neighbours)}
    if labelled.all():
        out["morans_i"]["actual"] = morans_i(actual_fail, where.neighbours)
        out["clusters"]["actual"] = clusters(x, y, actual_fail, where.neighbours)
    g = where.geometry
    r = np.hypot(x - g.centre_x, y - g.centre_y) / g.radius
    rings = []
    for lo, hi in itertools.pairwise(RINGS):
        on = (r >= lo) & (r < hi)
        known = on & labelled
        rings.append({
            "from": lo, "to": min(hi, 1.0), "dies": int(on.sum()),
            "predicted_yield": None if not on.any() else float(1 - predicted_fail[on].mean()),
            "actual_yield": None if not known.any() else float(1 - actual_fail[known].mean()),
        })  # fmt: skip
    out["rings"] = rings
    escape = labelled & ~predicted_fail & actual_fail
    overkill = labelled & predicted_fail & ~actual_fail
    out["escapes"] = [[int(a), int(b)] for a, b in zip(x[escape], y[escape], strict=True)]
    out["overkill"] = [[int(a), int(b)] for a, b in zip(x[overkill], y[overkill], strict=True)]
    out["labelled"] = int(labelled.sum())
    return out


def spatial(
    engine: sa.Engine, wafer_id: str, since: float | None, until: float | None
) -> dict[str, Any] | None:
    """GET /dashboard/wafers/{wafer_id}/spatial: the spatial read; None if never served."""
    dies = dashboard.all_dies(engine, wafer_id, since, until)
    if not dies:  # no prediction of this wafer in the window
        return None
    return {"wafer_id": wafer_id, **analyse(dies), "window": {"since": since, "until": until}}
