"""The A/B accuracy report: arms compared, every member shadow-compared with the ensemble.

Pure computation over labelled predictions (:class:`Labelled`); the prediction
log supplies them, ``GET /ab/report`` serves the result as JSON and
``yield-ensemble report`` renders the same dict as HTML.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ensemble.split import CHALLENGER, ENSEMBLE
from ensemble.vote import PASS_THRESHOLD
from ledger.stats import (
    Proportion,
    mcnemar_pvalue,
    newcombe_interval,
    sample_size_per_arm,
    two_proportion_pvalue,
    wilson_interval,
)

#: The accuracy difference the sample-size advice is sized to detect.
DETECT_DIFFERENCE = 0.02
ALPHA = 0.05
POWER = 0.80
#: Accuracy assumed for sample-size advice before any labels arrive.
PRIOR_ACCURACY = 0.90
TIMELINE_BINS = 12


@dataclass(frozen=True)
class Labelled:
    """Served predictions joined with their ground truth, one entry per device."""

    ts: np.ndarray  # float unix seconds
    arm: np.ndarray  # str
    served_pass: np.ndarray  # bool
    actual_pass: np.ndarray  # bool
    votes: Mapping[str, np.ndarray]  # member -> P(pass), NaN where not computed

    def __len__(self) -> int:
        return len(self.ts)

    def where(self, mask: np.ndarray) -> Labelled:
        return Labelled(
            self.ts[mask],
            self.arm[mask],
            self.served_pass[mask],
            self.actual_pass[mask],
            {m: v[mask] for m, v in self.votes.items()},
        )


def _class_metrics(served_pass: np.ndarray, actual_pass: np.ndarray) -> dict[str, Any]:
    """Accuracy, fail recall and fail precision (fail is the class yield teams hunt)."""
    correct = int(np.sum(served_pass == actual_pass))
    fail_hit = int(np.sum(~served_pass & ~actual_pass))
    n = len(served_pass)
    return {
        "labelled": n,
        "accuracy": Proportion(correct, n).as_dict(),
        "fail_recall": Proportion(fail_hit, int(np.sum(~actual_pass))).as_dict(),
        "fail_precision": Proportion(fail_hit, int(np.sum(~served_pass))).as_dict(),
        "confusion": {
            "actual_pass": {
                "pass": int(np.sum(served_pass & actual_pass)),
                "fail": int(np.sum(~served_pass & actual_pass)),
            },
            "actual_fail": {"pass": int(np.sum(served_pass & ~actual_pass)), "fail": fail_hit},
        },
    }


def _timeline(data: Labelled, bins: int) -> list[dict[str, Any]]:
    if not len(data):
        return []
    lo, hi = float(data.ts.min()), float(data.ts.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
    which = np.clip(np.searchsorted(edges, data.ts, side="right") - 1, 0, bins - 1)
    correct = data.served_pass == data.actual_pass
    out = []
    for b in range(bins):
        mask = which == b
        n, k = int(mask.sum()), int(correct[mask].sum())
        if n:
            lo_ci, hi_ci = wilson_interval(k, n)
            out.append(
                {
                    "start": float(edges[b]),
                    "end": float(edges[b + 1]),
                    "n": n,
                    "accuracy": k / n,
                    "ci95": [lo_ci, hi_ci],
                }
            )
    return out


def _shadow(data: Labelled, members: Sequence[str]) -> dict[str, Any]:
    """Each member against the served ensemble answer on the same devices (McNemar)."""
    ens_right = data.served_pass == data.actual_pass
    out: dict[str, Any] = {}
    for member in members:
        p = data.votes[member]
        have = ~np.isnan(p)
        member_right = (p[have] >= PASS_THRESHOLD) == data.actual_pass[have]
        e = ens_right[have]
        b, c = int(np.sum(e & ~member_right)), int(np.sum(~e & member_right))
        p_value, method = mcnemar_pvalue(b, c)
        n = int(have.sum())
        out[member] = {
            "paired": n,
            "member_accuracy": Proportion(int(member_right.sum()), n).as_dict(),
            "ensemble_accuracy": Proportion(int(e.sum()), n).as_dict(),
            "only_ensemble_right": b,
            "only_member_right": c,
            "p_value": p_value,
            "test": f"McNemar ({method})",
        }
    return out


def _agreement(data: Labelled, members: Sequence[str]) -> dict[str, Any]:
    """How often members vote alike, pairwise and all together, on the ensemble arm."""
    decided = {m: data.votes[m] >= PASS_THRESHOLD for m in members}
    complete = np.all([~np.isnan(data.votes[m]) for m in members], axis=0) if members else []
    n = int(np.sum(complete))
    pairs = {
        f"{a}|{b}": (float(np.mean(decided[a][complete] == decided[b][complete])) if n else None)
        for i, a in enumerate(members)
        for b in members[i + 1 :]
    }
    all_agree = None
    if n:
        votes = np.stack([decided[m][complete] for m in members])
        all_agree = float(np.mean(np.all(votes == votes[0], axis=0)))
    return {"devices": n, "all_agree": all_agree, "pairwise": pairs}


def build_report(
    data: Labelled,
    served: Mapping[str, int],
    members: Sequence[str],
    challenger: str,
    challenger_fraction: float,
    window: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report dict; ``served`` counts every served prediction per arm in the window."""
    arms: dict[str, Any] = {}
    for arm in (ENSEMBLE, CHALLENGER):
        part = data.where(data.arm == arm)
        arms[arm] = {
            "model": "majority vote" if arm == ENSEMBLE else challenger,
            "served": int(served.get(arm, 0)),
            **_class_metrics(part.served_pass, part.actual_pass),
            "timeline": _timeline(part, TIMELINE_BINS),
        }
    ens = data.where(data.arm == ENSEMBLE)
    report = {
        "window": dict(window or {}),
        "labelled": len(data),
        "arms": arms,
        "difference": _difference(arms),
        "sample_size": _sample_size(arms, challenger_fraction),
        "shadow": _shadow(ens, members),
        "agreement": _agreement(ens, members),
    }
    report["conclusion"] = _conclusion(report, challenger)
    return report


def _difference(arms: Mapping[str, Any]) -> dict[str, Any] | None:
    e, c = arms[ENSEMBLE]["accuracy"], arms[CHALLENGER]["accuracy"]
    if not e["n"] or not c["n"]:
        return None
    lo, hi = newcombe_interval(e["k"], e["n"], c["k"], c["n"])
    p_value = two_proportion_pvalue(e["k"], e["n"], c["k"], c["n"])
    return {
        "ensemble_minus_challenger": e["value"] - c["value"],
        "ci95": [lo, hi],
        "p_value": p_value,
        "test": "two-proportion z-test (pooled); Newcombe hybrid score interval",
        "significant": p_value < ALPHA,
    }


def _sample_size(arms: Mapping[str, Any], fraction: float) -> dict[str, Any]:
    """Labels per arm to detect a DETECT_DIFFERENCE accuracy gap at the configured split."""
    advice: dict[str, Any] = {
        "detect_difference": DETECT_DIFFERENCE,
        "alpha": ALPHA,
        "power": POWER,
    }
    if not 0 < fraction < 1:
        advice["note"] = f"challenger fraction is {fraction}: there is no second arm to compare"
        return advice
    e = arms[ENSEMBLE]["accuracy"]
    base = e["value"] if e["n"] >= 30 else PRIOR_ACCURACY
    base = min(max(base, DETECT_DIFFERENCE + 1e-3), 1 - 1e-3)
    ratio = fraction / (1 - fraction)
    n_ens = sample_size_per_arm(base, base - DETECT_DIFFERENCE, ALPHA, POWER, ratio)
    need = {ENSEMBLE: n_ens, CHALLENGER: math.ceil(n_ens * ratio)}
    advice.update(
        baseline_accuracy=base,
        baseline="observed ensemble accuracy" if e["n"] >= 30 else "assumed (under 30 labels)",
        needed=need,
        more_needed={a: max(0, n - arms[a]["labelled"]) for a, n in need.items()},
    )
    return advice


def _conclusion(report: Mapping[str, Any], challenger: str) -> str:
    diff = report["difference"]
    lines = []
    if diff is None:
        lines.append("Too few labels to compare the arms: each arm needs labelled devices.")
    else:
        d, (lo, hi), p = diff["ensemble_minus_challenger"], diff["ci95"], diff["p_value"]
        span = f"{100 * d:+.1f} points (95% CI {100 * lo:+.1f} to {100 * hi:+.1f}), p = {p:.3g}"
        if diff["significant"]:
            better = "ensemble" if d > 0 else f"challenger ({challenger})"
            lines.append(f"The {better} is more accurate: ensemble minus challenger {span}.")
        else:
            lines.append(f"No significant difference between the arms: {span}.")
    more = report["sample_size"].get("more_needed")
    if more and any(more.values()) and not (diff and diff["significant"]):
        lines.append(
            f"Too few labels to detect a {100 * DETECT_DIFFERENCE:.0f}-point difference: "
            f"{more[ENSEMBLE]} more on the ensemble arm and {more[CHALLENGER]} more on the "
            "challenger arm are needed."
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
