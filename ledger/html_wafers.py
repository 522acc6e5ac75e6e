"""The HTML report's wafer maps: each die's decision against its ground truth, and its arm.

One inline SVG per wafer, a square per die at its (x, y) (y grows downward, as on the
prober's map). The fill says what the die's newest prediction was against its newest
ground truth: pass or fail confirmed, an **escape** (predicted pass, failed final test:
black) or an **overkill** (predicted fail, passed: blue), or not yet fed back (pale).
A die decided by an arm other than the ensemble is outlined in that arm's colour. Every
die has a tooltip (its SVG ``title``): position, what it is, the arm (and the model that
arm serves) and P(pass). A legend above the maps says all of this, and a line says how
many wafers the window had and which are drawn.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

#: Die classes: key -> (fill, words in the legend, words in the tooltips).
CLASSES = {
    "pass": ("#66bd63", "pass, confirmed (predicted pass, passed)", "pass, confirmed"),
    "fail": ("#d73027", "fail, confirmed (predicted fail, failed)", "fail, confirmed"),
    "escape": ("#111111", "escape (predicted pass, failed final test)",
               "escape: called pass, failed"),
    "overkill": ("#2c7bb6", "overkill (predicted fail, passed final test)",
                 "overkill: called fail, passed"),
    "pass_open": ("#d9f0d3", "predicted pass, no ground truth yet", "pass, no truth yet"),
    "fail_open": ("#fcc5b0", "predicted fail, no ground truth yet", "fail, no truth yet"),
}  # fmt: skip
#: Outline colours of the arms other than the ensemble, in order of appearance.
OUTLINES = ("#e7298a", "#ff7f00", "#00a6b8", "#8c564b", "#7570b3", "#a6761d")
ENSEMBLE = "ensemble"
#: The page's CSS for the maps and their legend.
STYLE = (
    "figure { display: inline-block; margin: 0.5em 1em 1em 0; vertical-align: top; }\n"
    "figcaption { max-width: 420px; font-size: 0.9em; }\n"
    "svg.wafer { display: block; background: #fafafa; }\n"
    "ul.legend { list-style: none; padding: 0; columns: 2; }\n"
    "ul.legend svg { vertical-align: middle; }"
)
#: Largest drawn width of a map, in CSS pixels; a die is 3 to 12 pixels wide.
WIDTH_PX = 420


def die_class(prediction: str, actual: str | None) -> str:
    """A die's class (a ``CLASSES`` key) from its newest decision and ground truth."""
    if actual is None:
        return f"{prediction}_open"
    if prediction == actual:
        return prediction
    return "escape" if prediction == "pass" else "overkill"


def _arm_colours(maps: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, str]:
    arms = sorted({d["arm"] for dies in maps.values() for d in dies if d["arm"] != ENSEMBLE})
    return {arm: OUTLINES[i % len(OUTLINES)] for i, arm in enumerate(arms)}


def _decided_by(arm: str, models: Mapping[str, str]) -> str:
    model = models.get(arm)
    return f"{arm} ({model})" if model and model != arm else arm


def wafer_svg(
    wafer_id: str,
    dies: Sequence[Mapping[str, Any]],
    outlines: Mapping[str, str],
    models: Mapping[str, str],
) -> str:
    """One wafer's map as inline SVG (dies without a position are left out)."""
    placed = [d for d in dies if d["x"] is not None and d["y"] is not None]
    x0, y0 = min(d["x"] for d in placed), min(d["y"] for d in placed)
    cols = max(d["x"] for d in placed) - x0 + 1
    rows = max(d["y"] for d in placed) - y0 + 1
    px = max(3.0, min(12.0, WIDTH_PX / max(cols, rows)))
    # Dies grouped by fill and outline (one <g> each), a square path and a tooltip per die:
    # about 110 bytes a die, 1.1 MB for a wafer of 10,000.
    groups: dict[tuple[str, str | None], list[str]] = {}
    for d in placed:
        kind = die_class(d["prediction"], d["actual"])
        arm = d["arm"]
        tip = html.escape(
            f"({d['x']}, {d['y']}) {CLASSES[kind][2]}; {_decided_by(arm, models)}; "
            f"P(pass) {d['probability']:.2f}"
        )
        square = f'<path d="M{d["x"] - x0}.06 {d["y"] - y0}.06h.88v.88h-.88z">'
        groups.setdefault((CLASSES[kind][0], outlines.get(arm)), []).append(
            f"{square}<title>{tip}</title></path>"
        )
    body = "".join(
        f'<g fill="{fill}"'
        + (f' stroke="{stroke}" stroke-width=".24"' if stroke else "")
        + ">" + "".join(paths) + "</g>"
        for (fill, stroke), paths in groups.items()
    )  # fmt: skip
    name = html.escape(str(wafer_id))
    return (
        f'<svg class="wafer" role="img" aria-label="wafer map {name}" viewBox="0 0 {cols} '
        f'{rows}" width="{cols * px:.0f}" height="{rows * px:.0f}">{body}</svg>'
    )


def _caption(wafer: Mapping[str, Any] | None, wafer_id: str, dies: Sequence[Any]) -> str:
    kinds = [die_class(d["prediction"], d["actual"]) for d in dies]
    not_ensemble = sum(d["arm"] != ENSEMBLE for d in dies)
    unplaced = sum(d["x"] is None or d["y"] is None for d in dies)
    lot = f" (lot {html.escape(str(wafer['lot_id']))})" if wafer and wafer.get("lot_id") else ""
    labelled = sum(not k.endswith("_open") for k in kinds)
    return (
        f"<b>{html.escape(str(wafer_id))}</b>{lot}: {len(dies)} dies, {labelled} labelled: "
        f"{kinds.count('escape')} escapes, {kinds.count('overkill')} overkill; "
        f"{not_ensemble} decided by an arm other than the ensemble"
        + (f"; {unplaced} without a position, not drawn" if unplaced else "")
        + "."
    )


def _swatch(fill: str, stroke: str | None = None) -> str:
    edge = f' stroke="{stroke}" stroke-width=".24"' if stroke else ""
    return (
        '<svg width="14" height="14" viewBox="0 0 1 1"><rect x=".06" y=".06" width=".88" '
        f'height=".88" fill="{fill}"{edge}/></svg>'
    )


def legend(outlines: Mapping[str, str], models: Mapping[str, str]) -> str:
    """What the fills and outlines mean (only the arms drawn are listed)."""
    items = [
        f"<li>{_swatch(fill)} {html.escape(words)}</li>" for fill, words, _ in CLASSES.values()
    ]
    items += [
        f"<li>{_swatch('#ffffff', colour)} outlined: decided by the "
        f"{html.escape(_decided_by(arm, models))} arm</li>"
        for arm, colour in outlines.items()
    ]
    items.append("<li>no outline: decided by the ensemble</li>")
    return '<ul class="legend">' + "".join(items) + "</ul>"


def section(
    maps: Mapping[str, Sequence[Mapping[str, Any]]],
    wafers: Sequence[Mapping[str, Any]],
    total: int | None,
    rule: str | None,
    models: Mapping[str, str],
) -> str:
    """The maps part of the report: how many wafers are drawn of how many and why, the
    legend, and a captioned SVG map per wafer with positioned dies.

    ``maps``: wafer id -> its dies (``ledger.dashboard.die_map`` entries); ``wafers``: the
    same wafers' yields (``ledger.dashboard.groups`` items, for their lots); ``total``:
    the window's wafers; ``rule``: how the drawn ones were chosen (``ledger.wafer_maps``);
    ``models``: arm -> the model it serves (the report's ``arms``). Empty without maps.
    """
    drawable = {w: d for w, d in maps.items() if any(x["x"] is not None for x in d)}
    if not drawable:
        return ""
    by_id = {w["wafer_id"]: w for w in wafers}
    outlines = _arm_colours(drawable)
    total = len(maps) if total is None else total
    why = f": {html.escape(rule)}" if rule else ""
    count = f"{len(drawable)} of the window's {total} wafers drawn{why}"
    if len(drawable) < len(maps):
        count += f" ({len(maps) - len(drawable)} more chosen have no die positions)"
    figures = "".join(
        f"<figure>{wafer_svg(w, dies, outlines, models)}<figcaption>"
        f"{_caption(by_id.get(w), w, dies)}</figcaption></figure>"
        for w, dies in drawable.items()
    )
    return (
        "<h2>Wafer maps: decisions against ground truth</h2>"
        f"<p>{count}. Every wafer's map: GET /dashboard/wafers/{{wafer_id}}/map. Hover over a "
        "die for its position, what it is, the arm that decided it and P(pass).</p>"
        + legend(outlines, models)
        + figures
    )
