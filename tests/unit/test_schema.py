from __future__ import annotations

import pytest

from ensemble.schema import DEFAULT_FEATURES, FeatureSchema, SchemaMismatch, common_schema


def test_round_trip() -> None:
    schema = FeatureSchema(("a", "b"), ("float32", "int64"), (0.0, 1.0), (2.0, 3.0))
    assert FeatureSchema.from_dict(schema.to_dict()) == schema
    assert schema.index("b") == 1 and schema.index("zz") is None


def test_members_must_agree_on_names_and_order() -> None:
    a = FeatureSchema(DEFAULT_FEATURES)
    b = FeatureSchema(tuple(reversed(DEFAULT_FEATURES)))
    assert common_schema({"rf": a, "xgb": a}) == a
    with pytest.raises(SchemaMismatch, match="member 'keras' expects"):
        common_schema({"rf": a, "xgb": a, "keras": b})


@pytest.mark.parametrize(
    "kwargs",
    [{"names": ()}, {"names": ("a", "a")}, {"names": ("a", "b"), "dtypes": ("float32",)}],
)
def test_invalid_schemas(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FeatureSchema(**kwargs)  # type: ignore[arg-type]
