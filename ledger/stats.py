"""Statistics of the A/B report and the training tables: intervals and tests on counts.

Checked against scipy and statsmodels in ``tests/unit/test_stats.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

Z95 = NormalDist().inv_cdf(0.975)

#: Above this many discordant pairs McNemar uses the chi-square approximation.
MCNEMAR_EXACT_MAX = 1000


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n; (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's hybrid score interval of p1 - p2, built from the two Wilson intervals."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, z)
    l2, u2 = wilson_interval(k2, n2, z)
    d = p1 - p2
    return (
        d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


def two_proportion_pvalue(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test of p1 = p2."""
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (k1 / n1 - k2 / n2) / se
    return math.erfc(abs(z) / math.sqrt(2))


def mcnemar_pvalue(b: int, c: int) -> tuple[float, str]:
    """Two-sided p-value of McNemar's test on discordant pairs b and c, and the method used.

    Exact (binomial, p = 1/2) up to ``MCNEMAR_EXACT_MAX`` discordant pairs; above
    that the continuity-corrected chi-square, which agrees with it closely there.
    """
    n = b + c
    if n == 0:
        return 1.0, "exact"
    if n <= MCNEMAR_EXACT_MAX:
        tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
        return min(1.0, 2 * tail), "exact"
    stat = (abs(b - c) - 1) ** 2 / n
    return math.erfc(math.sqrt(stat / 2)), "chi-square, continuity-corrected"


def chi2_sf(x: float, df: int) -> float:
    """Survival function P(X > x) of a chi-square with an integer ``df`` >= 1 degrees of freedom.

    The regularised upper incomplete gamma Q(df/2, x/2) in closed form: for even df
    exp(-x/2) times the Poisson sum of (x/2)^j / j!, j < df/2; for odd df
    erfc(sqrt(x/2)) plus exp(-x/2) times the sum of (x/2)^(j+1/2) / Gamma(j+3/2),
    j < (df-1)/2 (Abramowitz & Stegun 26.4.4, 26.4.5). Terms in logs, so a large ``x``
    underflows to 0.0 rather than overflowing. ``x`` <= 0 gives 1.0. Raises ValueError for
    a ``df`` that is not a positive integer.
    """
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"df must be a positive integer, got {df!r}")
    if x <= 0:
        return 1.0
    y = x / 2
    if df % 2 == 0:
        total = sum(math.exp(-y + j * math.log(y) - math.lgamma(j + 1)) for j in range(df // 2))
    else:
        total = math.erfc(math.sqrt(y)) + sum(
            math.exp(-y + (j + 0.5) * math.log(y) - math.lgamma(j + 1.5))
            for j in range((df - 1) // 2)
        )
    return min(1.0, total)


def chi_square_gof(observed: Sequence[float], expected: Sequence[float]) -> tuple[float, float]:
    """Pearson's chi-square goodness of fit of ``observed`` counts against ``expected``
    (same length k >= 2, every expected count > 0): (statistic, p-value), df = k - 1."""
    if len(observed) != len(expected) or len(observed) < 2:
        raise ValueError(f"{len(observed)} observed and {len(expected)} expected counts")
    stat = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    return stat, chi2_sf(stat, len(observed) - 1)


def sample_size_per_arm(
    p1: float, p2: float, alpha: float = 0.05, power: float = 0.80, ratio: float = 1.0
) -> int:
    """Labelled devices the first arm needs to detect p1 != p2 (the second needs ``ratio`` x).

    The normal approximation of the two-sided two-proportion z-test, pooled
    variance under the null (Fleiss, without continuity correction).
    """
    if p1 == p2:
        raise ValueError("p1 and p2 must differ")
    z_a = NormalDist().inv_cdf(1 - alpha / 2)
    z_b = NormalDist().inv_cdf(power)
    p_bar = (p1 + ratio * p2) / (1 + ratio)
    null_sd = math.sqrt(p_bar * (1 - p_bar) * (1 + 1 / ratio))
    alt_sd = math.sqrt(p1 * (1 - p1) + p2 * (1 - p2) / ratio)
    return math.ceil(((z_a * null_sd + z_b * alt_sd) / (p1 - p2)) ** 2)


@dataclass(frozen=True)
class Proportion:
    """k of n, with its Wilson interval."""

    k: int
    n: int

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None

    def as_dict(self) -> dict[str, Any]:
        lo, hi = wilson_interval(self.k, self.n)
        return {"value": self.value, "k": self.k, "n": self.n, "ci95": [lo, hi] if self.n else None}


def decision_metrics(
    passed: Any, actual_pass: Any, escape_cost: float = 1.0, overkill_cost: float = 1.0
) -> dict[str, Any]:
    """How pass/fail decisions did against ground truth, in a fab's terms, with 95% intervals.

    ``passed`` and ``actual_pass`` are boolean sequences (numpy arrays or lists).
    ``fail_recall``: failing dies caught; ``escapes`` = failing dies called pass;
    ``overkill``: good dies called fail; ``escapes_ppm``: escapes per million dies
    shipped (called pass); ``cost``: mean cost per die, escape_cost per escape and
    overkill_cost per overkill, with a normal-approximation interval.
    """
    import numpy as np

    called, actual = np.asarray(passed, dtype=bool), np.asarray(actual_pass, dtype=bool)
    if called.shape != actual.shape:
        raise ValueError(f"{called.shape} decisions for {actual.shape} outcomes")
    n = len(called)
    escapes = int(np.sum(called & ~actual))
    overkill = int(np.sum(~called & actual))
    fails = int(np.sum(~actual))
    shipped = int(np.sum(called))
    cost = Cost(escapes, overkill, n, escape_cost, overkill_cost)
    ppm = Proportion(escapes, shipped).as_dict()
    ppm = {
        "value": None if ppm["value"] is None else 1e6 * ppm["value"],
        "k": escapes,
        "n": shipped,
        "ci95": None if ppm["ci95"] is None else [1e6 * v for v in ppm["ci95"]],
    }
    return {
        "n": n,
        "accuracy": Proportion(n - escapes - overkill, n).as_dict(),
        "fail_recall": Proportion(fails - escapes, fails).as_dict(),
        "escapes": escapes,
        "overkill": Proportion(overkill, n - fails).as_dict(),
        "escapes_ppm": ppm,
        "cost": cost.as_dict(),
    }


@dataclass(frozen=True)
class Cost:
    """Mean cost per die of ``escapes`` and ``overkill`` among ``n`` dies, with a 95% interval."""

    escapes: int
    overkill: int
    n: int
    escape_cost: float
    overkill_cost: float

    def as_dict(self) -> dict[str, Any]:
        if not self.n:
            return {"value": None, "ci95": None, "escape_cost": self.escape_cost,
                    "overkill_cost": self.overkill_cost}  # fmt: skip
        e, o, n = self.escapes / self.n, self.overkill / self.n, self.n
        mean = self.escape_cost * e + self.overkill_cost * o
        second = self.escape_cost**2 * e + self.overkill_cost**2 * o
        half = Z95 * math.sqrt(max(second - mean**2, 0.0) / n)
        return {
            "value": mean,
            "ci95": [max(0.0, mean - half), mean + half],
            "escape_cost": self.escape_cost,
            "overkill_cost": self.overkill_cost,
        }
