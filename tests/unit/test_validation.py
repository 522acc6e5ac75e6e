from __future__ import annotations

import numpy as np
import pytest

from ensemble.schema import DEFAULT_FEATURES, FeatureSchema
from ensemble.validation import InvalidInput, parse_batch, parse_features, parse_identifier

SCHEMA = FeatureSchema(DEFAULT_FEATURES)
GOOD = [1.2, 100, 2000, 25, 50, 0.95]


def test_list_in_schema_order() -> None:
    assert parse_features(GOOD, SCHEMA) == [1.2, 100.0, 2000.0, 25.0, 50.0, 0.95]


def test_mapping_is_reordered_to_schema() -> None:
    raw = dict(zip(reversed(DEFAULT_FEATURES), reversed(GOOD), strict=True))
    assert parse_features(raw, SCHEMA) == parse_features(GOOD, SCHEMA)


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        (GOOD[:5], "features", "expected 6 values"),
        ([*GOOD, 1.0], "features", "got 7"),
        ([1.2, 100, "2000", 25, 50, 0.95], "features[2] (freq_mhz)", "must be a number"),
        ([1.2, 100, float("nan"), 25, 50, 0.95], "features[2] (freq_mhz)", "finite"),
        ([1.2, float("inf"), 2000, 25, 50, 0.95], "features[1] (idd_ma)", "finite"),
        ([True, 100, 2000, 25, 50, 0.95], "features[0] (vdd_v)", "must be a number"),
        ([None, 100, 2000, 25, 50, 0.95], "features[0] (vdd_v)", "must be a number"),
        ("1.2,100", "features", "must be a list"),
        (42, "features", "must be a list"),
        (
            {**dict(zip(DEFAULT_FEATURES, GOOD, strict=True)), "leak_na": 1},
            "features.leak_na",
            "unknown feature",
        ),
        (
            {k: v for k, v in zip(DEFAULT_FEATURES, GOOD, strict=True) if k != "temp_c"},
            "features.temp_c",
            "missing",
        ),
    ],
)
def test_bad_features_name_the_field(raw: object, field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_features(raw, SCHEMA)
    assert err.value.field == field
    assert words in err.value.message
    assert err.value.to_json()["field"] == field


def test_batch_fast_path_matches_slow_path() -> None:
    rows = [list(np.random.default_rng(1).normal(size=6)) for _ in range(50)]
    mixed = [dict(zip(DEFAULT_FEATURES, r, strict=True)) for r in rows]
    fast, _ = parse_batch([{"features": r} for r in rows], SCHEMA, 100)
    slow, _ = parse_batch([{"features": r} for r in mixed], SCHEMA, 100)
    assert fast.dtype == np.float32 and fast.shape == (50, 6)
    np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize(
    ("devices", "field"),
    [
        ([], "devices"),
        ("wafer", "devices"),
        ([{"features": GOOD}] * 11, "devices"),
        ([{"features": GOOD}, 3], "devices[1]"),
        ([{"features": GOOD}, {"device_id": "d"}], "devices[1].features"),
        ([{"features": GOOD, "lot": "L1"}], "devices[0].lot"),
        (
            [{"features": GOOD}, {"features": [1, 2, 3, 4, 5, float("nan")]}],
            "devices[1].features[5] (neighbor_yield)",
        ),
        ([{"features": GOOD, "device_id": ["x"]}], "devices[0].device_id"),
    ],
)
def test_bad_batches_name_the_device(devices: object, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_batch(devices, SCHEMA, max_devices=10)
    assert err.value.field == field


def test_device_ids_kept_in_order() -> None:
    _, ids = parse_batch(
        [
            {"features": GOOD, "device_id": "a"},
            {"features": GOOD},
            {"features": GOOD, "device_id": 7},
        ],
        SCHEMA,
        10,
    )
    assert [i["device_id"] for i in ids] == ["a", None, "7"]


def test_device_id_length() -> None:
    with pytest.raises(InvalidInput):
        parse_identifier("x" * 257, "device_id")
    with pytest.raises(InvalidInput):
        parse_identifier("", "device_id")
