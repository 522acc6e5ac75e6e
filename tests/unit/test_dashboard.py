"""Dashboard reads on real SQLite and PostgreSQL: each die counts once, with its truth."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from ledger import dashboard
from ledger.tables import outcomes, predictions


def _row(rid: str, ts: float, prediction: str, **ids: Any) -> dict[str, Any]:
    base = {"device_id": None, "wafer_id": "W1", "lot_id": "L1", "die_x": None, "die_y": None}
    return {
        "request_id": rid, "ts": ts, "arm": ids.pop("arm", "ensemble"), "features": "[]",
        "prediction": prediction, "probability": 0.5, "cached": False, "degraded": False,
        "latency_ms": 1.0, "model_versions": "{}", "votes": "{}", **base, **ids,
    }  # fmt: skip


def _fill(engine: sa.Engine) -> None:
    rows = [
        # Die D1 sent three times: fail, fail, then pass; its truth came on the first send.
        _row("a1", 10.0, "fail", device_id="D1", die_x=0, die_y=0),
        _row("a2", 20.0, "fail", device_id="D1", die_x=0, die_y=0),
        _row("a3", 30.0, "pass", device_id="D1", die_x=0, die_y=0, arm="challenger"),
        # A die known by position only, sent twice (a wafer re-sent without device ids).
        _row("b1", 11.0, "pass", die_x=1, die_y=0),
        _row("b2", 31.0, "fail", die_x=1, die_y=0),
        # The same position on another wafer is another die.
        _row("c1", 12.0, "pass", die_x=1, die_y=0, wafer_id="W2"),
        # No device id and no position: each prediction is a die of its own.
        _row("e1", 13.0, "pass"),
        _row("e2", 14.0, "pass"),
    ]
    truth = [
        {"request_id": "a1", "actual": "pass", "received_at": 15.0},
        {"request_id": "b1", "actual": "fail", "received_at": 16.0},
        {"request_id": "b2", "actual": "pass", "received_at": 40.0},  # newer truth wins
    ]
    with engine.begin() as conn:
        conn.execute(predictions.insert(), rows)
        conn.execute(outcomes.insert(), truth)


def test_each_die_counts_once_with_its_newest_prediction_and_truth(engine: sa.Engine) -> None:
    _fill(engine)
    w1 = dashboard.wafer(engine, "W1", None, None)
    assert w1 is not None
    # D1, the die at (1, 0), and the two dies without ids: 4 dies of 7 predictions.
    assert (w1["dies"], w1["predictions"]) == (4, 7)
    # Newest: D1 pass, (1, 0) fail, e1 pass, e2 pass.
    assert (w1["predicted_pass"], w1["predicted_yield"]) == (3, 0.75)
    # Truth: D1 pass (sent with a1), (1, 0) pass (b2's, newer than b1's fail).
    assert (w1["labelled"], w1["actual_pass"]) == (2, 2)
    assert (w1["first_ts"], w1["last_ts"]) == (10.0, 31.0)
    assert w1["arms"] == {
        "challenger": {"dies": 1, "predicted": {"pass": 1}, "actual": {"pass": 1}},
        "ensemble": {"dies": 3, "predicted": {"fail": 1, "pass": 2},
                     "actual": {"pass": 1, "unlabelled": 2}},
    }  # fmt: skip
    # An unknown wafer is 404 on its map as on its summary (None).
    assert dashboard.die_map(engine, "W-none", None, None, 100, 0) is None
    assert dashboard.die_map(engine, "W1", 1e12, None, 100, 0) is None
    page = dashboard.die_map(engine, "W1", None, None, 100, 0)
    assert page is not None and page["total"] == 4
    dies = {(d["request_id"], d["x"], d["y"], d["actual"], d["predictions"]) for d in page["dies"]}
    assert dies == {
        ("a3", 0, 0, "pass", 3), ("b2", 1, 0, "pass", 2), ("e1", None, None, None, 1),
        ("e2", None, None, None, 1),
    }  # fmt: skip
    wafers = dashboard.groups(engine, "wafer_id", None, None, None, 10, 0)
    assert [(w["wafer_id"], w["dies"], w["predictions"]) for w in wafers["wafers"]] == [
        ("W1", 4, 7),
        ("W2", 1, 1),
    ]
    lots = dashboard.groups(engine, "lot_id", None, None, None, 10, 0)["lots"]
    assert [(lot["lot_id"], lot["dies"], lot["predictions"]) for lot in lots] == [("L1", 5, 8)]
    in_lot = dashboard.groups(engine, "wafer_id", None, None, "L1", 1, 0)
    assert in_lot["total"] == 2 and in_lot["next_offset"] == 1


def test_the_window_decides_which_prediction_is_newest(engine: sa.Engine) -> None:
    _fill(engine)
    early = dashboard.wafer(engine, "W1", None, 25.0)
    assert early is not None
    # Before 25: D1 was a1 and a2 (newest a2, fail; truth pass from a1), (1, 0) was b1.
    assert (early["dies"], early["predictions"], early["predicted_pass"]) == (4, 5, 3)
    assert (early["labelled"], early["actual_pass"]) == (2, 1)  # b1's truth is fail
    assert dashboard.wafer(engine, "W1", 100.0, None) is None


def test_every_read_agrees_on_each_die_even_at_the_same_time(engine: sa.Engine) -> None:
    """The yields come from one GROUP BY, the arms and the map from ranked rows: the same
    dies, decisions and truths, including a die sent twice at one time, and a device id
    reused on another wafer (another die)."""
    _fill(engine)
    more = [
        # One request with die T1 twice: pass and fail at the same time; pass counts
        # (though "t2" sorts after "t1").
        _row("t1", 50.0, "pass", device_id="T1"),
        _row("t2", 50.0, "fail", device_id="T1", arm="challenger"),
        # D1 on wafer W2 is not W1's D1.
        _row("x1", 51.0, "fail", device_id="D1", wafer_id="W2"),
    ]
    truth = [
        {"request_id": "t1", "actual": "pass", "received_at": 60.0},
        {"request_id": "t2", "actual": "fail", "received_at": 61.0},
    ]
    with engine.begin() as conn:
        conn.execute(predictions.insert(), more)
        conn.execute(outcomes.insert(), truth)
    listed = dashboard.groups(engine, "wafer_id", None, None, None, 10, 0)["wafers"]
    assert {w["wafer_id"]: w["dies"] for w in listed} == {"W1": 5, "W2": 2}
    for row in listed:
        one = dashboard.wafer(engine, row["wafer_id"], None, None)
        assert one is not None
        keys = ("dies", "predictions", "predicted_pass", "labelled", "actual_pass", "last_ts")
        assert {k: one[k] for k in keys} == {k: row[k] for k in keys}
        assert sum(a["dies"] for a in one["arms"].values()) == one["dies"]
        dies = dashboard.die_map(engine, row["wafer_id"], None, None, 100, 0)["dies"]
        assert len(dies) == one["dies"]
        assert sum(d["predictions"] for d in dies) == one["predictions"]
        assert sum(d["prediction"] == "pass" for d in dies) == one["predicted_pass"]
        assert sum(d["actual"] is not None for d in dies) == one["labelled"]
        assert sum(d["actual"] == "pass" for d in dies) == one["actual_pass"]
    t1 = [d for d in dashboard.die_map(engine, "W1", None, None, 100, 0)["dies"]
          if d["device_id"] == "T1"]  # fmt: skip
    assert [(d["request_id"], d["prediction"], d["actual"], d["predictions"]) for d in t1] == [
        ("t1", "pass", "pass", 2)
    ]


def test_pages_past_the_end_still_say_the_total(engine: sa.Engine) -> None:
    _fill(engine)
    past = dashboard.groups(engine, "wafer_id", None, None, None, 10, 5)
    assert past["wafers"] == [] and past["total"] == 2 and past["next_offset"] is None
    nothing = dashboard.groups(engine, "lot_id", 1e9, None, None, 10, 0)
    assert nothing["lots"] == [] and nothing["total"] == 0


def test_expected_yield_is_the_mean_p_pass_of_each_dies_newest_prediction(
    engine: sa.Engine,
) -> None:
    """Pass decisions at a cost-tuned threshold are not the yield the models expect: four
    dies at P(pass) 0.55 are all decided pass (predicted yield 1.0) but expect 0.55."""
    rows = [_row(f"p{i}", 10.0 + i, "pass", device_id=f"D{i}", probability=0.55) for i in range(4)]
    # An older prediction of D0 does not count: its newest does.
    rows.append(_row("old", 1.0, "fail", device_id="D0", probability=0.05))
    rows.append(_row("w2", 5.0, "fail", device_id="E0", wafer_id="W2", probability=0.2))
    with engine.begin() as conn:
        conn.execute(predictions.insert(), rows)
    one = dashboard.wafer(engine, "W1", None, None)
    assert one is not None
    assert one["predicted_yield"] == 1.0
    assert one["expected_yield"] == pytest.approx(0.55)
    assert "threshold" in one["yield_definitions"]["predicted_yield"]
    assert "P(pass)" in one["yield_definitions"]["expected_yield"]
    listed = dashboard.groups(engine, "wafer_id", None, None, None, 10, 0)
    assert {w["wafer_id"]: w["expected_yield"] for w in listed["wafers"]} == {
        "W1": pytest.approx(0.55),
        "W2": pytest.approx(0.2),
    }
    lots = dashboard.groups(engine, "lot_id", None, None, None, 10, 0)["lots"]
    assert lots[0]["expected_yield"] == pytest.approx((4 * 0.55 + 0.2) / 5)
    assert set(listed["yield_definitions"]) == {"predicted_yield", "expected_yield", "actual_yield"}
