"""A wafer's spatial read on real SQLite and PostgreSQL: Moran's I, clusters, rings,
escapes and overkill from each die's newest prediction and truth."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from ensemble.spatial.base import Geometry, WaferDies
from ledger.spatial_read import analyse, morans_i, spatial
from ledger.tables import outcomes, predictions


def _row(x: int, y: int, prediction: str) -> dict[str, Any]:
    return {
        "request_id": f"r{x}_{y}", "ts": 1.0, "arm": "ensemble", "features": "[]",
        "prediction": prediction, "probability": 0.5, "cached": False, "degraded": False,
        "latency_ms": 1.0, "model_versions": "{}", "votes": "{}", "device_id": None,
        "wafer_id": "W1", "lot_id": "L1", "die_x": x, "die_y": y,
    }  # fmt: skip


def test_morans_i_by_hand_on_a_line() -> None:
    # Four dies in a row, fails at one end: z = [.5, .5, -.5, -.5], S0 = 6 (3 pairs both
    # ways); sum z_i * lag_i = .5*.5 + .5*(.5-.5) + -.5*(.5-.5) + -.5*-.5 = 0.5;
    # I = n / S0 * 0.5 / sum z^2 = 4/6 * 0.5 / 1 = 1/3.
    x = np.arange(4)
    dies = WaferDies.of(np.zeros((4, 0)), (), np.column_stack([x, 0 * x]), [0] * 4,
                        Geometry.of(x, 0 * x))  # fmt: skip
    out = morans_i(np.array([1, 1, 0, 0]), dies.neighbours)
    assert out["i"] == pytest.approx(1 / 3)
    assert morans_i(np.array([1, 1, 1, 1]), dies.neighbours)["i"] is None


def test_clustered_fails_are_autocorrelated_and_scattered_ones_are_not() -> None:
    side = np.arange(12)
    xx, yy = (a.ravel() for a in np.meshgrid(side, side))
    block = (xx < 4) & (yy < 4)
    dies = [
        {"x": int(a), "y": int(b), "prediction": "fail" if f else "pass",
         "actual": "fail" if f else "pass"}
        for a, b, f in zip(xx, yy, block, strict=True)
    ]  # fmt: skip
    out = analyse(dies)
    assert out["morans_i"]["actual"]["i"] > 0.5 and out["morans_i"]["actual"]["p_value"] < 1e-6
    assert out["clusters"]["predicted"] == [{"size": 16, "centre": [1.5, 1.5]}]
    scattered = np.random.default_rng(1).permutation(block)
    for d, f in zip(dies, scattered, strict=True):
        d["prediction"] = "fail" if f else "pass"
    assert analyse(dies)["morans_i"]["predicted"]["p_value"] > 0.01


def test_the_spatial_read_from_the_log(engine: sa.Engine) -> None:
    # A 3 x 3 wafer: the left column predicted fail; truth says (0,0) passed (overkill)
    # and (2,2) failed (an escape); the centre is not labelled.
    rows = [_row(x, y, "fail" if x == 0 else "pass") for x in range(3) for y in range(3)]
    truth = {(0, 0): "pass", (0, 1): "fail", (0, 2): "fail", (1, 0): "pass", (1, 2): "pass",
             (2, 0): "pass", (2, 1): "pass", (2, 2): "fail", (1, 1): None}  # fmt: skip
    with engine.begin() as conn:
        conn.execute(predictions.insert(), rows)
        conn.execute(outcomes.insert(), [
            {"request_id": f"r{x}_{y}", "actual": a, "received_at": 2.0}
            for (x, y), a in truth.items() if a is not None
        ])  # fmt: skip
    out = spatial(engine, "W1", None, None)
    assert out is not None and out["dies"] == 9 and out["labelled"] == 8
    assert out["escapes"] == [[2, 2]] and out["overkill"] == [[0, 0]]
    assert out["clusters"]["predicted"] == [{"size": 3, "centre": [0.0, 1.0]}]
    assert "actual" not in out["morans_i"]  # one die unlabelled: no map of actual fails
    centre = out["rings"][0]
    assert centre["dies"] == 1 and centre["predicted_yield"] == 1.0
    assert centre["actual_yield"] is None
    assert spatial(engine, "W9", None, None) is None


def test_clusters_agree_with_scipy_ndimage_label() -> None:
    """The serving image has no scipy: the read labels clusters itself, as ndimage would."""
    from scipy import ndimage

    from ensemble.spatial.base import Geometry, WaferDies
    from ledger.spatial_read import clusters

    rng = np.random.default_rng(3)
    xs, ys = np.meshgrid(np.arange(-12, 13), np.arange(-12, 13))
    x, y = xs.ravel(), ys.ravel()
    keep = np.hypot(x, y) <= 12
    x, y = x[keep], y[keep]
    for share in (0.1, 0.3, 0.6):
        fail = rng.random(len(x)) < share
        where = WaferDies.of(np.zeros((len(x), 0)), (), np.column_stack([x, y]), [0] * len(x),
                             Geometry.of(x, y))  # fmt: skip
        ours = clusters(x, y, fail, where.neighbours)
        grid = np.zeros((25, 25), dtype=bool)
        grid[x[fail] + 12, y[fail] + 12] = True
        labels, count = ndimage.label(grid, structure=np.ones((3, 3)))
        sizes = sorted((int((labels == k).sum()) for k in range(1, count + 1)), reverse=True)
        assert [c["size"] for c in ours] == sizes
