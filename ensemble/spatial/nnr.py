"""Nearest-neighbour residual (NNR) of each chosen test.

``nnr_<test>`` = the die's value less the median of its up to 8 grid neighbours' values
on the same wafer: what is left once the local process level (a gradient across the
wafer, a slow region) is taken out. A good die in a bad neighbourhood, or an outlier
among good neighbours, stands out. A die with no neighbour present has residual 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ensemble.spatial.base import Feature, WaferDies, nan_median


def _columns(spec: Any) -> list[str]:
    return [f"nnr_{t}" for t in spec.tests]


def _compute(dies: WaferDies, spec: Any) -> np.ndarray:
    values = dies.columns(spec.tests)
    residual = values - nan_median(dies.around(values))
    return np.asarray(np.nan_to_num(residual, nan=0.0))


FEATURE = Feature("nnr", "each test's deviation from its neighbours' median", _columns, _compute)
