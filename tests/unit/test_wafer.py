"""The columnar wafer format: parsing, and its errors naming field and die."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ensemble.schema import DEFAULT_FEATURES, FeatureSchema
from ensemble.validation import InvalidInput
from ensemble.wafer import parse_wafer
from train.synthetic import feature_rows

SCHEMA = FeatureSchema(DEFAULT_FEATURES)
ROWS = feature_rows(5, seed=3)


def test_a_matrix_and_named_columns_give_the_same_rows() -> None:
    by_row = parse_wafer({"features": ROWS}, SCHEMA, 100)
    named = {n: [r[j] for r in ROWS] for j, n in enumerate(SCHEMA.names)}
    by_name = parse_wafer({"features": named}, SCHEMA, 100)
    assert by_row.rows.dtype == np.float32 and by_row.rows.shape == (5, len(SCHEMA))
    assert np.array_equal(by_row.rows, by_name.rows)
    assert np.array_equal(by_row.rows, np.asarray(ROWS, dtype=np.float32))
    assert by_row.answer == "columns" and by_row.dies is None


def test_ids_are_per_die_or_one_for_the_wafer_and_dies_pair_up() -> None:
    w = parse_wafer(
        {
            "features": ROWS,
            "device_id": [f"d{i}" for i in range(5)],
            "wafer_id": "W7",
            "lot_id": ["L1", "L1", "L2", "L2", 9],
            "die_x": [0, 1, 2, 3, -4],
            "die_y": [5, 5, 5, 5, 5],
            "answer": "records",
        },
        SCHEMA,
        100,
    )
    assert [i["device_id"] for i in w.ids] == ["d0", "d1", "d2", "d3", "d4"]
    assert {i["wafer_id"] for i in w.ids} == {"W7"}
    assert [i["lot_id"] for i in w.ids] == ["L1", "L1", "L2", "L2", "9"]
    assert w.dies == [(0, 5), (1, 5), (2, 5), (3, 5), (-4, 5)]
    assert w.answer == "records"


BAD: list[tuple[dict[str, Any], str]] = [
    ({"features": "W7"}, "features"),
    ({"features": []}, "features"),
    ({"features": [ROWS[0], ROWS[1][:3]]}, "features[1]"),
    ({"features": [ROWS[0], [*ROWS[1][:2], 1e39, *ROWS[1][3:]]]}, "features[1][2] (freq_mhz)"),
    ({"features": [ROWS[0], [True, *ROWS[1][1:]]]}, "features[1][0] (vdd_v)"),
    ({"features": {"vdd_v": [1.2]}}, "features.idd_ma"),
    ({"features": {**{n: [1.0, 2.0] for n in SCHEMA.names}, "volts": [1, 2]}}, "features.volts"),
    ({"features": {**{n: [1.0, 2.0] for n in SCHEMA.names}, "temp_c": [1.0]}}, "features.temp_c"),
    ({"features": {**{n: [1.0, 2.0] for n in SCHEMA.names}, "temp_c": [1.0, "hot"]}},
     "features.temp_c[1]"),
    ({"features": {**{n: [1.0, 2.0] for n in SCHEMA.names}, "idd_ma": [1.0, float("nan")]}},
     "features.idd_ma[1]"),
    ({"features": ROWS, "device_id": ["a", "b"]}, "device_id"),
    ({"features": ROWS, "device_id": "a"}, "device_id"),
    ({"features": ROWS, "device_id": ["a", "b", "c", "d", ""]}, "device_id[4]"),
    ({"features": ROWS, "wafer_id": {"w": 1}}, "wafer_id"),
    ({"features": ROWS, "lot_id": ["L"] * 4}, "lot_id"),
    ({"features": ROWS, "die_x": [1] * 5}, "die_y"),
    ({"features": ROWS, "die_x": [1, 2, 3, 4, 1.5], "die_y": [0] * 5}, "die_x[4]"),
    ({"features": ROWS, "die_x": [0] * 5, "die_y": [0, 0, 0, 0, 10**9]}, "die_y[4]"),
    ({"features": ROWS, "die_x": [0] * 5, "die_y": [0, True, 0, 0, 0]}, "die_y[1]"),
    ({"features": ROWS, "answer": "csv"}, "answer"),
    ({"features": ROWS * 30}, "features"),  # 150 dies over the limit of 100
]  # fmt: skip


@pytest.mark.parametrize(("body", "field"), BAD)
def test_bad_shapes_and_values_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_wafer(body, SCHEMA, 100)
    assert caught.value.field == field, str(caught.value)
    assert caught.value.status_code == 422


@pytest.mark.parametrize(
    ("ids", "field"),
    [
        (["d0", "d1", "d\x002", "d3", "d4"], "device_id[2]"),
        (["d0", "d1", "d2", "d3", "x" * 257], "device_id[4]"),
        (["d0", "", "d2", "d3", "d4"], "device_id[1]"),
        (["d0", "d1", "d2", "d3\n", "d4"], "device_id[3]"),
    ],
)
def test_a_bad_die_id_is_named_though_the_column_is_checked_at_once(
    ids: list[str], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_wafer({"features": ROWS, "device_id": ids}, SCHEMA, 100)
    assert caught.value.field == field


def test_a_device_twice_is_422_naming_both_indexes() -> None:
    """Accepted before: the die map showed one of the two and feedback labelled either."""
    ids = ["d0", "d1", "d2", "d1", "d4"]
    with pytest.raises(InvalidInput, match="also at index 1") as caught:
        parse_wafer({"features": ROWS, "device_id": ids}, SCHEMA, 100)
    assert caught.value.field == "device_id[3]"


def test_two_dies_at_one_position_of_a_wafer_are_422_naming_both_indexes() -> None:
    body = {"features": ROWS, "wafer_id": "W1", "die_x": [0, 1, 2, 1, 4], "die_y": [0] * 5}
    with pytest.raises(InvalidInput, match=r"\(1, 0\) of wafer 'W1' is also at index 1") as c:
        parse_wafer(body, SCHEMA, 100)
    assert c.value.field == "die_x[3], die_y[3]"
    # The same position on two different wafers is two dies.
    two = {**body, "wafer_id": ["W1", "W1", "W1", "W2", "W1"]}
    assert parse_wafer(two, SCHEMA, 100).dies is not None


@pytest.mark.parametrize("bad", ["W/1", "..", "W%2F1", True, 1.5])
def test_ids_the_dashboard_cannot_address_are_422_in_a_column_too(bad: Any) -> None:
    ids = ["d0", "d1", bad, "d3", "d4"]
    with pytest.raises(InvalidInput) as caught:
        parse_wafer({"features": ROWS, "device_id": ids}, SCHEMA, 100)
    assert caught.value.field == "device_id[2]"
    with pytest.raises(InvalidInput) as caught:
        parse_wafer({"features": ROWS, "wafer_id": bad}, SCHEMA, 100)
    assert caught.value.field == "wafer_id"
