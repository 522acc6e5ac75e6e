"""The report's charts without a browser: what is drawn from how many dies, unique tick
labels, unique element ids (the page's charts measured in Chromium: tests/browser)."""

from __future__ import annotations

import re

import pytest

from ledger import html_charts
from ledger.html_report import render
from ledger.html_sections import ground_truth
from ledger.report import build_report
from tests.unit.test_report import ARMS, MEMBERS, _scenario


@pytest.mark.parametrize("span_s", [0.0, 0.002, 1.0, 90.0, 6 * 3600.0, 40 * 86400.0])
def test_time_ticks_are_labelled_each_differently(span_s: float) -> None:
    ticks, labels = html_charts.time_ticks(1_795_000_000.0, 1_795_000_000.0 + span_s)
    assert len(ticks) >= 2 and len(set(labels)) == len(labels), labels


def test_too_few_labelled_dies_draw_no_share_and_say_so() -> None:
    report = build_report(_scenario(1, 1, 0, 0), {"ensemble": 1}, MEMBERS, ARMS)
    for chart in (html_charts.timeline, html_charts.shadow, html_charts.agreement):
        out = chart(report)
        assert "<svg" not in out and str(html_charts.MIN_LABELLED) in out, out


def test_enough_dies_draw_every_chart_with_ids_of_its_own() -> None:
    report = build_report(_scenario(900, 846, 100, 88), {"ensemble": 900}, MEMBERS, ARMS)
    page = render(report)
    for chart in ("timeline", "confusion", "shadow", "agreement"):
        assert re.search(rf'<figure id="chart-{chart}">.*?<svg', page, re.S), chart
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "two elements share an id"
    assert {"timeline-legend", "shadow-legend", "agreement-bar-0"} <= set(ids)
    assert "<img" not in page.split("Wafer yields")[0]  # charts are SVG, not pictures


def test_the_ground_truth_section_names_senders_and_replacements() -> None:
    history = {
        "by_sender": {"line-tester": {"outcomes": 40, "replaced": 1}},
        "replaced": 1,
        "latest_replacements": [{"request_id": "req-1", "old": "pass", "new": "fail",
                                 "sent_by": "line-tester", "received_at": 1_795_000_000.0}],
    }  # fmt: skip
    out = ground_truth(history)
    assert "<th>line-tester</th><td>40</td><td>1</td>" in out and "req-1" in out
    assert "No outcomes" in ground_truth({"by_sender": {}, "replaced": 0})
    assert ground_truth(None) == ""
