"""The feature schema every model and request must agree on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The default device-parametric features, in the order the models expect them.
DEFAULT_FEATURES: tuple[str, ...] = (
    "vdd_v",
    "idd_ma",
    "freq_mhz",
    "temp_c",
    "test_time_ms",
    "neighbor_yield",
)


class SchemaMismatch(ValueError):
    """The member models were trained on different feature schemas."""


@dataclass(frozen=True)
class FeatureSchema:
    """Names, order, dtypes and observed training ranges of the model inputs.

    Ranges are informational (stored with each model); a value outside them is
    still predicted on.
    """

    names: tuple[str, ...]
    dtypes: tuple[str, ...] = ()
    minimums: tuple[float, ...] = ()
    maximums: tuple[float, ...] = ()
    _index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("a feature schema needs at least one feature")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"duplicate feature names in schema: {list(self.names)}")
        for attr in ("dtypes", "minimums", "maximums"):
            value = getattr(self, attr)
            if value and len(value) != len(self.names):
                raise ValueError(
                    f"schema {attr} has {len(value)} entries for {len(self.names)} features"
                )
        self._index.update({name: i for i, name in enumerate(self.names)})

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int | None:
        """Position of feature ``name``, or None when it is not in the schema."""
        return self._index.get(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in model metadata."""
        return {
            "names": list(self.names),
            "dtypes": list(self.dtypes),
            "min": [float(v) for v in self.minimums],
            "max": [float(v) for v in self.maximums],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSchema:
        """Inverse of :meth:`to_dict`."""
        return cls(
            names=tuple(data["names"]),
            dtypes=tuple(data.get("dtypes", ())),
            minimums=tuple(float(v) for v in data.get("min", ())),
            maximums=tuple(float(v) for v in data.get("max", ())),
        )


def common_schema(schemas: dict[str, FeatureSchema]) -> FeatureSchema:
    """The one schema shared by all members; raises SchemaMismatch naming the odd one.

    Members must agree on feature names and order; training ranges may differ
    (they describe the data each saw) and the first member's are kept.
    """
    if not schemas:
        raise SchemaMismatch("no member models to compare")
    (first_name, first), *rest = schemas.items()
    for name, schema in rest:
        if schema.names != first.names:
            raise SchemaMismatch(
                f"member '{name}' expects features {list(schema.names)} but "
                f"member '{first_name}' expects {list(first.names)}; retrain all "
                "three members on the same data (yield-ensemble train)"
            )
    return first
