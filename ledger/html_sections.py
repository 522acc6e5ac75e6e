"""Sections of the HTML report beside the arms' tables: who sent the ground truth."""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def ground_truth(history: Mapping[str, Any] | None) -> str:
    """The report's ``ground_truth`` (``PredictionLog.outcome_history``): outcomes per sender
    (an API key's id) and the latest replaced outcomes, old and new. Empty without one."""
    if not history:
        return ""
    senders = history.get("by_sender") or {}
    if not senders:
        return "<h2>Ground truth</h2><p>No outcomes were received in the window.</p>"
    rows = "".join(
        f"<tr><th>{html.escape(str(who))}</th><td>{s['outcomes']}</td><td>{s['replaced']}</td></tr>"
        for who, s in senders.items()
    )
    latest = history.get("latest_replacements") or []
    changes = "".join(
        f"<tr><th>{html.escape(str(r['request_id']))}</th><td>{html.escape(str(r['old']))}</td>"
        f"<td>{html.escape(str(r['new']))}</td><td>{html.escape(str(r['sent_by']))}</td>"
        f"<td>{datetime.fromtimestamp(r['received_at'], UTC):%Y-%m-%d %H:%M:%S} UTC</td></tr>"
        for r in latest
    )
    replaced = (
        f"<p>The latest {len(latest)} replaced outcomes:</p><table><tr><th>request</th>"
        f"<th>was</th><th>now</th><th>sent by</th><th>received</th></tr>{changes}</table>"
        if latest
        else "<p>No outcome was replaced.</p>"
    )
    return (
        "<h2>Ground truth</h2><p>Outcomes received in the window per sender (the API key's "
        f"id); {history.get('replaced', 0)} replaced an earlier outcome.</p>"
        "<table><tr><th>sent by</th><th>outcomes</th><th>replaced</th></tr>"
        f"{rows}</table>{replaced}"
    )
