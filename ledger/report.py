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

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ensemble.arms import ENSEMBLE, Arm
from ensemble.combiners import Objective
from ensemble.decision import Decision
from ensemble.serving import CANDIDATE
from ledger import sequential
from ledger.stats import (
    Proportion,
    decision_metrics,
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
    # The model versions that served each row, as logged ({"member": "tag"} JSON).
    versions: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ts)

    def where(self, mask: np.ndarray) -> Labelled:
        return Labelled(
            self.ts[mask],
            self.arm[mask],
            self.served_pass[mask],
            self.actual_pass[mask],
            {m: v[mask] for m, v in self.votes.items()},
            None if self.versions is None else self.versions[mask],
        )

    def served_by(self, members: Mapping[str, str]) -> np.ndarray:
        """Rows whose logged model versions are exactly ``members`` (all rows if unknown)."""
        if self.versions is None:
            return np.ones(len(self), dtype=bool)
        parsed = {v: _versions(v) for v in set(self.versions.tolist())}
        return np.asarray([parsed[v] == dict(members) for v in self.versions], dtype=bool)


def _versions(text: Any) -> dict[str, str] | None:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _by_version(data: Labelled) -> list[dict[str, Any]]:
    """The ensemble arm's accuracy per logged model-version trio; the newest against each
    older one with the always-valid comparison (``ledger.sequential``)."""
    if data.versions is None or not len(data):
        return []
    out: dict[str, Any] = {}
    for text in set(data.versions.tolist()):
        part = data.where(data.versions == text)
        right = int(np.sum(part.served_pass == part.actual_pass))
        out[text] = {
            "model_versions": _versions(text),
            "accuracy": Proportion(right, len(part)).as_dict(),
            "first_ts": float(part.ts.min()),
            "last_ts": float(part.ts.max()),
        }
    newest = max(out, key=lambda t: out[t]["last_ts"])
    n = out[newest]["accuracy"]
    for text, v in out.items():
        v["newest"] = text == newest
        if text != newest:
            a = v["accuracy"]
            v["newest_against_this"] = sequential.compare(a["k"], a["n"], n["k"], n["n"]).as_dict()
    return sorted(out.values(), key=lambda v: v["first_ts"])


def _day(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


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


def _paired(
    data: Labelled, decided: np.ndarray, have: np.ndarray, objective: Objective
) -> dict[str, Any]:
    """Decisions ``decided`` on the rows ``have`` against the served answers there (McNemar)."""
    actual = data.actual_pass[have]
    served_right = data.served_pass[have] == actual
    right = decided[have] == actual
    b, c = int(np.sum(served_right & ~right)), int(np.sum(~served_right & right))
    p_value, method = mcnemar_pvalue(b, c)
    fab = decision_metrics(decided[have], actual, objective.escape_cost, objective.overkill_cost)
    return {
        "paired": int(have.sum()),
        **{k: fab[k] for k in ("accuracy", "fail_recall", "escapes", "overkill", "cost")},
        "ensemble_accuracy": Proportion(int(served_right.sum()), int(have.sum())).as_dict(),
        "only_ensemble_right": b,
        "only_member_right": c,
        "p_value": p_value,
        "test": f"McNemar ({method})",
    }


def _shadow(data: Labelled, members: Sequence[str], decision: Decision) -> dict[str, Any]:
    """Each member alone, at its fitted threshold, against the served ensemble answer."""
    out: dict[str, Any] = {}
    for member in members:
        p = data.votes[member]
        have = ~np.isnan(p)
        decided = decision.single(member).combine({member: p})[0]
        paired = _paired(data, np.asarray(decided), have, decision.objective)
        out[member] = {**paired, "member_accuracy": paired["accuracy"]}
    return out


def _shadow_combiners(
    data: Labelled, members: Sequence[str], decision: Decision, served_key: str | None
) -> dict[str, Any]:
    """Every combiner of the decision on the ensemble arm's labelled devices, paired."""
    votes = {m: data.votes[m] for m in members}
    have = (
        np.sum([~np.isnan(v) for v in votes.values()], axis=0) >= 2
        if votes
        else np.zeros(len(data), dtype=bool)
    )
    out: dict[str, Any] = {}
    for name, combiner in decision.combiners.items():
        decided = combiner.combine(votes)[0] if len(data) and votes else np.zeros(0, bool)
        paired = _paired(data, np.asarray(decided, dtype=bool), have, decision.objective)
        paired["only_combiner_right"] = paired.pop("only_member_right")
        out[name] = {
            "key": combiner.key,
            "threshold": combiner.threshold,
            "served": combiner.key == served_key,
            **paired,
        }
    return out


def _agreement(data: Labelled, members: Sequence[str], decision: Decision) -> dict[str, Any]:
    """How often members vote alike (each at its threshold), pairwise and all together."""
    decided = {m: decision.single(m).combine({m: data.votes[m]})[0] for m in members}
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


#: What the report advises about a candidate version, by the sequential test's finding.
ADVICE = {"candidate better": "promote", "candidate worse": "roll back"}


def _candidate(data: Labelled, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The candidate version against the champion, on rows since the candidate was set:
    the candidate arm's against the ensemble arm's, each served by its own version, judged
    with the always-valid test, so the advice stays right however often it is read."""
    recent = data.where(data.ts >= (spec.get("since") or -math.inf))
    sides = {
        "champion": recent.where(
            (recent.arm == ENSEMBLE) & recent.served_by(spec["champion_versions"])
        ),
        "candidate": recent.where(
            (recent.arm == CANDIDATE) & recent.served_by(spec["candidate_versions"])
        ),
    }
    right = {k: int(np.sum(v.served_pass == v.actual_pass)) for k, v in sides.items()}
    n = {k: len(v) for k, v in sides.items()}
    alpha = spec.get("alpha", sequential.ALPHA)
    verdict = sequential.compare(right["champion"], n["champion"], right["candidate"],
                                 n["candidate"], alpha=alpha)  # fmt: skip
    advice = ADVICE.get(verdict.decision, "keep collecting")
    lo, hi = (100 * x for x in verdict.ci)
    gap = (
        f"{100 * verdict.difference:+.1f} points of accuracy (always-valid "
        f"{100 * (1 - verdict.alpha):g}% CI {lo:+.1f} to "
        f"{hi:+.1f}; {n['candidate']} labelled devices on the candidate, {n['champion']} on "
        "the champion)"
    )
    head = f"Candidate {spec['candidate']} against champion {spec['champion']}:"
    empty = [side for side in ("candidate", "champion") if not n[side]]
    if empty:
        summary = (
            f"{head} keep collecting: no labelled device on the {' or the '.join(empty)} "
            "since the candidate was set; send final-test outcomes to /feedback."
        )
    elif advice == "keep collecting":
        more = verdict.more_labels
        about = f": about {more} more labelled devices" if more else ""
        summary = f"{head} keep collecting{about}. So far {gap}."
    else:
        summary = f"{head} {advice}: {gap}."
    return {
        **dict(spec),
        "champion_accuracy": Proportion(right["champion"], n["champion"]).as_dict(),
        "candidate_accuracy": Proportion(right["candidate"], n["candidate"]).as_dict(),
        "sequential": verdict.as_dict(),
        "decision": advice,
        "more_labels": verdict.more_labels if advice == "keep collecting" else 0,
        "summary": summary,
    }


def build_report(
    data: Labelled,
    served: Mapping[str, int],
    members: Sequence[str],
    arms: Sequence[Arm],
    window: Mapping[str, Any] | None = None,
    decision: Decision | None = None,
    served_key: str | None = None,
    candidate: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report dict; ``served`` counts every served prediction per arm in the window.

    ``arms`` are the arms as the window was served (their shares size the advice);
    every other arm is compared with the ensemble, Holm-corrected when there are several.
    ``decision`` (default: unfitted rules at 0.5) gives the costs, each member's
    threshold and the combiners shadow-computed; ``served_key`` marks the served one.
    ``candidate`` (``ensemble.fleet.Snapshot.candidate_spec``): the candidate version to
    judge against the champion.
    """
    decision = decision or Decision.unfitted({m: "" for m in members})
    objective = decision.objective
    stats: dict[str, Any] = {}
    for arm in arms:
        part = data.where(data.arm == arm.name)
        stats[arm.name] = {
            "model": "ensemble" if arm.single is None else arm.single,
            "share": arm.share,
            "served": int(served.get(arm.name, 0)),
            **_class_metrics(part.served_pass, part.actual_pass, objective),
            "timeline": _timeline(part, TIMELINE_BINS),
        }
    ens = data.where(data.arm == ENSEMBLE)
    # Shadow rules are the decision's: judge them only on rows its models served.
    current = ens.where(ens.served_by(decision.members)) if decision.fitted else ens
    report = {
        "window": dict(window or {}),
        "labelled": len(data),
        "arms": stats,
        "comparisons": _comparisons(stats),
        "sample_size": _sample_size(stats, arms),
        "costs": objective.to_dict(),
        "decision_run": decision.run or None,
        "shadow": _shadow(current, members, decision),
        "shadow_combiners": _shadow_combiners(current, members, decision, served_key),
        "agreement": _agreement(current, members, decision),
        "versions": _by_version(ens),
        "candidate": None if candidate is None else _candidate(data, candidate),
    }
    report["conclusion"] = _conclusion(report)
    return report


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    ordered = sorted(p_values.items(), key=lambda kv: kv[1])
    m, running, out = len(ordered), 0.0, {}
    for i, (name, p) in enumerate(ordered):
        running = max(running, min(1.0, (m - i) * p))
        out[name] = running
    return out


def _comparisons(stats: Mapping[str, Any]) -> dict[str, Any]:
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
        lo, hi = newcombe_interval(e["k"], e["n"], c["k"], c["n"])
        raw[name] = {
            "ensemble_minus_arm": e["value"] - c["value"],
            "ci95": [lo, hi],
            "p_value": two_proportion_pvalue(e["k"], e["n"], c["k"], c["n"]),
            "test": "two-proportion z-test (pooled); Newcombe hybrid score interval",
            # Valid however often the report is read: the arm as candidate, the ensemble
            # as baseline (``ledger.sequential``).
            "sequential": sequential.compare(e["k"], e["n"], c["k"], c["n"]).as_dict(),
        }
    adjusted = holm({name: r["p_value"] for name, r in raw.items()})
    correction = "Holm" if len(raw) > 1 else "none (one comparison)"
    for name, r in raw.items():
        r.update(p_adjusted=adjusted[name], correction=correction)
        r["significant"] = adjusted[name] < ALPHA
    return raw


def _sample_size(stats: Mapping[str, Any], arms: Sequence[Arm]) -> dict[str, Any]:
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


def _conclusion(report: Mapping[str, Any]) -> str:
    comparisons = report["comparisons"]
    lines = []
    if report.get("candidate"):
        lines.append(report["candidate"]["summary"])
    compared = [a for a in report["arms"] if a not in (ENSEMBLE, CANDIDATE)]
    if compared and not comparisons:
        lines.append("Too few labels to compare the arms: each arm needs labelled devices.")
    for name, diff in comparisons.items():
        d, (lo, hi), p = diff["ensemble_minus_arm"], diff["ci95"], diff["p_adjusted"]
        model = report["arms"][name]["model"]
        span = f"{100 * d:+.1f} points (95% CI {100 * lo:+.1f} to {100 * hi:+.1f}), p = {p:.3g}"
        if diff["correction"].startswith("Holm"):
            span += " (Holm-corrected)"
        if diff["significant"]:
            better = "ensemble" if d > 0 else f"{name} arm ({model})"
            lines.append(f"The {better} is more accurate: ensemble minus {name} {span}.")
        else:
            lines.append(f"No significant difference between ensemble and {name}: {span}.")
    for name, diff in comparisons.items():
        seq = diff["sequential"]
        lo, hi = seq["ci"]
        d = -seq["difference"]  # the ensemble minus the arm, as in the lines above
        span = f"{100 * d:+.1f} points (always-valid 95% CI {100 * -hi:+.1f} to {100 * -lo:+.1f})"
        if seq["decision"] == "keep collecting":
            more = (
                f"about {seq['more_labels']} more labelled devices"
                if seq["more_labels"]
                else "many more labels"
            )
            lines.append(
                f"Read continuously, ensemble minus {name} is {span}: keep collecting, {more}."
            )
        else:
            who = name if seq["decision"] == "candidate better" else "ensemble"
            lines.append(
                f"Read continuously, ensemble minus {name} is {span}: the {who} is better."
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
        if seq and seq["decision"] != "keep collecting":
            how = "better" if seq["decision"] == "candidate better" else "worse"
            lines.append(
                f"The newest models are {how} than those served from {_day(v['first_ts'])} "
                f"({100 * seq['difference']:+.1f} points, always-valid 95% CI "
                f"{100 * seq['ci'][0]:+.1f} to {100 * seq['ci'][1]:+.1f}, ensemble arm)."
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
