"""Radial position: how far out a die sits, and whether it is in the edge ring.

``radius_norm``: the die's distance from the wafer centre over the die map's radius
(0 at the centre, 1 at the farthest training die; beyond 1 off the trained map).
``edge_ring``: 1 for the outermost ``EDGE_RING_DIES`` die rings (distance more than the
radius less that many die steps), where edge-bead, etch and handling yield loss sit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ensemble.spatial.base import Feature, WaferDies

#: Die steps from the edge counted as the edge ring.
EDGE_RING_DIES = 2.0


def _columns(spec: Any) -> list[str]:
    return ["radius_norm", "edge_ring"]


def _compute(dies: WaferDies, spec: Any) -> np.ndarray:
    g = dies.geometry
    distance = np.hypot(dies.x - g.centre_x, dies.y - g.centre_y)
    edge = distance > g.radius - EDGE_RING_DIES
    return np.column_stack([distance / g.radius, edge.astype(np.float64)])


FEATURE = Feature("radial", "distance from the wafer centre and the edge-ring flag",
                  _columns, _compute)  # fmt: skip
