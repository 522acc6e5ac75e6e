"""The fail share of a die's neighbours at a previous insertion (e.g. wafer sort).

``neighbour_prior_fail`` = the share of the die's present grid neighbours whose
``spec.prior`` column says they failed before (a value of 0.5 or more is a fail: 1/0
flags, or a bin mapped to 1/0). The die's own result is not in it (it is its own
column). A die with no neighbour present gives 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ensemble.spatial.base import Feature, WaferDies


def _columns(spec: Any) -> list[str]:
    return ["neighbour_prior_fail"]


def _compute(dies: WaferDies, spec: Any) -> np.ndarray:
    failed = (dies.columns([spec.prior]) >= 0.5).astype(np.float64)
    around = dies.around(failed)[:, :, 0]
    present = (~np.isnan(around)).sum(axis=1)
    share = np.nansum(around, axis=1) / np.maximum(present, 1)
    return np.asarray(share[:, None])


FEATURE = Feature("prior", "the fail share of the neighbours at a previous insertion",
                  _columns, _compute)  # fmt: skip
