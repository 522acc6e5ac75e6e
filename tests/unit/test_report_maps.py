"""The HTML report's wafer maps: escapes and overkill marked, the deciding arm, which wafers."""

from __future__ import annotations

import re
from typing import Any
from xml.etree import ElementTree

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


def _drawn(page: str) -> dict[tuple[int, int], dict[str, str | None]]:
    """(x, y) on the map -> its die's fill, outline and tooltip, read from the SVG."""
    svg = re.search(r'<svg class="wafer".*?</svg>', page, re.S)
    assert svg is not None
    out: dict[tuple[int, int], dict[str, str | None]] = {}
    for group in ElementTree.fromstring(svg.group(0)).iter("g"):
        for die in group.iter("path"):
            x, y = re.match(r"M(\d+)\.06 (\d+)\.06", die.get("d", "")).groups()  # type: ignore[union-attr]
            title = die.find("title")
            out[(int(x), int(y))] = {"fill": group.get("fill"), "stroke": group.get("stroke"),
                                     "title": None if title is None else title.text}  # fmt: skip
    return out


def test_each_die_says_what_it_is_and_which_arm_decided_it() -> None:
    page = html_wafers.section({"W1": DIES}, [{"wafer_id": "W1", "lot_id": "L7"}], 9,
                               "the 1 with the most labelled dies", MODELS)  # fmt: skip
    drawn = _drawn(page)
    assert len(drawn) == 6  # the die without a position is counted, not drawn
    assert drawn[(2, 0)]["title"] == "(2, 0) escape: called pass, failed; ensemble; P(pass) 0.90"
    assert drawn[(0, 1)]["title"] == (
        "(0, 1) overkill: called fail, passed; challenger (xgboost); P(pass) 0.10"
    )
    assert drawn[(1, 1)]["title"] == "(1, 1) pass, no truth yet; ensemble; P(pass) 0.90"
    # Escapes and overkill have fills of their own, named in the legend; only the
    # challenger's die is outlined, in the colour the legend gives its arm.
    fills = {xy: die["fill"] for xy, die in drawn.items()}
    assert fills[(2, 0)] == html_wafers.CLASSES["escape"][0]
    assert fills[(0, 1)] == html_wafers.CLASSES["overkill"][0]
    assert len(set(fills.values())) == 6
    outlined = {xy: die["stroke"] for xy, die in drawn.items() if die["stroke"]}
    assert outlined == {(0, 1): html_wafers.OUTLINES[0]}
    assert (
        f'stroke="{html_wafers.OUTLINES[0]}" stroke-width=".24"/></svg> outlined: decided by '
        "the challenger (xgboost) arm" in page
    )
    for _, words, _ in html_wafers.CLASSES.values():
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
