from __future__ import annotations

import numpy as np
import pytest

from ensemble.schema import DEFAULT_FEATURES, FeatureSchema
from ensemble.validation import (
    InvalidInput,
    parse_batch,
    parse_count,
    parse_features,
    parse_identifier,
    parse_outcomes,
    parse_time,
    parse_window,
)

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


@pytest.mark.parametrize(
    "bad", ["a\x00b", "W1\nforged", "tab\there", "del\x7f", "c1\x85", "x\ud800"]
)
def test_identifiers_refuse_control_characters_and_lone_surrogates(bad: str) -> None:
    """NUL is refused by PostgreSQL text, a newline forges a text log line, a lone
    surrogate cannot be encoded: each is a 422 naming the field, not a dead-lettered row."""
    with pytest.raises(InvalidInput, match="control characters") as caught:
        parse_identifier(bad, "wafer_id")
    assert caught.value.field == "wafer_id"


def test_identifiers_keep_any_printable_text_the_dashboard_can_address() -> None:
    for good in ("W-07 3", "Lot 4.B", "晶圆-1", "naïve", "a" * 256, "...", ".a"):
        assert parse_identifier(good, "lot_id") == good
    assert parse_identifier(7, "device_id") == "7"


@pytest.mark.parametrize("bad", ["Lot 4/B", "W\\1", "W?1", "W#3", "100%", ".", ".."])
def test_identifiers_the_dashboard_paths_cannot_address_are_422(bad: str) -> None:
    """/dashboard/wafers/W%2F1 is routed as /dashboard/wafers/W/1: such a wafer was
    accepted, then 404 on its reads. Feedback still looks such ids up (stored before)."""
    with pytest.raises(InvalidInput, match=r"the dashboard.s paths") as caught:
        parse_identifier(bad, "wafer_id")
    assert caught.value.field == "wafer_id"
    assert parse_identifier(bad, "device_id", addressable=False) == bad


@pytest.mark.parametrize(
    "bad", [True, False, 1.5, 1.0, [1], {"a": 1}, pytest.param(10**5000, id="huge")]
)
def test_identifiers_are_strings_or_integers_only(bad: object) -> None:
    """``true`` was stored as "1" (and 1.0 would be): the die could never be named back."""
    with pytest.raises(InvalidInput) as caught:
        parse_identifier(bad, "device_id")
    assert caught.value.field == "device_id" and len(str(caught.value)) < 300


def test_a_batch_with_a_device_twice_names_both_indexes() -> None:
    row = [1.2, 100, 2000, 25, 50, 0.95]
    devices = [{"features": row, "device_id": d} for d in ("a", "b", "a")]
    with pytest.raises(InvalidInput, match="at index 0") as caught:
        parse_batch(devices, SCHEMA, 10)
    assert caught.value.field == "devices[2].device_id"
    unknown = [{"features": row, "deviceId": "a"}]
    with pytest.raises(InvalidInput, match="the fields are features, device_id") as caught:
        parse_batch(unknown, SCHEMA, 10)
    assert caught.value.field == "devices[0].deviceId"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("+5", "limit"),
        (" 5", "limit"),
        ("1_0", "limit"),
        ("\u0661", "limit"),
        pytest.param("5" * 5000, "limit", id="5000-digits"),
        ("-1", "limit"),
        ("", "limit"),
    ],
)
def test_counts_are_ascii_digits_only(raw: str, field: str) -> None:
    """int() reads '+5', ' 5', '1_0' and Arabic-Indic digits, and raises ValueError past
    4,300 digits (history=9...9 answered 500)."""
    with pytest.raises(InvalidInput) as caught:
        parse_count(raw, field, 10, 0, 1000)
    assert caught.value.field == field and len(str(caught.value)) < 300
    assert parse_count("010", field, 10, 0, 1000) == 10


@pytest.mark.parametrize("raw", ["1_000", "+1000", " 1000", "\u0661\u0661", "1e3", "infinity"])
def test_report_bounds_refuse_what_float_reads_loosely(raw: str) -> None:
    with pytest.raises(InvalidInput, match="unix seconds or ISO 8601"):
        parse_time(raw, "since")
    assert parse_time("1000.5", "since") == 1000.5
    assert parse_time("2026-11-26T08:00:00Z", "since") == 1795680000.0


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (1e39, "within +-3.40282e+38"),  # finite in float64, infinity in float32
        (-3.5e38, "within +-3.40282e+38"),
        (10**400, "must be finite"),  # beyond float range: OverflowError before
        (float("nan"), "must be finite"),
    ],
)
def test_values_outside_float32_name_the_field(value: object, words: str) -> None:
    raw = [*GOOD]
    raw[1] = value
    with pytest.raises(InvalidInput) as err:
        parse_features(raw, SCHEMA)
    assert err.value.field == "features[1] (idd_ma)" and words in err.value.message
    with pytest.raises(InvalidInput) as err:  # the batch fast path hands over to the slow one
        parse_batch([{"features": GOOD}, {"features": raw}], SCHEMA, 10)
    assert err.value.field == "devices[1].features[1] (idd_ma)"


def test_float32_max_itself_is_accepted() -> None:
    raw = [*GOOD]
    raw[1] = float(np.finfo(np.float32).max)
    rows, _ = parse_batch([{"features": raw}], SCHEMA, 10)
    assert np.isfinite(rows).all()


def test_echoed_values_are_cut() -> None:
    huge = "x" * 10_000_000
    with pytest.raises(InvalidInput) as err:
        parse_features([huge, *GOOD[1:]], SCHEMA)
    assert len(str(err.value)) < 200
    with pytest.raises(InvalidInput) as err:
        parse_features({huge: 1.0}, SCHEMA)
    assert len(str(err.value)) < 400 and len(err.value.field) < 200
    with pytest.raises(InvalidInput) as err:
        parse_outcomes([{"device_id": "d", "actual": huge}], 10)
    assert len(str(err.value)) < 200


@pytest.mark.parametrize("raw", ["inf", "-inf", "nan", "1e309", "1e30", "-1", "x" * 100])
def test_report_window_bounds_out_of_range(raw: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_time(raw, "since")
    assert err.value.field == "since" and len(str(err.value)) < 200


def test_report_window_must_run_forwards() -> None:
    assert parse_window("2026-11-01T00:00:00Z", "1800000000") == (1793491200.0, 1800000000.0)
    with pytest.raises(InvalidInput) as err:
        parse_window("1800000000", "2026-11-01")
    assert err.value.field == "until"
    with pytest.raises(InvalidInput):
        parse_window("5", "5")


def test_logs_escape_control_characters_but_keep_a_traceback() -> None:
    import logging

    from ops.logs import EscapeControls, TextFormatter

    record = logging.LogRecord(
        "bentoml.access", logging.INFO, __file__, 1, "%s (path=%s)", ("1.2.3.4", "/x\n2026 FORGED"),
        None,
    )  # fmt: skip
    assert EscapeControls().filter(record)
    assert record.getMessage() == "1.2.3.4 (path=/x\\n2026 FORGED)"
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        failed = logging.LogRecord("ops", logging.ERROR, __file__, 1, "a\rb", None, sys.exc_info())
    failed.fields = {"endpoint": "/nope\nFORGED"}  # type: ignore[attr-defined]
    line = TextFormatter().format(failed)
    first, *traceback = line.splitlines()
    assert first.endswith("a\\rb endpoint=/nope\\nFORGED")
    assert traceback[0].startswith("Traceback") and traceback[-1] == "ValueError: boom"
