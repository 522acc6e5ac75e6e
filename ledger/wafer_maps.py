"""Which wafers the HTML report draws, and their dies (``yield-ensemble report``).

Escapes and overkill show only on dies with ground truth, so the report draws the
wafers of the window with the most labelled dies (the newest first among equals), at
most ``MAPS``, each with all its dies (``ledger.dashboard.all_dies``), and
says how many wafers the window had. Wafers are ranked among the newest
``ledger.dashboard.MAX_LIMIT`` of the window (one ``dashboard.groups`` page).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ledger import dashboard

#: Wafer maps on the HTML report.
MAPS = 6
#: How the drawn wafers were chosen, in words (the page says it).
RULE = "the {n} with the most labelled dies (the newest first among equals)"


@dataclass(frozen=True)
class ReportMaps:
    """The wafers to draw: ``wafers`` their yields (``dashboard.groups`` items) in drawing
    order, ``dies`` wafer id -> its dies, ``total`` the window's wafers, ``rule`` how
    they were chosen."""

    wafers: list[dict[str, Any]]
    dies: dict[str, list[dict[str, Any]]]
    total: int
    rule: str


def choose(
    engine: sa.Engine, since: float | None, until: float | None, most: int = MAPS
) -> ReportMaps:
    """The window's wafers with the most labelled dies, at most ``most``, with their dies."""
    page = dashboard.groups(engine, "wafer_id", since, until, None, dashboard.MAX_LIMIT, 0)
    # groups lists the newest first; a stable sort keeps that order among equals.
    ranked = sorted(page["wafers"], key=lambda w: -w["labelled"])[:most]
    dies = {w["wafer_id"]: dashboard.all_dies(engine, w["wafer_id"], since, until) or []
            for w in ranked}  # fmt: skip
    return ReportMaps(ranked, dies, int(page["total"]), RULE.format(n=len(ranked)))
