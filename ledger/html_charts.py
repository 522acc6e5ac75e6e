"""The HTML report's charts, drawn as inline SVG a reader (and a browser test) can inspect.

Each chart is a ``<figure>`` with its title and what its axes show in words, then the
SVG matplotlib draws with text kept as text. Element ids carry the chart's name
(``timeline-legend``, ``shadow-mark-ensemble-0``, ``agreement-value-1``, ...), so the
page's charts never share an id and ``tests/browser`` can measure them.

- No share is drawn from fewer than ``MIN_LABELLED`` labelled dies (one die is 0% or 100%
  with a 95% interval over most of the axis): the chart says so instead. Accuracy over time
  shows every period's labelled count below it; its x ticks are labelled uniquely.
- Each member alone against the ensemble: dots with their 95% intervals, the values
  printed, the legend outside the plot; its axis is zoomed, which dots allow (bars do not).
- Member agreement: the share of devices each pair voted differently, as bars from 0 with
  the values printed (97% agreement on a 0-100 axis showed no difference at all).
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

#: Fewest labelled dies a chart draws a share of: a period over time, a member's paired
#: devices, the devices agreement is counted on (one die is 0% or 100%, with a 95%
#: interval spanning most of the axis).
MIN_LABELLED = 30
#: Arm colours in the order the report lists arms (the ensemble first); they repeat past ten.
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip
MEMBER_GREY = "#7f7f7f"
#: Tick label formats, coarsest first: the first that labels every tick differently wins.
TIME_FORMATS = ("%Y-%m-%d", "%m-%d %H:%M", "%H:%M:%S", "%H:%M:%S.%f")
_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(url\(#|href="#)([^")]+)')


def colours(arms: Sequence[str]) -> dict[str, str]:
    return {arm: PALETTE[i % len(PALETTE)] for i, arm in enumerate(arms)}


def svg(fig: Any, name: str) -> str:
    """``fig`` as an inline ``<svg>`` element, every id (and reference to one) prefixed
    ``name-``; closes the figure."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    text = _ID.sub(lambda m: f'id="{name}-{m.group(1)}"', text)
    return _REF.sub(lambda m: f"{m.group(1)}{name}-{m.group(2)}", text)


def figure(name: str, title: str, note: str, body: str) -> str:
    return (
        f'<figure id="chart-{name}"><figcaption><b>{html.escape(title)}</b> '
        f"{html.escape(note)}</figcaption>{body}</figure>"
    )


def time_ticks(lo: float, hi: float, most: int = 6) -> tuple[list[float], list[str]]:
    """Up to ``most`` tick positions over [lo, hi] (unix s) and labels, no two alike."""
    span = max(hi - lo, 1e-3)
    for count in range(most, 1, -1):
        ticks = [lo + span * i / (count - 1) for i in range(count)]
        for fmt in TIME_FORMATS:
            labels = [datetime.fromtimestamp(t, UTC).strftime(fmt) for t in ticks]
            if fmt.endswith("%f"):
                labels = [label[:-3] for label in labels]  # milliseconds
            if len(set(labels)) == count:
                return ticks, labels
    return [lo], [datetime.fromtimestamp(lo, UTC).strftime(TIME_FORMATS[-1])[:-3]]


def timeline(report: Mapping[str, Any]) -> str:
    """Accuracy per arm over time (periods of ``MIN_LABELLED`` labelled dies or more, with
    their 95% intervals) above the labelled dies per period, or a sentence saying why not."""
    import matplotlib.pyplot as plt

    arms = report["arms"]
    drawn = {a: [p for p in d["timeline"] if p["n"] >= MIN_LABELLED] for a, d in arms.items()}
    counted = sum(p["n"] for d in arms.values() for p in d["timeline"])
    title = "Accuracy per arm over time."
    if not any(drawn.values()):
        return figure("timeline", title, f"Drawn for periods of at least {MIN_LABELLED} labelled "
                      f"dies; no period has that many yet ({counted} labelled in the window).",
                      "")  # fmt: skip
    palette = colours(list(arms))
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 4.4), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]}
    )
    lows, highs, starts, ends = [], [], [], []
    for arm, data in arms.items():
        for p in data["timeline"]:
            starts.append(p["start"])
            ends.append(p["end"])
            bar = bottom.bar(p["start"], p["n"], p["end"] - p["start"], align="edge",
                             color=palette[arm], alpha=0.45, edgecolor=palette[arm])  # fmt: skip
            bar.patches[0].set_gid(f"count-{arm}-{len(starts)}")
        pts = drawn[arm]
        if not pts:
            continue
        x = [(p["start"] + p["end"]) / 2 for p in pts]
        lo, hi = [100 * p["ci95"][0] for p in pts], [100 * p["ci95"][1] for p in pts]
        lows += lo
        highs += hi
        band = top.fill_between(x, lo, hi, color=palette[arm], alpha=0.15, linewidth=0)
        band.set_gid(f"band-{arm}")
        (line,) = top.plot(x, [100 * p["accuracy"] for p in pts], marker="o", markersize=4,
                           color=palette[arm], label=f"{arm} ({data['model']})")  # fmt: skip
        line.set_gid(f"line-{arm}")
    top.patch.set_gid("plot")
    top.yaxis.set_gid("yaxis")
    bottom.patch.set_gid("counts")
    floor = max(0.0, min(lows) - 1)
    top.set_ylim(floor, min(100.0, max(max(highs) + 1, floor + 5)))
    top.set_ylabel("accuracy, %")
    top.grid(alpha=0.3)
    legend = top.legend(loc="lower left", bbox_to_anchor=(0, 1.02), ncol=4, borderaxespad=0,
                        frameon=False, fontsize=9)  # fmt: skip
    legend.set_gid("legend")
    bottom.axhline(MIN_LABELLED, color="#555", linestyle="--", linewidth=0.8)
    bottom.set_ylabel("labelled")
    ticks, labels = time_ticks(min(starts), max(ends))
    bottom.set_xticks(ticks, labels)
    for i, label in enumerate(bottom.get_xticklabels()):
        label.set_gid(f"xlabel-{i}")
    bottom.set_xlabel(f"time, UTC (from {datetime.fromtimestamp(min(starts), UTC):%Y-%m-%d})")
    fig.autofmt_xdate(rotation=20)
    note = (
        f"Top: accuracy with its 95% interval (shaded), for periods of at least {MIN_LABELLED} "
        f"labelled dies; the axis runs from {floor:.0f}%. Bottom: labelled dies per period "
        f"(dashed: {MIN_LABELLED}); shorter periods are counted but not drawn above."
    )
    return figure("timeline", title, note, svg(fig, "timeline"))


def confusion(report: Mapping[str, Any]) -> str:
    """One confusion matrix per arm (labelled devices)."""
    import matplotlib.pyplot as plt

    arms = report["arms"]
    fig, axes = plt.subplots(1, len(arms), figsize=(3.5 * len(arms), 3.2), squeeze=False)
    for ax, (arm, data) in zip(axes[0], arms.items(), strict=True):
        c = data["confusion"]
        grid = [[c["actual_pass"]["pass"], c["actual_pass"]["fail"]],
                [c["actual_fail"]["pass"], c["actual_fail"]["fail"]]]  # fmt: skip
        ax.imshow(grid, cmap="Blues")
        for i in range(2):
            for j in range(2):
                ax.text(j, i, str(grid[i][j]), ha="center", va="center", fontsize=12,
                        bbox={"facecolor": "white", "alpha": 0.7, "linewidth": 0})  # fmt: skip
        ax.set_xticks([0, 1], ["predicted pass", "predicted fail"])
        ax.set_yticks([0, 1], ["actual pass", "actual fail"])
        ax.set_title(f"{arm} ({data['model']})")
    fig.tight_layout()
    return figure("confusion", "Confusion matrices.", "Labelled devices per arm: what was "
                  "predicted against what final test said.", svg(fig, "confusion"))  # fmt: skip


def shadow(report: Mapping[str, Any]) -> str:
    """Each member alone against the ensemble on the same devices: accuracy dots with their
    95% intervals, values printed; members without paired devices are named, not drawn."""
    import matplotlib.pyplot as plt

    rows = report["shadow"]
    names = [m for m, s in rows.items() if s["paired"] >= MIN_LABELLED
             and s["member_accuracy"]["value"] is not None]  # fmt: skip
    title = "Shadow: each member alone against the ensemble, same labelled devices."
    missing = [f"{m} ({rows[m]['paired']})" for m in rows if m not in names]
    left_out = (f" Not drawn, fewer than {MIN_LABELLED} paired devices: {', '.join(missing)}."
                if missing else "")  # fmt: skip
    if not names:
        return figure("shadow", title, left_out.strip(), "")
    fig, ax = plt.subplots(figsize=(8, 0.7 + 0.55 * len(names)))
    lows: list[float] = []
    highs: list[float] = []
    series = (("ensemble", "ensemble_accuracy", PALETTE[0], -0.14),
              ("member alone", "member_accuracy", MEMBER_GREY, 0.14))  # fmt: skip
    for label, key, colour, dy in series:
        for i, m in enumerate(names):
            p = rows[m][key]
            v, (lo, hi) = 100 * p["value"], (100 * p["ci95"][0], 100 * p["ci95"][1])
            lows.append(lo)
            highs.append(hi)
            bars = ax.errorbar(
                v, i + dy, xerr=[[v - lo], [hi - v]], fmt="o", color=colour, capsize=3,
                markersize=6, label=label if i == 0 else None,
            )  # fmt: skip
            bars.lines[0].set_gid(f"mark-{key.split('_')[0]}-{i}")
            ax.annotate(f"{v:.1f}%", (hi, i + dy), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=8, gid=f"value-{key.split('_')[0]}-{i}")  # fmt: skip
    floor = max(0.0, min(lows) - 1.0)
    ceiling = min(100.0, max(highs) + 0.15 * (max(highs) - floor) + 1.0)
    ax.set_xlim(floor, max(ceiling, floor + 2))
    _rows(ax, list(names), f"accuracy, % (95% interval); axis from {floor:.0f}%")
    legend = ax.legend(loc="lower left", bbox_to_anchor=(0, 1.02), ncol=2, borderaxespad=0,
                       frameon=False, fontsize=9)  # fmt: skip
    legend.set_gid("legend")
    note = (
        f"Dots, so the axis starts at {floor:.0f}%, not 0. Whether a member differs from the "
        "ensemble is McNemar's test in the table above (paired devices), not whether these "
        "intervals overlap." + left_out
    )
    return figure("shadow", title, note, svg(fig, "shadow"))


def _rows(ax: Any, labels: list[str], xlabel: str) -> None:
    """A chart of one row per label, top to bottom, values along x: its labels, its x
    label, a light x grid, and the ids the browser tests find its plot and axis by."""
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    ax.patch.set_gid("plot")
    ax.xaxis.set_gid("xaxis")


def agreement(report: Mapping[str, Any]) -> str:
    """Per pair of members, the share of devices they voted differently: bars from 0."""
    import matplotlib.pyplot as plt

    agree = report["agreement"]
    pairs = {p: v for p, v in agree["pairwise"].items() if v is not None}
    share, devices = agree.get("all_agree"), agree["devices"]
    every = "" if share is None else f" All members voted alike on {100 * share:.1f}% of them."
    title = "Member agreement: devices each pair of members voted differently."
    if not pairs or devices < MIN_LABELLED:
        return figure("agreement", title, f"Drawn from {MIN_LABELLED} labelled devices with "
                      f"every member's vote; {devices} so far.", "")  # fmt: skip
    differ = [100 * (1 - v) for v in pairs.values()]
    top = max(1.0, 1.3 * max(differ))
    fig, ax = plt.subplots(figsize=(8, 0.7 + 0.5 * len(pairs)))
    bars = ax.barh(range(len(pairs)), differ, 0.6, color="#2ca02c")
    for i, (patch, d, v) in enumerate(zip(bars.patches, differ, pairs.values(), strict=True)):
        patch.set_gid(f"bar-{i}")
        ax.annotate(f"{d:.1f}% ({100 * v:.1f}% alike)", (d, i), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=8,
                    gid=f"value-{i}")  # fmt: skip
    ax.set_xlim(0, top)
    _rows(ax, list(pairs), f"% of devices voting differently (axis 0 to {top:.1f}%)")
    note = (
        f"{devices} labelled devices with every member's vote. Bars start at 0; the axis ends "
        "near the largest share so small differences show (agreement itself, 100% minus the "
        "bar, is printed beside each)." + every
    )
    return figure("agreement", title, note, svg(fig, "agreement"))


def charts(report: Mapping[str, Any]) -> str:
    """Every chart of the report, in reading order."""
    import matplotlib

    matplotlib.use("Agg")
    return timeline(report) + confusion(report) + shadow(report) + agreement(report)
