"""Reference distributions, out-of-range flags and the drift reads on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from ensemble.drift import OutOfRange, Ranges, Reference, out_of_range
from ensemble.schema import DEFAULT_FEATURES
from ledger import drift as reads
from ledger.drift_stats import drift, holm
from ledger.migrate import upgrade
from ledger.tables import predictions
from tests.unit.conftest import default_rows
from train.reference import fit_reference
from train.synthetic import SHIFTED, generate

NAMES = tuple(DEFAULT_FEATURES)


def test_the_reference_round_trips_and_bins_the_training_rows(reference: Reference) -> None:
    again = Reference.from_dict(json.loads(json.dumps(reference.to_dict())))
    assert again == reference
    # Small: serving reads it (the p-value table is most of it).
    assert len(json.dumps(reference.to_dict())) < 16_000
    assert reference.sf_table is not None and reference.sf_table.df2 == temp_wafers(reference) - 1
    temp = reference.features[NAMES.index("temp_c")]
    # Four insertion temperatures: one bin each, none empty, no tails in training.
    assert len(temp.inner) == 3 and all(temp.train[1:-1]) and temp.train[0] == temp.train[-1] == 0
    vdd = reference.features[0]
    assert vdd.bins == 12 and sum(vdd.train) == 6400 and sum(vdd.held_out) == 1600
    # Equal-mass inner bins: each about a tenth of the training rows.
    assert max(vdd.train[1:-1]) < 0.12 * 6400 and min(vdd.train[1:-1]) > 0.08 * 6400
    # Wafers share a corner in supply and speed, not in the test insertion.
    freq = reference.features[NAMES.index("freq_mhz")]
    assert freq.wafer_modes[0] > 0.05 and temp.wafer_modes[0] < 0.01


def temp_wafers(reference: Reference) -> int:
    return reference.features[NAMES.index("temp_c")].wafers


def test_out_of_range_flags_which_features_and_how_far() -> None:
    ranges = Ranges(("a", "b"), np.array([0.0, 10.0]), np.array([1.0, 20.0]))
    rows = np.array([[0.5, 15.0], [1.5, 15.0], [-0.25, 25.0]], dtype=np.float32)
    flags = out_of_range(rows, ranges)
    assert flags.dies.tolist() == [1, 2]
    assert flags.per_die() == [None, {"a": 0.5}, {"a": 0.25, "b": 0.5}]
    assert flags.summary() == {"dies": 2, "features": {"a": 2, "b": 1}}
    assert out_of_range(rows, None).per_die() == [None, None, None]


def test_a_die_is_flagged_as_the_ledger_stores_it() -> None:
    """The single answer's flags (``die``) are the ledger's (``per_die``) to the bit: a
    distance far past the range (there ``round`` and ``np.round`` differ in the last
    place) and one that rounds to nothing (dropped, not answered as 0.0)."""
    distance = np.array([[1.2e-7, 4.045518398215282e39, 1.0], [0.0, 0.0, 0.0]])
    flags = OutOfRange(("a", "b", "c"), distance, np.array([0]))
    assert flags.die(0) == flags.per_die()[0]
    assert set(flags.die(0)) == {"b", "c"} and np.isfinite(flags.die(0)["b"])
    assert [json.dumps(flags.die(0))] == [json.dumps(flags.per_die()[0])]
    assert flags.die(1) == {} and flags.per_die()[1] is None


def test_out_of_range_distances_are_the_defined_ones_exactly() -> None:
    """Distance = (below the low bound + above the high bound) / max(range, float32's
    smallest normal), in float64, bit for bit, for a batch or a die at a time, with a
    feature training saw at one value."""
    rng = np.random.default_rng(3)
    low, high = np.array([0.0, -5.0, 2.0, 7.0]), np.array([1.0, 5.0, 2.0, 7.5])
    ranges = Ranges(("a", "b", "c", "d"), low, high)
    rows = rng.uniform(-10, 10, size=(500, 4)).astype(np.float32)
    rows[::7] = np.float32([0.5, 0.0, 2.0, 7.25])  # in range
    values = rows.astype(np.float64)
    span = np.maximum(high - low, np.finfo(np.float32).tiny)
    expected = (np.maximum(low - values, 0) + np.maximum(values - high, 0)) / span
    flags = out_of_range(rows, ranges)
    assert flags.distance.dtype == np.float64
    assert np.array_equal(flags.distance, expected)
    assert flags.dies.tolist() == np.flatnonzero(expected.any(axis=1)).tolist()
    assert expected[0].sum() == 0 and expected[1].sum() > 0
    for i in (0, 1):  # a die in range (checked in Python) and one out of range
        one = out_of_range(rows[i : i + 1], ranges)
        assert one.distance.dtype == np.float64
        assert np.array_equal(one.distance, expected[i : i + 1])
        assert one.dies.tolist() == ([] if i == 0 else [0])
        assert one.die(0) == flags.die(i) and one.per_die() == [flags.per_die()[i]]
    assert out_of_range(rows[:1], ranges).die(0) == {}


def test_holm_matches_statsmodels() -> None:
    from statsmodels.stats.multitest import multipletests

    p = [0.01, 0.04, 0.03, 0.005, 0.5, 0.2]
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1].tolist())


def _lot_stats(reference: Reference, frame: Any) -> dict[str, Any]:
    x = default_rows(frame)
    counts = [f.counts(x[:, j]) for j, f in enumerate(reference.features)]
    return drift(reference, counts, len(x), frame["wafer_id"].nunique(), 0)


def test_a_shifted_lot_drifts_and_a_new_unshifted_lot_does_not(reference: Reference) -> None:
    calm = _lot_stats(reference, generate(3000, seed=1234))
    assert not calm["drifted"], calm["features"]
    moved = _lot_stats(reference, generate(3000, seed=1235, shift=SHIFTED))
    assert moved["drifted"]
    assert moved["moved_most"][0] in {"vdd_v", "freq_mhz", "temp_c"}


def _served_rows(frame: Any, lot: str, t0: float, ranges: Ranges) -> list[dict[str, Any]]:
    x = default_rows(frame)
    flags = out_of_range(x, ranges).per_die()
    return [
        {
            "request_id": f"{lot}-{i}", "ts": t0 + i, "arm": "ensemble", "device_id": f"d{i}",
            "wafer_id": f"{lot}-{w}", "lot_id": lot,
            "features": json.dumps(np.asarray(row, dtype=np.float64).tolist()),
            "prediction": "pass", "probability": 0.9, "cached": False, "degraded": False,
            "latency_ms": 1.0, "model_versions": "{}", "votes": "{}",
            "out_of_range": None if f is None else json.dumps(f),
        }
        for i, (row, w, f) in enumerate(zip(x, frame["wafer_id"], flags, strict=True))
    ]  # fmt: skip


def test_drift_reads_count_in_the_database_as_numpy_does(
    engine: sa.Engine, reference: Reference
) -> None:
    # Lots of 3000 dies (4-5 wafers): 2 wafers of a shifted lot are within the spread
    # of 2 unshifted wafers against a 12-wafer reference (the test is conservative).
    calm, moved = generate(3000, seed=99), generate(3000, seed=98, shift=SHIFTED)
    rows = _served_rows(calm, "CALM", 1000.0, reference.ranges())
    rows += _served_rows(moved, "MOVED", 5000.0, reference.ranges())
    with engine.begin() as conn:
        conn.execute(predictions.insert(), rows)
    page = reads.groups(engine, reference, "lot_id", None, None)
    assert [lot["lot_id"] for lot in page["lots"]] == ["MOVED", "CALM"] and page["total"] == 2
    by_lot = {lot["lot_id"]: lot for lot in page["lots"]}
    assert by_lot["MOVED"]["drifted"] and not by_lot["CALM"]["drifted"]
    assert by_lot["MOVED"]["wafers"] == moved["wafer_id"].nunique()
    # The database's bins are numpy's, feature by feature.
    x = default_rows(moved)
    found = reads.counts(engine, reference, predictions.c.lot_id, [predictions.c.lot_id == "MOVED"])
    for j, f in enumerate(reference.features):
        assert found["MOVED"]["counts"][j].tolist() == f.counts(x[:, j]).tolist(), f.name
    flagged = sum(r["out_of_range"] is not None for r in rows if r["lot_id"] == "MOVED")
    assert by_lot["MOVED"]["out_of_range_dies"] == flagged
    one = reads.one(engine, reference, "lot_id", "MOVED", None, None)
    assert one is not None and one["histograms"][0]["feature"] == one["features"][0]["feature"]
    assert sum(one["histograms"][0]["served"]) == 3000
    assert reads.one(engine, reference, "lot_id", "NONE", None, None) is None
    wafers = reads.groups(engine, reference, "wafer_id", None, None, lot_id="CALM", limit=2)
    assert len(wafers["wafers"]) == 2 and wafers["next_offset"] == 2
    line = reads.timeline(engine, reference, None, None, bucket_s=2000)
    assert [b["start"] for b in line["buckets"]] == [0, 2000, 4000, 6000]
    assert sum(b["dies"] for b in line["buckets"]) == 6000
    # A window excludes what lies outside it.
    late = reads.groups(engine, reference, "lot_id", 4000.0, None)
    assert [lot["lot_id"] for lot in late["lots"]] == ["MOVED"]


def test_rows_logged_before_0008_read_as_unchecked(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0007")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO predictions (request_id, ts, arm, features, prediction, probability,"
                " cached, degraded, latency_ms, model_versions, votes) VALUES ('r', 1, "
                "'ensemble', '[1]', 'pass', 0.9, 0, 0, 1, '{}', '{}')"
            )
        )
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT out_of_range FROM predictions")).all() == [(None,)]


def test_a_reference_without_wafers_is_storable_as_model_metadata() -> None:
    """BentoML's metadata takes no None: a reference of rows with no wafer ids (a CSV
    table) has no p-value table, and says so by leaving the key out."""
    import numpy as np

    from ensemble.drift import Reference

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    reference = fit_reference(("a", "b", "c"), x[:300], x[300:], None)
    saved = reference.to_dict()

    def no_none(value: object) -> bool:
        if isinstance(value, dict):
            return all(no_none(v) for v in value.values())
        if isinstance(value, list):
            return all(no_none(v) for v in value)
        return value is not None

    assert no_none(saved)
    assert Reference.from_dict(saved).names == reference.names


def test_an_extreme_float32_value_has_a_finite_distance() -> None:
    """3e38 is a valid float32 feature; over a narrow range its distance overflowed float32
    to inf and the answer could not be encoded (a 500)."""
    import math

    import numpy as np

    from ensemble.drift import Ranges, out_of_range

    ranges = Ranges(("a", "b"), np.array([0.0, 1.0]), np.array([0.5, 1.1]))
    flags = out_of_range(np.full((2, 2), 3e38, dtype=np.float32), ranges)
    (first, second) = flags.per_die()
    assert first is not None and all(math.isfinite(v) for v in first.values())
    assert second == first
