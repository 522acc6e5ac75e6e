"""The spatial spec a model is trained with, and the one function that derives its features.

``derive`` runs in training (``train.spatial``) and in serving (``ensemble.pipeline``,
after decode and before routing) on the same inputs: the raw measured columns, each
die's (x, y) and its wafer. The served schema is the raw features then the derived ones;
requests send only the raw ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ensemble.errors import InvalidInput
from ensemble.schema import FeatureSchema
from ensemble.spatial import nnr, prior, radial, zscore
from ensemble.spatial.base import Feature, Geometry, WaferDies

#: The derived features, by the name ``yield-ensemble train --spatial`` takes.
FEATURES: dict[str, Feature] = {
    f.name: f for f in (radial.FEATURE, nnr.FEATURE, zscore.FEATURE, prior.FEATURE)
}
#: The metadata key (``ensemble.pipeline.INPUT_KEYS``) a spatial model's spec is saved under.
METADATA_KEY = "spatial"


@dataclass(frozen=True)
class Spec:
    """What a spatial model derives: ``features`` (names in ``FEATURES``), from the raw
    features ``raw`` (the request's), per test in ``tests`` (nnr, zscore), from the
    previous insertion's fail column ``prior`` (prior), on the die map ``geometry``."""

    features: tuple[str, ...]
    raw: tuple[str, ...]
    tests: tuple[str, ...]
    prior: str | None
    geometry: Geometry

    def __post_init__(self) -> None:
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise ValueError(f"unknown spatial feature {unknown[0]!r}; known: {list(FEATURES)}")
        if not self.features:
            raise ValueError("name at least one spatial feature")
        odd = [t for t in (*self.tests, *([self.prior] if self.prior else [])) if t not in self.raw]
        if odd:
            raise ValueError(f"spatial input {odd[0]!r} is not a raw feature {list(self.raw)}")
        if "prior" in self.features and self.prior is None:
            raise ValueError("the prior feature needs the previous insertion's fail column")
        clash = set(self.raw) & set(self.derived())
        if clash:
            raise ValueError(f"raw feature {sorted(clash)[0]!r} has a derived feature's name")

    def derived(self) -> list[str]:
        """The derived features' column names, in the served schema's order."""
        return [c for f in self.features for c in FEATURES[f].columns(self)]

    def raw_schema(self, served: FeatureSchema) -> FeatureSchema:
        """The part of the served schema a request sends (the first ``len(raw)``)."""
        k = len(self.raw)
        if served.names[:k] != self.raw:
            raise ValueError(f"served schema {list(served.names)} does not start with {self.raw}")
        return FeatureSchema(self.raw, served.dtypes[:k], served.minimums[:k],
                             served.maximums[:k])  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        g = self.geometry
        return {
            "features": list(self.features), "raw": list(self.raw), "tests": list(self.tests),
            "prior": self.prior, "centre": [g.centre_x, g.centre_y], "radius": g.radius,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Spec:
        cx, cy = data["centre"]
        geometry = Geometry(float(cx), float(cy), float(data["radius"]))
        features, raw, tests = (tuple(data[k]) for k in ("features", "raw", "tests"))
        return cls(features, raw, tests, data.get("prior"), geometry)


def derive(
    spec: Spec,
    rows: np.ndarray,
    positions: np.ndarray | Sequence[tuple[int, int]] | None,
    wafer_keys: Sequence[Any],
) -> np.ndarray:
    """The served rows: ``rows`` (n, len(spec.raw)) then the derived columns, float32.

    ``positions``: (n, 2) integer die x/y; ``wafer_keys``: n hashable wafer identities
    (lot and wafer id). InvalidInput (422) when positions are missing (the features need
    the wafer) or two dies of a wafer share one.
    """
    if positions is None:
        raise InvalidInput(
            "die_x, die_y",
            f"the served model derives spatial features ({', '.join(spec.features)}) from "
            "each die's place among its wafer's dies: send whole wafers with die_x and die_y "
            "to /predict_wafer, or the wafer's STDF file (every die with its X/Y) to "
            "/predict_stdf",
        )
    where = np.asarray(positions, dtype=np.int64).reshape(len(rows), 2)
    dies = WaferDies.of(rows, spec.raw, where, wafer_keys, spec.geometry)
    parts = [np.asarray(rows, dtype=np.float32)]
    parts += [FEATURES[f].compute(dies, spec).astype(np.float32) for f in spec.features]
    return np.ascontiguousarray(np.hstack(parts), dtype=np.float32)
