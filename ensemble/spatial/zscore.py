"""Robust z-score of each chosen test within its wafer (as dynamic part average testing).

``z_<test>`` = (value - wafer median) / (1.4826 * MAD), MAD the median absolute
deviation over the wafer's dies present (1.4826 makes it a standard deviation for
normal data). A wafer whose dies all share a value (MAD 0), or of one die, gives 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ensemble.spatial.base import Feature, WaferDies

#: MAD to standard deviation for normally distributed data.
MAD_SCALE = 1.4826


def _columns(spec: Any) -> list[str]:
    return [f"z_{t}" for t in spec.tests]


def _compute(dies: WaferDies, spec: Any) -> np.ndarray:
    values = dies.columns(spec.tests)
    out = np.zeros_like(values)
    for rows in dies.wafers():
        v = values[rows]
        median = np.median(v, axis=0)
        mad = MAD_SCALE * np.median(np.abs(v - median), axis=0)
        spread = np.where(mad > 0, mad, 1.0)
        out[rows] = np.where(mad > 0, (v - median) / spread, 0.0)
    return out


FEATURE = Feature("zscore", "each test's robust z-score within its wafer", _columns, _compute)
