"""Labelled predictions: served answers joined with their ground truth, as the report reads them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Labelled:
    """Served predictions joined with their ground truth, one entry per device."""

    ts: np.ndarray  # float unix seconds
    arm: np.ndarray  # str
    served_pass: np.ndarray  # bool
    actual_pass: np.ndarray  # bool
    votes: Mapping[str, np.ndarray]  # member -> P(pass), NaN where not computed
    # The model versions that served each row, as logged ({"member": "tag"} JSON).
    versions: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ts)

    def where(self, mask: np.ndarray) -> Labelled:
        return Labelled(
            self.ts[mask],
            self.arm[mask],
            self.served_pass[mask],
            self.actual_pass[mask],
            {m: v[mask] for m, v in self.votes.items()},
            None if self.versions is None else self.versions[mask],
        )

    def served_by(self, members: Mapping[str, str]) -> np.ndarray:
        """Rows whose logged model versions are exactly ``members`` (all rows if unknown)."""
        if self.versions is None:
            return np.ones(len(self), dtype=bool)
        parsed = {v: parse_versions(v) for v in set(self.versions.tolist())}
        return np.asarray([parsed[v] == dict(members) for v in self.versions], dtype=bool)


def _versions(text: Any) -> dict[str, str] | None:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def parse_versions(text: Any) -> dict[str, str] | None:
    """A logged ``model_versions`` JSON text as ``{"member": "tag"}``, or None if it is not one."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None
