"""The A/B accuracy report: arms compared, every member and combiner shadow-compared.

Every member alone (at its fitted threshold) and every combiner of the serving
decision (``ensemble.decision``) is recomputed from the member probabilities logged
with each ensemble-arm prediction, so the report shows on labelled live traffic how
each would have decided the very devices the served ensemble decided: accuracy,
escapes, overkill and cost, each paired with the served answer (McNemar).

Pure computation over labelled predictions (:class:`Labelled`); the prediction
log supplies them, ``GET /ab/report`` serves the result as JSON and
``yield-ensemble report`` renders the same dict as HTML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ensemble.arms import ENSEMBLE, Arm
from ensemble.combiners import Objective
from ensemble.decision import Decision
from ensemble.serving import CANDIDATE
from ledger.comparisons import (
    ALPHA,
    DETECT_DIFFERENCE,
    POWER,
    PRIOR_ACCURACY,
    SRM_ALPHA,
    comparisons,
    conclusion,
    holm,
    sample_ratio,
    sample_size,
)
from ledger.labelled import Labelled
from ledger.shadow import agreement, shadow_combiners, shadow_members
from ledger.stats import Proportion, decision_metrics, wilson_interval
from ledger.versions import ADVICE, by_version, candidate_section, one_version

__all__ = [
    "ADVICE",
    "ALPHA",
    "DETECT_DIFFERENCE",
    "POWER",
    "PRIOR_ACCURACY",
    "SRM_ALPHA",
    "TIMELINE_BINS",
    "Labelled",
    "build_report",
    "holm",
]

TIMELINE_BINS = 12


def _class_metrics(
    served_pass: np.ndarray, actual_pass: np.ndarray, objective: Objective
) -> dict[str, Any]:
    """Accuracy, fail recall and precision (fail is the class yield teams hunt), escapes,
    overkill and cost per die at the fab's costs."""
    fail_hit = int(np.sum(~served_pass & ~actual_pass))
    n = len(served_pass)
    fab = decision_metrics(served_pass, actual_pass, objective.escape_cost, objective.overkill_cost)
    return {
        "labelled": n,
        "accuracy": fab["accuracy"],
        "fail_recall": fab["fail_recall"],
        "fail_precision": Proportion(fail_hit, int(np.sum(~served_pass))).as_dict(),
        "escapes": fab["escapes"],
        "overkill": fab["overkill"],
        "escapes_ppm": fab["escapes_ppm"],
        "cost": fab["cost"],
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


def build_report(
    data: Labelled,
    served: Mapping[str, int],
    members: Sequence[str],
    arms: Sequence[Arm],
    window: Mapping[str, Any] | None = None,
    decision: Decision | None = None,
    served_key: str | None = None,
    candidate: Mapping[str, Any] | None = None,
    assigned: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The report dict; ``served`` counts every served prediction per arm in the window.

    ``arms`` are the arms as the window was served (their shares size the advice);
    every other arm is compared with the ensemble, Holm-corrected when there are several.
    ``decision`` (default: unfitted rules at 0.5) gives the costs, each member's
    threshold and the combiners shadow-computed; ``served_key`` marks the served one.
    ``candidate`` (``ensemble.fleet.Snapshot.candidate_spec``): the candidate version to
    judge against the champion. ``assigned``: devices per arm the split ASSIGNED (default
    ``served``), tested against the planned shares for sample-ratio mismatch.
    """
    decision = decision or Decision.unfitted({m: "" for m in members})
    objective = decision.objective
    stats: dict[str, Any] = {}
    for arm in arms:
        part = data.where(data.arm == arm.name)
        left_out: list[dict[str, Any]] = []
        if arm.name == CANDIDATE:
            part, left_out = one_version(part, candidate)
        stats[arm.name] = {
            "model": "ensemble" if arm.single is None else arm.single,
            "share": arm.share,
            "served": int(served.get(arm.name, 0)),
            **_class_metrics(part.served_pass, part.actual_pass, objective),
            "timeline": _timeline(part, TIMELINE_BINS),
        }
        if left_out:
            stats[arm.name]["left_out"] = left_out
    ens = data.where(data.arm == ENSEMBLE)
    # Shadow rules are the decision's: judge them only on rows its models served.
    current = ens.where(ens.served_by(decision.members)) if decision.fitted else ens
    report = {
        "window": dict(window or {}),
        "labelled": len(data),
        "arms": stats,
        "comparisons": comparisons(stats),
        "sample_size": sample_size(stats, arms),
        "sample_ratio": sample_ratio(served if assigned is None else assigned, arms),
        "costs": objective.to_dict(),
        "decision_run": decision.run or None,
        "shadow": shadow_members(current, members, decision),
        "shadow_combiners": shadow_combiners(current, members, decision, served_key),
        "agreement": agreement(current, members, decision),
        "versions": by_version(data),
        "candidate": None if candidate is None else candidate_section(data, candidate),
    }
    report["conclusion"] = conclusion(report)
    return report
