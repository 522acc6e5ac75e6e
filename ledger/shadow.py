"""Shadow comparisons on the ensemble arm: each member alone and each combiner of the
serving decision, recomputed from the logged member probabilities and paired with the
served answer on the same devices (McNemar), and how often the members agree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ensemble.combiners import Objective
from ensemble.decision import Decision
from ledger.labelled import Labelled
from ledger.stats import Proportion, decision_metrics, mcnemar_pvalue


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


def shadow_members(data: Labelled, members: Sequence[str], decision: Decision) -> dict[str, Any]:
    """Each member alone, at its fitted threshold, against the served ensemble answer."""
    out: dict[str, Any] = {}
    for member in members:
        p = data.votes[member]
        have = ~np.isnan(p)
        decided = decision.single(member).combine({member: p})[0]
        paired = _paired(data, np.asarray(decided), have, decision.objective)
        out[member] = {**paired, "member_accuracy": paired["accuracy"]}
    return out


def shadow_combiners(
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


def agreement(data: Labelled, members: Sequence[str], decision: Decision) -> dict[str, Any]:
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
