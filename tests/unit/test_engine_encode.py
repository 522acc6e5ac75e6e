"""The writer's rows: the values ``json.dumps`` would store, strict JSON only, refused alone;
and the SQLite insert, a statement per ``SQLITE_ROWS_PER_STATEMENT`` rows, stores them all."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from ledger.engine import (
    SQLITE_ROWS_PER_STATEMENT,
    PredictionWrites,
    _bulk_rows,
    make_engine,
    storable,
)
from ledger.migrate import upgrade
from ledger.tables import JSON_COLUMNS, Served, predictions

COLUMNS = [c.name for c in predictions.columns]
FEATURES, VOTES = (COLUMNS.index(c) for c in JSON_COLUMNS)


def _records(n: int, seed: int = 0) -> list[list[Any]]:
    """``n`` records as the request path makes them (float32 features, member votes)."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n, 6)).astype(np.float32) * np.float32(1e3)
    results = [
        {"arm": "ensemble", "prediction": "pass", "probability": float(p), "cached": False,
         "degraded": False, "votes": {"random_forest": float(p), "keras": 0.25},
         "combiner": "majority:1"}
        for p in rng.random(n).astype(np.float32)
    ]  # fmt: skip
    served = Served(
        1_796_058_916.39846, 148.2, [f"req.{i}" for i in range(n)],
        [{"device_id": f"d{i}", "wafer_id": "W1", "lot_id": "L1"} for i in range(n)],
        rows, results, {"random_forest": "yield-random-forest:1"},
    )  # fmt: skip
    return list(served.records())


def test_rows_hold_what_json_dumps_would_store() -> None:
    records = _records(50)
    good, rows, refused = storable(records)
    assert good == records and not refused
    for record, row in zip(records, rows, strict=True):
        assert len(row) == len(COLUMNS)
        for at, value in enumerate(record):
            if at in (FEATURES, VOTES):
                assert json.loads(row[at]) == value  # the same floats, exactly
                assert " " not in row[at]  # compact, as SQLite's json_extract wrote it
            else:
                assert row[at] == value


@pytest.mark.parametrize(
    ("at", "value", "why"),
    [
        (FEATURES, [1.0, math.nan], "Out of range float"),
        (VOTES, {"keras": math.inf}, "Out of range float"),
        (COLUMNS.index("probability"), -math.inf, "Out of range float"),
        (COLUMNS.index("latency_ms"), math.nan, "Out of range float"),
        (COLUMNS.index("device_id"), {"nested": 1}, "not a JSON scalar"),
        (FEATURES, [np.float32(1.0)], "serialize unknown type"),
    ],
)
def test_a_value_strict_json_cannot_hold_refuses_only_its_record(
    at: int, value: Any, why: str
) -> None:
    records = _records(3 * SQLITE_ROWS_PER_STATEMENT)
    records[SQLITE_ROWS_PER_STATEMENT + 3][at] = value
    good, rows, refused = storable(records)
    assert len(good) == len(rows) == len(records) - 1
    assert [(r[0], why in reason) for r, reason in refused] == [
        (f"req.{SQLITE_ROWS_PER_STATEMENT + 3}", True)
    ]


def test_nan_spelled_inside_a_string_is_no_refusal() -> None:
    record = _records(1)[0]
    record[VOTES] = {"NaN": 0.5, "Infinity": 0.25}
    good, rows, refused = storable([record])
    assert good == [record] and not refused
    assert json.loads(rows[0][VOTES]) == {"NaN": 0.5, "Infinity": 0.25}


def test_a_record_from_an_older_release_is_padded_with_nulls() -> None:
    old = _records(1)[0][:-2]  # before assigned_arm and out_of_range
    _, rows, _ = storable([old])
    assert rows[0][-2:] == (None, None) and len(rows[0]) == len(COLUMNS)


@pytest.mark.parametrize("n", [1, SQLITE_ROWS_PER_STATEMENT, 2 * SQLITE_ROWS_PER_STATEMENT + 7])
def test_sqlite_insert_stores_every_row_as_given(tmp_path: Path, n: int) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    upgrade(engine)
    records = _records(n, seed=n)
    good, rows, _ = storable(records)
    writes = PredictionWrites(engine)
    writes.insert(good, rows)
    writes.insert(good)  # again, rows made here: ON CONFLICT DO NOTHING, no error
    with engine.connect() as conn:
        stored = conn.execute(sa.select(predictions).order_by(predictions.c.ts)).all()
    assert len(stored) == n
    by_id = {r.request_id: r for r in stored}
    for record in records:
        row = by_id[record[0]]
        assert json.loads(row.features) == record[FEATURES]
        assert json.loads(row.votes) == record[VOTES]
        assert (row.probability, row.device_id, row.ts) == (record[8], record[3], record[1])
    engine.dispose()


def _one_at_a_time(records: list[list[Any]]) -> tuple[list[Any], list[Any], list[Any]]:
    """``storable``'s answer made a record at a time: what its column-wise path must equal."""
    results = [storable([r]) for r in records]
    return (
        [g for good, _, _ in results for g in good],
        [row for _, rows, _ in results for row in rows],
        [x for _, _, refused in results for x in refused],
    )


def test_the_column_wise_rows_are_the_row_by_row_rows_to_the_byte() -> None:
    records = _records(2 * SQLITE_ROWS_PER_STATEMENT + 7, seed=3)
    records[5][VOTES] = {}  # a die no member answered
    records[6][FEATURES] = [1, 2.5, -0.0]  # ints beside floats
    assert _bulk_rows(records) is not None  # the column-wise path answers these
    assert storable(records) == _one_at_a_time(records)


@pytest.mark.parametrize(
    ("at", "value"),
    [
        (FEATURES, ["],[", 1.0]),  # text that would cut the column's JSON in the wrong place
        (VOTES, {"a},{b": 0.5}),  # a key that is no identifier
        (VOTES, {"InfinityNet": 3.0517578125e-05}),  # the standard library would write all
        (VOTES, {"keras": [0.5]}),
        (FEATURES, [True, 1.0]),
        (FEATURES, [10**400]),  # no float holds it
        (FEATURES, None),
        (COLUMNS.index("probability"), 10**400),
        (COLUMNS.index("probability"), 1e308),  # finite, but the column's sum is not
        (COLUMNS.index("die_x"), 3.5),
    ],
)
def test_a_record_of_another_shape_is_stored_as_it_would_be_alone(at: int, value: Any) -> None:
    records = _records(20)
    records[7][at] = value
    records[8][at] = value
    assert _bulk_rows(records) is None
    assert storable(records) == _one_at_a_time(records)
