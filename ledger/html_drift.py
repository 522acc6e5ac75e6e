"""The HTML report's drift section: the drift table and the most drifted feature's histogram.

Renders the report's ``drift`` (``ledger.report_drift.section``): one row for the window
as a whole and one per lot (worst first, at most ``ROWS``), each with its dies, wafers,
share of dies out of the training range, largest PSI, the features that moved most and
whether it drifted or passes the alert's threshold; then the histogram of the most
drifted feature (of the worst drifted lot, else of the window) against the training
reference, bin by bin, as an embedded PNG.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from typing import Any

#: Most lots listed in the table (the JSON has them all).
ROWS = 30


def _share(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _smallest_p(group: Mapping[str, Any]) -> str:
    tested = [f for f in group["features"] if f.get("p_holm") is not None]
    if not tested:
        return "not tested"
    best = min(tested, key=lambda f: f["p_holm"])
    below = "<" if best.get("p_below") else ""
    return f"{below}{best['p_holm']:.3g} ({html.escape(best['feature'])})"


def _verdict(group: Mapping[str, Any]) -> str:
    if group.get("alert"):
        return "<b>ALERT</b>"
    return "drifted" if group["drifted"] else "no"


def _row(name: str, group: Mapping[str, Any]) -> str:
    moved = ", ".join(group["moved_most"]) or "-"
    return (
        f"<tr><th>{name}</th><td>{group['dies']}</td><td>{group['wafers']}</td>"
        f"<td>{_share(group['out_of_range_share'])}</td><td>{group['max_psi']:.3f}</td>"
        f"<td>{html.escape(moved)}</td><td>{_smallest_p(group)}</td><td>{_verdict(group)}</td>"
        "</tr>"
    )


def _bin_labels(h: Mapping[str, Any]) -> list[str]:
    edges = h["edges"]
    inner = [f"{edges[i]:.4g} to {edges[i + 1]:.4g}" for i in range(len(edges) - 1)]
    return [f"< {edges[0]:.4g}", *inner, f"> {edges[-1]:.4g}"]


def histogram_plot(h: Mapping[str, Any], title: str) -> str:
    """Served shares per reference bin beside the training and held-out shares (PNG, base64)."""
    import matplotlib.pyplot as plt

    labels = _bin_labels(h)
    xs = range(len(labels))
    fig, ax = plt.subplots(figsize=(9, 3.4))
    bars = [("training", h["train_share"], "#7f7f7f"), ("held out", h["held_out_share"], "#bdbdbd"),
            ("served", h["served_share"], "#d62728")]  # fmt: skip
    width = 0.8 / len(bars)
    for i, (name, shares, colour) in enumerate(bars):
        if shares is not None:
            offsets = [x + (i - 1) * width for x in xs]
            ax.bar(offsets, [100 * s for s in shares], width, label=name, color=colour)
    ax.set_xticks(list(xs), labels, rotation=35, ha="right", fontsize=7)
    ax.set_ylabel("% of dies")
    ax.set_title(title)
    ax.legend(loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def section(drift: Mapping[str, Any] | None) -> str:
    """The drift part of the page; a sentence when there is no reference or no prediction."""
    if not drift:
        return ""
    head = "<h2>Drift: is the window's input like the training data?</h2>"
    if not drift["available"]:
        return f"{head}<p>No drift figures: {html.escape(drift['note'])}.</p>"
    whole = drift["overall"]
    if whole is None:
        return f"{head}<p>No prediction in the window.</p>"
    t = drift["thresholds"]
    lots = drift["lots"]
    rows = _row("whole window", whole) + "".join(
        _row(f"lot {html.escape(str(lot['lot_id']))}", lot) for lot in lots[:ROWS]
    )
    total = drift["lots_total"]
    more = (
        f"<p>The {ROWS} worst of the window's {total} lots listed; every lot: GET "
        "/dashboard/drift/lots (the report's JSON lists the "
        f"{len(lots)} worst).</p>"
        if total > ROWS
        else ""
    )
    worst = drift["worst_lot"]
    if worst is not None:
        h, whose = worst["histogram"], f"lot {worst['lot_id']}"
    else:
        h, whose = whole["histogram"], "the whole window"
    title = f"{h['feature']}, {whose}: served against the training reference"
    png = histogram_plot(h, title)
    return (
        f"{head}<p>{drift['lots_drifted']} of {total} lots drifted (a feature's "
        f"Holm-adjusted p-value under {t['alpha']:g}), {drift['lots_alert']} past the alert's "
        f"threshold (drifted with PSI over {t['psi_significant']:g}). PSI under "
        f"{t['psi_moderate']:g}: no shift; {t['psi_moderate']:g} to {t['psi_significant']:g}: "
        "moderate; above: significant. Every logged prediction of the window counts, "
        "whatever its arm.</p>"
        "<table><tr><th>group</th><th>dies</th><th>wafers</th><th>out of training range</th>"
        "<th>largest PSI</th><th>moved most (drifted, largest PSI first)</th>"
        f"<th>smallest Holm-adjusted p</th><th>drifted</th></tr>{rows}</table>{more}"
        f'<img alt="drift histogram {html.escape(h["feature"])}" '
        f'src="data:image/png;base64,{png}">'
    )
