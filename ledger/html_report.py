"""The A/B report as one self-contained HTML page: the answer on top, charts as inline SVG."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ledger import html_charts, html_drift, html_sections, html_wafers
from ledger.dashboard import YIELD_DEFINITIONS


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _window(since: float | None, until: float | None) -> str:
    """The report's window in words (no "- to -" when a bound is open)."""
    start = f"from {_when(since)}" if since is not None else "every logged prediction"
    return f"Window: {start} " + (f"to {_when(until)}" if until is not None else "to now")


def _pct(p: Mapping[str, Any]) -> str:
    if p["value"] is None:
        return "-"
    lo, hi = p["ci95"]
    ci = f"<small>[{100 * lo:.1f}, {100 * hi:.1f}]</small>"
    return f"{100 * p['value']:.1f}% {ci} ({p['k']}/{p['n']})"


def _cost(c: Mapping[str, Any]) -> str:
    if c["value"] is None:
        return "-"
    lo, hi = c["ci95"]
    return f"{c['value']:.4f} <small>[{lo:.4f}, {hi:.4f}]</small>"


def _yield_table(wafers: Sequence[Mapping[str, Any]]) -> str:
    """The wafers' three yields, side by side, each said in words."""
    if not wafers:
        return ""

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    rows = "".join(
        f"<tr><th>{html.escape(str(w['wafer_id']))}</th><td>{w['dies']}</td>"
        f"<td>{pct(w['predicted_yield'])}</td><td>{pct(w.get('expected_yield'))}</td>"
        f"<td>{pct(w['actual_yield'])}</td><td>{w['labelled']}</td></tr>"
        for w in wafers
    )
    words = "".join(
        f"<li><b>{name.replace('_', ' ')}</b>: {html.escape(text)}</li>"
        for name, text in YIELD_DEFINITIONS.items()
    )
    return (
        "<h2>Wafer yields</h2><ul>" + words + "</ul><table><tr><th>wafer</th><th>dies</th>"
        "<th>predicted yield (pass decisions)</th><th>expected yield (mean P(pass))</th>"
        "<th>actual yield</th><th>labelled</th></tr>" + rows + "</table>"
    )


def _left_out(line: dict[str, Any]) -> str:
    """A note on an arm line judged on one candidate version of several in the window."""
    left = line.get("left_out") or []
    if not left:
        return ""
    n = sum(v["labelled"] for v in left)
    return (f"<br><small>one candidate version; {n} labelled rows of {len(left)} other "
            "version(s) left out (see Versions)</small>")  # fmt: skip


def render(
    report: Mapping[str, Any],
    title: str = "yield-ensemble A/B report",
    wafer_maps: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    wafer_yields: Sequence[Mapping[str, Any]] | None = None,
    wafers_total: int | None = None,
    wafers_rule: str | None = None,
) -> str:
    """A complete HTML document for ``report`` (the dict of ``ledger.report.build_report``).

    ``wafer_maps``: wafer id -> its dies (``ledger.dashboard.die_map``), drawn as maps of
    decisions against ground truth (``ledger.html_wafers``); ``wafers_total`` the window's
    wafers, ``wafers_rule`` how the drawn ones were chosen. ``wafer_yields``: wafers as
    ``ledger.dashboard.groups`` lists them, shown with their three yields, each named. The
    report's ``drift``, if any, is drawn by ``ledger.html_drift``.
    """
    import matplotlib

    matplotlib.use("Agg")
    w = report["window"]
    rows = "".join(
        f"<tr><th>{html.escape(arm)}{_left_out(d)}</th><td>{html.escape(d['model'])}</td>"
        f"<td>{d['served']}</td>"
        f"<td>{d['labelled']}</td><td>{_pct(d['accuracy'])}</td><td>{_pct(d['fail_recall'])}</td>"
        f"<td>{d['escapes']}</td><td>{_pct(d['overkill'])}</td><td>{_cost(d['cost'])}</td>"
        f"<td>{_pct(d['fail_precision'])}</td></tr>"
        for arm, d in report["arms"].items()
    )
    shadow_rows = "".join(
        f"<tr><th>{html.escape(m)}</th><td>{s['paired']}</td><td>{_pct(s['member_accuracy'])}</td>"
        f"<td>{s['escapes']}</td><td>{_pct(s['overkill'])}</td><td>{_cost(s['cost'])}</td>"
        f"<td>{_pct(s['ensemble_accuracy'])}</td><td>{s['only_ensemble_right']}</td>"
        f"<td>{s['only_member_right']}</td><td>{s['p_value']:.3g}</td></tr>"
        for m, s in report["shadow"].items()
    )
    combiner_rows = "".join(
        f"<tr><th>{html.escape(n)}{' (served)' if s['served'] else ''}</th>"
        f"<td>{s['threshold']:.3f}</td><td>{s['paired']}</td><td>{_pct(s['accuracy'])}</td>"
        f"<td>{s['escapes']}</td><td>{_pct(s['overkill'])}</td><td>{_cost(s['cost'])}</td>"
        f"<td>{s['only_combiner_right']}</td><td>{s['only_ensemble_right']}</td>"
        f"<td>{s['p_value']:.3g}</td></tr>"
        for n, s in report["shadow_combiners"].items()
    )
    version_rows = "".join(
        f"<tr><th>{html.escape(v.get('arm', 'ensemble'))}: "
        f"{html.escape(', '.join(sorted(set((v['model_versions'] or {}).values()))))}"
        f"{' (newest)' if v['newest'] else ''}</th><td>{_when(v['first_ts'])}</td>"
        f"<td>{_when(v['last_ts'])}</td><td>{_pct(v['accuracy'])}</td><td>"
        + (
            html.escape(v["newest_against_this"]["decision"])
            + " (newest minus this "
            + f"{100 * v['newest_against_this']['newest_minus_this']:+.2f} points)"
            if "newest_against_this" in v
            else "-"
        )
        + "</td></tr>"
        for v in report.get("versions", [])
    )
    candidate_section, c = "", report.get("candidate")
    if c:
        # Said once: the conclusion above carries it already (ledger.comparisons.conclusion).
        advice = c["summary"] if c["summary"] not in report["conclusion"] else ""
        candidate_section = (
            f"<h2>Candidate {html.escape(c['candidate'])} against champion "
            f"{html.escape(c['champion'])}</h2>"
            + (f'<p class="answer">{html.escape(advice)}</p>' if advice else "")
            + "<table><tr><th>version</th><th>labelled devices since "
            f"{_when(c['since'])}</th><th>accuracy</th></tr>"
            f"<tr><th>{html.escape(c['champion'])} (champion)</th>"
            f"<td>{c['champion_accuracy']['n']}</td><td>{_pct(c['champion_accuracy'])}</td></tr>"
            f"<tr><th>{html.escape(c['candidate'])} (candidate, {100 * c['share']:g}%)</th>"
            f"<td>{c['candidate_accuracy']['n']}</td><td>{_pct(c['candidate_accuracy'])}</td>"
            "</tr></table>"
        )
    costs = report["costs"]
    run = report.get("decision_run")
    rules = f"decision of training run {html.escape(run)}" if run else "unfitted rules at 0.5"
    cost_line = (
        f"Costs: an escape (failing die called pass) {costs['escape_cost']:g}, an overkill (good "
        f"die called fail) {costs['overkill_cost']:g}; {rules}."
    )
    diff_line = (
        " ".join(
            f"{html.escape(arm)} minus ensemble: {100 * d['arm_minus_ensemble']:+.2f} points, "
            f"95% CI [{100 * d['ci95'][0]:+.2f}, {100 * d['ci95'][1]:+.2f}], "
            f"p = {d['p_value']:.3g}, adjusted {d['p_adjusted']:.3g} "
            f"({html.escape(d['test'])}; correction {html.escape(d['correction'])}). "
            f"Read continuously: {html.escape(d['sequential']['decision'])} (always-valid 95% "
            f"CI of {html.escape(arm)} minus ensemble [{100 * d['sequential']['ci'][0]:+.2f}, "
            f"{100 * d['sequential']['ci'][1]:+.2f}])."
            for arm, d in report["comparisons"].items()
        )
        or "No difference can be computed yet."
    )
    size = report["sample_size"]
    size_line = (
        f"To detect a {100 * size['detect_difference']:.0f}-point difference (alpha "
        f"{size['alpha']}, power {size['power']}, baseline "
        f"{100 * size['baseline_accuracy']:.1f}%, {html.escape(size['baseline'])}): "
        + ", ".join(f"{n} labels on the {html.escape(a)} arm" for a, n in size["needed"].items())
        + "."
        if "needed" in size
        else html.escape(size.get("note", ""))
    )
    plots = html_charts.charts(report)
    arm_note = f", arm {html.escape(w['arm'])}" if w.get("arm") else ""
    srm = report.get("sample_ratio") or {}
    srm_line = (
        f"Sample ratio ({html.escape(srm['test'])}): p = {srm['p_value']:.3g}, "
        + ("<b>MISMATCH</b>" if srm["mismatch"] else "no mismatch")
        + f" at alpha {srm['alpha']:g}; assigned "
        + ", ".join(f"{html.escape(a)} {n}" for a, n in srm["assigned"].items())
        + "."
        if srm.get("p_value") is not None
        else ""
    )
    models = {arm: str(d["model"]) for arm, d in report["arms"].items()}
    maps_section = _yield_table(wafer_yields or []) + html_wafers.section(
        wafer_maps or {}, wafer_yields or [], wafers_total, wafers_rule, models
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }}
.answer {{ font-size: 1.3em; padding: 0.8em 1em; background: #eef4fb;
  border-left: 6px solid #1f77b4; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }}
th {{ background: #f4f4f4; }} img {{ display: block; margin: 1em 0; max-width: 100%; }}
figure {{ margin: 1.5em 0; }} figure svg {{ display: block; max-width: 100%; height: auto; }}
figcaption {{ margin-bottom: 0.4em; }}
{html_wafers.STYLE}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{_window(w.get("since"), w.get("until"))}{arm_note}.
{report["labelled"]} labelled predictions.</p>
<p class="answer">{html.escape(report["conclusion"])}</p>
<h2>Arms</h2>
<p>{cost_line}</p>
<table><tr><th>arm</th><th>model</th><th>served</th><th>labelled</th><th>accuracy [95% CI]</th>
<th>fail recall</th><th>escapes</th><th>overkill</th><th>cost per die</th><th>fail precision</th>
</tr>{rows}</table>
<p>{diff_line}</p><p>{size_line}</p><p>{srm_line}</p>
<h2>Shadow: each member alone, on the ensemble arm's devices</h2>
<table><tr><th>member</th><th>paired devices</th><th>member accuracy</th><th>escapes</th>
<th>overkill</th><th>cost per die</th><th>ensemble accuracy</th>
<th>only ensemble right</th><th>only member right</th><th>McNemar p</th></tr>{shadow_rows}</table>
<h2>Shadow: every combiner, on the same devices</h2>
<table><tr><th>combiner</th><th>threshold</th><th>paired devices</th><th>accuracy</th>
<th>escapes</th><th>overkill</th><th>cost per die</th><th>only it right</th>
<th>only served right</th><th>McNemar p</th></tr>{combiner_rows}</table>
{candidate_section}
{html_sections.ground_truth(report.get("ground_truth"))}
<h2>Model versions on the ensemble arm</h2>
<table><tr><th>models</th><th>first served</th><th>last served</th><th>accuracy</th>
<th>newest against these (always valid)</th></tr>{version_rows}</table>
{plots}
{html_drift.section(report.get("drift"))}
{maps_section}
</body></html>
"""
