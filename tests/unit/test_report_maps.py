"""The HTML report's wafer maps: escapes and overkill marked, the deciding arm, which wafers."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from ledger import html_wafers, wafer_maps
from ledger.tables import outcomes, predictions


def _die(x: int, y: int, prediction: str, actual: str | None, arm: str = "ensemble") -> dict:
    return {"x": x, "y": y, "prediction": prediction, "actual": actual, "arm": arm,
            "probability": 0.9 if prediction == "pass" else 0.1}  # fmt: skip


DIES = [
    _die(0, 0, "pass", "pass"),
    _die(1, 0, "fail", "fail"),
    _die(2, 0, "pass", "fail"),  # escape
    _die(0, 1, "fail", "pass", arm="challenger"),  # overkill, by the challenger
    _die(1, 1, "pass", None),
    _die(2, 1, "fail", None),
    _die(None, None, "pass", None),  # type: ignore[arg-type]
]
MODELS = {"ensemble": "ensemble", "challenger": "xgboost"}


def _titles(page: str) -> dict[str, str]:
    """(x, y) -> its die's tooltip."""
    found = re.findall(r"<title>\((\d+, \d+)\) ([^<]*)</title>", page)
    return dict(found)


def test_each_die_says_what_it_is_and_which_arm_decided_it() -> None:
    page = html_wafers.section({"W1": DIES}, [{"wafer_id": "W1", "lot_id": "L7"}], 9,
                               "the 1 with the most labelled dies", MODELS)  # fmt: skip
    tips = _titles(page)
    assert len(tips) == 6  # the die without a position is counted, not drawn
    assert tips["2, 0"].startswith("escape (predicted pass, failed final test); decided by "
                                   "ensemble, P(pass) 0.900")  # fmt: skip
    assert tips["0, 1"].startswith("overkill (predicted fail, passed final test); decided "
                                   "by challenger (xgboost)")  # fmt: skip
    assert tips["1, 1"].startswith("predicted pass, no ground truth yet")
    # Escapes and overkill have fills of their own, named in the legend; only the
    # challenger's die is outlined, in the colour the legend gives its arm.
    drawn = re.findall(r'<rect x="(\d+)\.06" y="(\d+)\.06"[^>]*fill="(#\w+)"', page)
    fills = {(x, y): fill for x, y, fill in drawn}
    escape, overkill = html_wafers.CLASSES["escape"][0], html_wafers.CLASSES["overkill"][0]
    assert fills[("2", "0")] == escape and fills[("0", "1")] == overkill
    assert len(set(fills.values())) == 6
    outlined = re.findall(r'<rect x="(\d+)\.06" y="(\d+)\.06"[^>]*stroke="(#\w+)"', page)
    assert outlined == [("0", "1", html_wafers.OUTLINES[0])]
    assert (
        f'stroke="{html_wafers.OUTLINES[0]}" stroke-width=".24"/></svg> outlined: decided by '
        "the challenger (xgboost) arm" in page
    )
    for _, words in html_wafers.CLASSES.values():
        assert words in page
    # How many wafers the window had, how many are drawn and why; the map's own counts.
    assert "1 of the window's 9 wafers drawn: the 1 with the most labelled dies." in page
    assert ("<b>W1</b> (lot L7): 7 dies, 4 labelled: 1 escapes, 1 overkill; 1 decided by an "
            "arm other than the ensemble; 1 without a position, not drawn.") in page  # fmt: skip


def test_wafers_without_positions_are_counted_not_drawn() -> None:
    unplaced = [_die(None, None, "pass", None)]  # type: ignore[arg-type]
    page = html_wafers.section({"W1": DIES, "W2": unplaced}, [], 2, None, MODELS)
    assert "1 of the window's 2 wafers drawn (1 more chosen have no die positions)" in page
    assert html_wafers.section({"W2": unplaced}, [], 1, None, MODELS) == ""


def _row(rid: str, wafer: str, ts: float, x: int) -> dict[str, Any]:
    return {
        "request_id": rid, "ts": ts, "arm": "ensemble", "features": "[]", "device_id": None,
        "wafer_id": wafer, "lot_id": "L1", "die_x": x, "die_y": 0, "prediction": "pass",
        "probability": 0.9, "cached": False, "degraded": False, "latency_ms": 1.0,
        "model_versions": "{}", "votes": "{}",
    }  # fmt: skip


def test_the_report_draws_the_wafers_with_the_most_labelled_dies(engine: sa.Engine) -> None:
    # W0 is the oldest wafer but has the most ground truth; W1..W3 none, W4 one die.
    rows, truth = [], []
    for w in range(5):
        for x in range(4):
            rows.append(_row(f"W{w}-{x}", f"W{w}", 100.0 * w + x, x))
    truth += [{"request_id": f"W0-{x}", "actual": "fail", "received_at": 900.0} for x in range(3)]
    truth.append({"request_id": "W4-0", "actual": "pass", "received_at": 900.0})
    with engine.begin() as conn:
        conn.execute(predictions.insert(), rows)
        conn.execute(outcomes.insert(), truth)
    chosen = wafer_maps.choose(engine, None, None, most=3)
    assert [w["wafer_id"] for w in chosen.wafers] == ["W0", "W4", "W3"]
    assert chosen.total == 5 and list(chosen.dies) == ["W0", "W4", "W3"]
    assert [d["actual"] for d in chosen.dies["W0"]] == ["fail", "fail", "fail", None]
    assert chosen.rule == "the 3 with the most labelled dies (the newest first among equals)"
