"""The arms compared: each arm against the ensemble (Holm-corrected), the labels each
arm needs, and the report's conclusion in words."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ensemble.arms import ENSEMBLE, Arm
from ensemble.serving import CANDIDATE
from ledger import sequential
from ledger.stats import (
    chi_square_gof,
    newcombe_interval,
    sample_size_per_arm,
    two_proportion_pvalue,
)

#: The accuracy difference the sample-size advice is sized to detect.
DETECT_DIFFERENCE = 0.02
ALPHA = 0.05
POWER = 0.80
#: Accuracy assumed for sample-size advice before any labels arrive.
PRIOR_ACCURACY = 0.90
#: A sample-ratio mismatch is flagged below this p-value: strict, as the usual practice
#: for SRM checks is, since the split is a designed ratio and a real mismatch is gross.
SRM_ALPHA = 0.001


def sample_ratio(assigned: Mapping[str, int], arms: Sequence[Arm]) -> dict[str, Any]:
    """Sample-ratio mismatch: the devices each arm was ASSIGNED (not the arm that served
    them) against the planned shares, by Pearson's chi-square goodness of fit
    (``ledger.stats.chi_square_gof``, df = arms - 1), flagged when p < ``SRM_ALPHA``.

    A mismatch means the split itself is broken (or an arm lost traffic), so every
    comparison of the arms is suspect. Only arms with a planned share take part; devices
    assigned to an arm not planned now (a share changed in the window) are counted apart.
    """
    planned = {a.name: a.share for a in arms if a.share > 0}
    observed = {name: int(assigned.get(name, 0)) for name in planned}
    total = sum(observed.values())
    out: dict[str, Any] = {
        "assigned": observed,
        "unplanned": {a: int(n) for a, n in assigned.items() if a not in planned and n},
        "planned_share": planned,
        "alpha": SRM_ALPHA,
        "test": "chi-square goodness of fit (assigned devices against planned shares)",
        "p_value": None,
        "mismatch": False,
    }
    if len(planned) < 2 or not total:
        out["note"] = "one arm or no devices: nothing to test"
        return out
    scale = sum(planned.values())
    expected = [total * share / scale for share in planned.values()]
    stat, p_value = chi_square_gof(list(observed.values()), expected)
    out.update(
        expected={n: e for n, e in zip(planned, expected, strict=True)},
        observed_share={n: k / total for n, k in observed.items()},
        chi2=float(stat),
        p_value=float(p_value),
        mismatch=bool(p_value < SRM_ALPHA),
    )
    return out


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    ordered = sorted(p_values.items(), key=lambda kv: kv[1])
    m, running, out = len(ordered), 0.0, {}
    for i, (name, p) in enumerate(ordered):
        running = max(running, min(1.0, (m - i) * p))
        out[name] = running
    return out


def comparisons(stats: Mapping[str, Any]) -> dict[str, Any]:
    """Each other arm against the ensemble arm: difference, interval, test, corrected.

    Not the candidate arm: it is another version's ensemble, judged against the
    champion's in the report's ``candidate`` section, by version and since it was set.
    Compared here too, it would answer the same question twice over a different
    window, and widen the other arms' Holm correction.
    """
    e = stats[ENSEMBLE]["accuracy"]
    raw: dict[str, dict[str, Any]] = {}
    for name, arm in stats.items():
        c = arm["accuracy"]
        if name in (ENSEMBLE, CANDIDATE) or not e["n"] or not c["n"]:
            continue
        lo, hi = newcombe_interval(c["k"], c["n"], e["k"], e["n"])
        raw[name] = {
            # Every difference in the report is the challenger minus its baseline.
            "arm_minus_ensemble": c["value"] - e["value"],
            "ci95": [lo, hi],
            "p_value": two_proportion_pvalue(e["k"], e["n"], c["k"], c["n"]),
            "test": "two-proportion z-test (pooled); Newcombe hybrid score interval",
            # Valid however often the report is read: the arm as candidate, the ensemble
            # as baseline (``ledger.sequential``).
            "sequential": sequential.compare(e["k"], e["n"], c["k"], c["n"]).as_dict(
                "arm_minus_ensemble"
            ),
        }
    adjusted = holm({name: r["p_value"] for name, r in raw.items()})
    correction = "Holm" if len(raw) > 1 else "none (one comparison)"
    for name, r in raw.items():
        r.update(p_adjusted=adjusted[name], correction=correction)
        r["significant"] = adjusted[name] < ALPHA
    return raw


def sample_size(stats: Mapping[str, Any], arms: Sequence[Arm]) -> dict[str, Any]:
    """Labels per arm to detect a DETECT_DIFFERENCE accuracy gap at the served shares."""
    advice: dict[str, Any] = {
        "detect_difference": DETECT_DIFFERENCE,
        "alpha": ALPHA,
        "power": POWER,
    }
    share = {a.name: a.share for a in arms}
    others = [a.name for a in arms if a.name not in (ENSEMBLE, CANDIDATE) and a.share > 0]
    if not others or not 0 < share.get(ENSEMBLE, 0) < 1:
        advice["note"] = (
            "no arm but the candidate beside the ensemble: the candidate section says how "
            "many more labels it needs"
            if share.get(CANDIDATE, 0) > 0
            else "the ensemble takes all traffic: there is no second arm to compare"
        )
        return advice
    e = stats[ENSEMBLE]["accuracy"]
    base = e["value"] if e["n"] >= 30 else PRIOR_ACCURACY
    base = min(max(base, DETECT_DIFFERENCE + 1e-3), 1 - 1e-3)
    alpha = ALPHA / len(others)  # planned for the corrected test
    need: dict[str, int] = {ENSEMBLE: 0}
    for name in others:
        ratio = share[name] / share[ENSEMBLE]
        n_ens = sample_size_per_arm(base, base - DETECT_DIFFERENCE, alpha, POWER, ratio)
        need[ENSEMBLE] = max(need[ENSEMBLE], n_ens)
        need[name] = math.ceil(n_ens * ratio)
    advice.update(
        baseline_accuracy=base,
        baseline="observed ensemble accuracy" if e["n"] >= 30 else "assumed (under 30 labels)",
        needed=need,
        more_needed={a: max(0, n - stats[a]["labelled"]) for a, n in need.items()},
    )
    return advice


def _day(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def conclusion(report: Mapping[str, Any]) -> str:
    comparisons = report["comparisons"]
    lines = []
    srm = report.get("sample_ratio") or {}
    if srm.get("mismatch"):
        shares = ", ".join(
            f"{a} {100 * srm['observed_share'][a]:.1f}% (planned "
            f"{100 * srm['planned_share'][a] / sum(srm['planned_share'].values()):.1f}%)"
            for a in srm["assigned"]
        )
        lines.append(
            f"Sample-ratio mismatch: the devices assigned per arm ({shares}) do not fit the "
            f"planned split (chi-square p = {srm['p_value']:.3g} < {srm['alpha']:g}); the split "
            "is broken or an arm loses traffic, so the comparisons below are suspect."
        )
    if report.get("candidate"):
        lines.append(report["candidate"]["summary"])
    compared = [a for a in report["arms"] if a not in (ENSEMBLE, CANDIDATE)]
    if compared and not comparisons:
        lines.append("Too few labels to compare the arms: each arm needs labelled devices.")
    for name, diff in comparisons.items():
        d, (lo, hi), p = diff["arm_minus_ensemble"], diff["ci95"], diff["p_adjusted"]
        model = report["arms"][name]["model"]
        span = f"{100 * d:+.1f} points (95% CI {100 * lo:+.1f} to {100 * hi:+.1f}), p = {p:.3g}"
        if diff["correction"].startswith("Holm"):
            span += " (Holm-corrected)"
        if diff["significant"]:
            better = f"{name} arm ({model})" if d > 0 else "ensemble"
            lines.append(f"The {better} is more accurate: {name} minus ensemble {span}.")
        else:
            lines.append(f"No significant difference between ensemble and {name}: {span}.")
    for name, diff in comparisons.items():
        seq = diff["sequential"]
        lo, hi = seq["ci"]
        d = seq["arm_minus_ensemble"]
        span = f"{100 * d:+.1f} points (always-valid 95% CI {100 * lo:+.1f} to {100 * hi:+.1f})"
        if seq["decision"] == "keep collecting":
            more = (
                f"about {seq['more_labels']} more labelled devices"
                if seq["more_labels"]
                else "many more labels"
            )
            lines.append(
                f"Read continuously, {name} minus ensemble is {span}: keep collecting, {more}."
            )
        else:
            who = name if seq["decision"] == "candidate better" else "ensemble"
            lines.append(
                f"Read continuously, {name} minus ensemble is {span}: the {who} is better."
            )
    more = report["sample_size"].get("more_needed")
    decided = comparisons and all(c["significant"] for c in comparisons.values())
    if more and any(more.values()) and not decided:
        per_arm = ", ".join(f"{n} more on the {a} arm" for a, n in more.items())
        lines.append(
            f"Too few labels to detect a {100 * DETECT_DIFFERENCE:.0f}-point difference: "
            f"{per_arm} are needed."
        )
    for v in report["versions"]:
        seq = v.get("newest_against_this")
        where = "ensemble arm" if v.get("arm", ENSEMBLE) == ENSEMBLE else f"{v['arm']} arm"
        if seq and seq["decision"] != "keep collecting":
            how = "better" if seq["decision"] == "candidate better" else "worse"
            lines.append(
                f"The newest models are {how} than those served from {_day(v['first_ts'])} "
                f"({100 * seq['newest_minus_this']:+.1f} points, always-valid 95% CI "
                f"{100 * seq['ci'][0]:+.1f} to {100 * seq['ci'][1]:+.1f}, {where})."
            )
    for name, s in report["shadow_combiners"].items():
        if s["paired"] and not s["served"] and s["p_value"] < ALPHA:
            better = s["only_combiner_right"] > s["only_ensemble_right"]
            lines.append(
                f"Shadow, same {s['paired']} devices: the {name} combiner would have decided "
                f"{'better' if better else 'worse'} than the served one (right where it was wrong "
                f"on {s['only_combiner_right']}, wrong where it was right on "
                f"{s['only_ensemble_right']}; McNemar p = {s['p_value']:.3g})."
            )
    for member, s in report["shadow"].items():
        if s["paired"] and s["p_value"] < ALPHA:
            m, e = s["member_accuracy"]["value"], s["ensemble_accuracy"]["value"]
            who = "ensemble" if e > m else member
            lines.append(
                f"Shadow, same {s['paired']} devices: {who} is more accurate "
                f"(ensemble {100 * e:.1f}% vs {member} {100 * m:.1f}%, McNemar p = "
                f"{s['p_value']:.3g})."
            )
    return " ".join(lines)
