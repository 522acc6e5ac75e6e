"""Calibration at serving time: each member's map from its P(pass) to a calibrated P(pass).

Numpy only. The maps are fitted out of fold by ``yield-ensemble train``
(``train.calibration.fit_calibration``) and saved with the decision; serving applies them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

#: Probabilities are clipped this far from 0 and 1 before taking log-odds.
EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    """Log-odds of ``p`` (any shape), clipped ``EPS`` from 0 and 1 so they stay finite."""
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.asarray(np.log(p / (1 - p)))


def expit(z: np.ndarray) -> np.ndarray:
    """The logistic function of ``z`` (any shape): log-odds back to a probability."""
    return np.asarray(1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64))))


@dataclass(frozen=True)
class Calibration:
    """One member's map from its P(pass) to a calibrated P(pass); NaN stays NaN.

    ``none``: identity. ``sigmoid``: expit(a * logit(p) + b) (Platt scaling on the
    log-odds). ``isotonic``: a monotone step function, interpolated between the
    knots ``x`` -> ``y`` (what scikit-learn's IsotonicRegression keeps).
    """

    kind: str = "none"
    a: float = 1.0
    b: float = 0.0
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()

    KINDS: ClassVar[tuple[str, ...]] = ("none", "sigmoid", "isotonic")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"calibration kind {self.kind!r}; known: {self.KINDS}")
        if self.kind == "isotonic" and (len(self.x) < 2 or len(self.x) != len(self.y)):
            raise ValueError("an isotonic calibration needs matching knots x and y (two or more)")

    def apply(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        if self.kind == "sigmoid":
            return np.where(np.isnan(p), np.nan, expit(self.a * logit(p) + self.b))
        if self.kind == "isotonic":
            return np.where(np.isnan(p), np.nan, np.interp(p, self.x, self.y))
        return p

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "sigmoid":
            return {"kind": "sigmoid", "a": self.a, "b": self.b}
        if self.kind == "isotonic":
            return {"kind": "isotonic", "x": list(self.x), "y": list(self.y)}
        return {"kind": "none"}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        return cls(
            kind=d["kind"],
            a=float(d.get("a", 1.0)),
            b=float(d.get("b", 0.0)),
            x=tuple(float(v) for v in d.get("x", ())),
            y=tuple(float(v) for v in d.get("y", ())),
        )
