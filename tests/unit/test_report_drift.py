"""The A/B report's drift section, logged through a PredictionLog on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from ensemble.arms import Arm, build_arms
from ensemble.drift import Reference, out_of_range
from ensemble.schema import DEFAULT_FEATURES
from ledger.predlog import PredictionLog, Served
from tests.unit.conftest import default_rows
from train.reference import fit_reference
from train.synthetic import SHIFTED, generate

NAMES = tuple(DEFAULT_FEATURES)
ARMS = build_arms([Arm("challenger", "xgboost", 0.1)], ["random_forest", "xgboost", "keras"])
VERSIONS = {"random_forest": "rf:1", "xgboost": "xgb:1", "keras": "nn:1"}
#: The features ``SHIFTED`` moves: supply, speed, and the insertions' mix of temperatures.
SHIFTED_FEATURES = {"vdd_v", "freq_mhz", "temp_c"}


def _record(log: PredictionLog, frame: Any, lot: str, reference: Reference, t0: float) -> None:
    """A lot served by the ensemble, as /predict_wafer logs it (flags included)."""
    x = default_rows(frame)
    n = len(x)
    result = {"prediction": "pass", "probability": 0.9, "votes": {"xgboost": 0.9}, "arm":
              "ensemble", "cached": False, "degraded": False, "missing_members": []}  # fmt: skip
    ids = {
        "device_id": [f"{lot}-{i}" for i in range(n)],
        "wafer_id": [f"{lot}-{w}" for w in frame["wafer_id"]],
        "lot_id": [lot] * n,
    }
    rids = [f"{lot}-r{i}" for i in range(n)]
    flags = out_of_range(x, reference.ranges())
    log.record(Served(t0, 1.0, rids, ids, x, [result] * n, VERSIONS, out_of_range=flags))
    assert log.flush(30)


def _bins_are_the_references(histogram: dict[str, Any], reference: Reference) -> None:
    f = reference.features[NAMES.index(histogram["feature"])]
    assert histogram["edges"] == [f.minimum, *f.inner, f.maximum]
    assert len(histogram["served"]) == len(histogram["train_share"]) == f.bins
    assert histogram["train_share"] == pytest.approx((np.asarray(f.train) / sum(f.train)).tolist())


def test_unshifted_lots_flag_nothing(log: PredictionLog, reference: Reference) -> None:
    calm, also = generate(3000, seed=99), generate(3000, seed=97)
    _record(log, calm, "CALM", reference, time.time() - 100)
    _record(log, also, "ALSO", reference, time.time() - 50)
    drift = log.report(ARMS, reference=reference)["drift"]
    assert drift["available"] and drift["lots_total"] == 2
    assert drift["lots_drifted"] == drift["lots_alert"] == 0 and drift["worst_lot"] is None
    assert not any(lot["drifted"] or lot["alert"] for lot in drift["lots"])
    whole = drift["overall"]
    assert whole["dies"] == 6000 and not whole["drifted"] and whole["moved_most"] == []
    # The window's histogram: its largest-PSI feature, counted in the database into the
    # reference's own bins, as numpy counts the logged values.
    h = whole["histogram"]
    assert h["feature"] == whole["features"][0]["feature"]
    _bins_are_the_references(h, reference)
    values = np.concatenate([default_rows(calm), default_rows(also)])[:, NAMES.index(h["feature"])]
    f = reference.features[NAMES.index(h["feature"])]
    assert h["served"] == f.counts(values).tolist()


def test_a_shifted_lot_is_flagged_with_a_shifted_feature_first(
    log: PredictionLog, reference: Reference
) -> None:
    moved = generate(3000, seed=98, shift=SHIFTED)
    _record(log, generate(3000, seed=99), "CALM", reference, time.time() - 100)
    _record(log, moved, "MOVED", reference, time.time() - 200)  # older: listed first anyway
    report = log.report(ARMS, reference=reference)
    drift = report["drift"]
    first, second = drift["lots"]
    # Flagged: a feature's Holm-adjusted p under alpha. (Its PSI stays under the alert's
    # 0.25 here: the shift moves the insertions' mix of temperatures only a little.)
    assert first["lot_id"] == "MOVED" and first["drifted"]
    assert second["lot_id"] == "CALM" and not second["drifted"] and not second["alert"]
    assert first["moved_most"][0] in SHIFTED_FEATURES
    assert drift["lots_drifted"] == 1 and drift["lots_alert"] == int(first["alert"])
    worst = drift["worst_lot"]
    assert worst["lot_id"] == "MOVED" and worst["feature"] == first["moved_most"][0]
    h = worst["histogram"]
    _bins_are_the_references(h, reference)
    f = reference.features[NAMES.index(h["feature"])]
    assert h["served"] == f.counts(default_rows(moved)[:, NAMES.index(h["feature"])]).tolist()
    # The page shows the table and that histogram.
    from ledger.html_report import render

    page = render(report)
    row = page[page.index("<th>lot MOVED</th>") :].split("</tr>")[0]
    assert row.endswith("<td>drifted</td>") or row.endswith("<td><b>ALERT</b></td>")
    assert page[page.index("<th>lot CALM</th>") :].split("</tr>")[0].endswith("<td>no</td>")
    assert "1 of 2 lots drifted" in page
    assert f'alt="drift histogram {h["feature"]}"' in page


def test_without_a_reference_the_section_says_why(log: PredictionLog) -> None:
    _record(log, generate(200, seed=5), "L", fit_reference(NAMES, *_split()), time.time())
    report = log.report(ARMS)
    assert report["drift"]["available"] is False
    assert "without reference distributions" in report["drift"]["note"]
    from ledger.html_report import render

    assert "No drift figures: the serving champion was saved without" in render(report)


def _split() -> tuple[np.ndarray, np.ndarray, None]:
    x = default_rows(generate(500, seed=4))
    return x[:400], x[400:], None


def test_an_empty_window_has_no_overall_drift(log: PredictionLog, reference: Reference) -> None:
    drift = log.report(ARMS, since=1.0, until=2.0, reference=reference)["drift"]
    assert drift["available"] and drift["overall"] is None and drift["lots"] == []
    from ledger.html_drift import section

    assert "No prediction in the window" in section(drift)


def test_the_page_lists_the_worst_lots_and_says_how_many_there_are() -> None:
    from ledger.html_drift import ROWS, section

    def group(i: int, drifted: bool) -> dict[str, Any]:
        feature = {"feature": "vdd_v", "psi": 0.3, "p_holm": 0.001 if drifted else 0.5}
        return {"lot_id": f"L{i}", "dies": 10, "wafers": 1, "out_of_range_share": 0.0,
                "max_psi": 0.3, "moved_most": ["vdd_v"] if drifted else [], "features": [feature],
                "drifted": drifted, "alert": drifted}  # fmt: skip

    histogram = {"feature": "vdd_v", "edges": [0.0, 1.0], "served_share": [0, 1, 0],
                 "train_share": [0, 1, 0], "held_out_share": None}  # fmt: skip
    lots = [group(i, i < 2) for i in range(ROWS + 5)]
    page = section({"available": True, "overall": {**group(-1, False), "histogram": histogram},
                    "lots": lots, "lots_total": ROWS + 5, "lots_drifted": 2, "lots_alert": 2,
                    "worst_lot": None, "thresholds": {"alpha": 0.01, "psi_significant": 0.25,
                                                      "psi_moderate": 0.1}})  # fmt: skip
    assert f"The {ROWS} worst of the window's {ROWS + 5} lots listed" in page
    assert f"2 of {ROWS + 5} lots drifted" in page and "2 past the alert's threshold" in page
    assert page.count("<th>lot L") == ROWS and "<th>lot L0</th>" in page
    assert page.count("<b>ALERT</b>") == 2
