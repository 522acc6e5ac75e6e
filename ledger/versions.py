"""The report's version sections: the ensemble arm per logged model-version trio, and the
candidate version against the champion, both judged with the always-valid test
(``ledger.sequential``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ensemble.arms import ENSEMBLE
from ensemble.serving import CANDIDATE
from ledger import sequential
from ledger.labelled import Labelled, parse_versions
from ledger.stats import Proportion


def by_version(data: Labelled) -> list[dict[str, Any]]:
    """Accuracy per arm (the ensemble's and the candidate's) and logged model-version trio,
    never two trios pooled in one line; per arm the newest trio against each older one
    with the always-valid comparison (``ledger.sequential``), by first served."""
    lines: list[dict[str, Any]] = []
    for arm in (ENSEMBLE, CANDIDATE):
        lines += [{"arm": arm, **v} for v in _by_version(data.where(data.arm == arm))]
    return sorted(lines, key=lambda v: (v["arm"] != ENSEMBLE, v["first_ts"]))


def _by_version(data: Labelled) -> list[dict[str, Any]]:
    if data.versions is None or not len(data):
        return []
    out: dict[str, Any] = {}
    for text in set(data.versions.tolist()):
        part = data.where(data.versions == text)
        right = int(np.sum(part.served_pass == part.actual_pass))
        out[text] = {
            "model_versions": parse_versions(text),
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
            v["newest_against_this"] = sequential.compare(a["k"], a["n"], n["k"], n["n"]).as_dict(
                "newest_minus_this"
            )
    return sorted(out.values(), key=lambda v: v["first_ts"])


def one_version(
    data: Labelled, spec: Mapping[str, Any] | None
) -> tuple[Labelled, list[dict[str, Any]]]:
    """The candidate arm's rows of one candidate version, and what was left out.

    A window can hold two candidate versions (one replaced the other); pooled, their
    accuracy describes neither. The line keeps the serving candidate's rows (``spec``'s
    ``candidate_versions``) when the window has any, else the newest logged trio's; each
    other trio is listed with its labelled rows (its own line is in ``versions``)."""
    if data.versions is None or len(set(data.versions.tolist())) < 2:
        return data, []
    kept = data.served_by(spec["candidate_versions"]) if spec else np.zeros(len(data), bool)
    if not kept.any():
        newest = data.versions[int(np.argmax(data.ts))]
        kept = data.versions == newest
    out = []
    for text in sorted(set(data.versions[~kept].tolist())):
        part = data.where(data.versions == text)
        out.append({"model_versions": parse_versions(text), "labelled": len(part),
                    "first_ts": float(part.ts.min()), "last_ts": float(part.ts.max())})  # fmt: skip
    return data.where(kept), sorted(out, key=lambda v: v["first_ts"])


#: What the report advises about a candidate version, by the sequential test's finding.
ADVICE = {"candidate better": "promote", "candidate worse": "roll back"}


def candidate_section(data: Labelled, spec: Mapping[str, Any]) -> dict[str, Any]:
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
        "sequential": verdict.as_dict("candidate_minus_champion"),
        "decision": advice,
        "more_labels": verdict.more_labels if advice == "keep collecting" else 0,
        "summary": summary,
    }
