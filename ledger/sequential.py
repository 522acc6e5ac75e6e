"""A comparison that stays valid while people watch: the mixture SPRT on two accuracies.

The A/B report is read again and again as labels arrive; a fixed-sample test read
that way says "significant" far more often than its alpha. The mixture sequential
probability ratio test (mSPRT; Johari, Pekelis and Walsh, "Always valid inference",
2017) for the difference of two proportions, with a normal mixing distribution of
variance ``tau**2`` over the difference, gives

    Lambda_n = sqrt(V / (V + tau^2)) * exp(d^2 tau^2 / (2 V (V + tau^2)))

for the observed difference ``d`` and its variance ``V``. Stopping the first time
``Lambda_n >= 1/alpha`` rejects "no difference" with probability at most alpha (in the
normal approximation) however often it is checked. Inverting it gives an always-valid
confidence sequence for the difference. ``tests/unit/test_sequential.py`` simulates A/A
and A/B runs read after every batch of labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: Error rate under continuous monitoring.
ALPHA = 0.05
#: Standard deviation of the mixing distribution: the size of difference the test is
#: most sensitive to (accuracy points as a fraction).
TAU = 0.02
#: Labels each side needs before any verdict: the normal approximation needs some.
MIN_LABELS = 200


def _variance(k: int, n: int) -> float:
    # A continuity guard keeps an arm with 0 or n right answers from a zero variance.
    p = (k + 0.5) / (n + 1.0)
    return p * (1 - p) / n


def half_width(variance: float, alpha: float = ALPHA, tau: float = TAU) -> float:
    """Half-width of the always-valid (1 - alpha) interval for a difference of variance V."""
    t2 = tau * tau
    return math.sqrt(
        2 * variance * (variance + t2) / t2
        * (math.log(1 / alpha) + 0.5 * math.log((variance + t2) / variance))
    )  # fmt: skip


def statistic(d: float, variance: float, tau: float = TAU) -> float:
    """The mixture likelihood ratio ``Lambda`` for an observed difference ``d``."""
    t2 = tau * tau
    return math.sqrt(variance / (variance + t2)) * math.exp(
        min(d * d * t2 / (2 * variance * (variance + t2)), 700.0)
    )


@dataclass(frozen=True)
class Verdict:
    difference: float  # candidate minus baseline accuracy
    ci: tuple[float, float]  # always-valid (1 - alpha) interval
    p_value: float  # always-valid p-value at this look (1 / Lambda, capped at 1)
    decision: str  # "candidate better", "candidate worse" or "keep collecting"
    more_labels: int | None  # about how many more labelled devices, in total, to decide
    alpha: float = ALPHA

    def as_dict(self, difference: str = "candidate_minus_baseline") -> dict[str, Any]:
        """The verdict; ``difference`` names the difference's key by its orientation (always
        the candidate minus the baseline, e.g. ``arm_minus_ensemble``)."""
        return {
            difference: self.difference,
            "ci": list(self.ci),
            "p_value": self.p_value,
            "decision": self.decision,
            "more_labels": self.more_labels,
            "alpha": self.alpha,
            "test": f"mixture SPRT, always valid (alpha {self.alpha:g}, tau {TAU})",
        }


def compare(
    k_base: int,
    n_base: int,
    k_cand: int,
    n_cand: int,
    alpha: float = ALPHA,
    tau: float = TAU,
    min_labels: int = MIN_LABELS,
    advise: bool = True,
) -> Verdict:
    """Candidate (``k_cand`` right of ``n_cand``) against the baseline, at this look.

    ``advise``: estimate the labels still needed when undecided (simulations skip it).
    """
    if min(n_base, n_cand) < 1:
        return Verdict(0.0, (-1.0, 1.0), 1.0, "keep collecting", None, alpha)
    d = k_cand / n_cand - k_base / n_base
    v = _variance(k_base, n_base) + _variance(k_cand, n_cand)
    w = half_width(v, alpha, tau)
    p = min(1.0, 1.0 / statistic(d, v, tau))
    enough = min(n_base, n_cand) >= min_labels
    if enough and d - w > 0:
        return Verdict(d, (d - w, d + w), p, "candidate better", 0, alpha)
    if enough and d + w < 0:
        return Verdict(d, (d - w, d + w), p, "candidate worse", 0, alpha)
    more = _more(d, v, n_base, n_cand, alpha, tau) if advise else None
    return Verdict(d, (d - w, d + w), p, "keep collecting", more, alpha)


def _more(d: float, v: float, n_base: int, n_cand: int, alpha: float, tau: float) -> int | None:
    """Labelled devices still needed (both sides, at today's split) for the interval to
    exclude 0 if the difference stays ``d`` (at least ``tau`` in size); None if beyond 10^8."""
    target = max(abs(d), tau)
    n = n_base + n_cand
    for grow in (2 ** (i / 4) for i in range(1, 120)):
        if half_width(v / grow, alpha, tau) < target:
            return max(math.ceil(n * grow) - n, 1)
    return None
