"""Drift of binned feature counts against a model's reference (``ensemble.drift``).

Per feature: the population stability index (PSI) and a chi-square goodness-of-fit
test of the served counts against the training bin shares (``scipy.stats.chisquare``),
corrected for sampling whole wafers: dies of one wafer share its process corner, so a
lot of a few wafers varies more than as many independent dies would. Under no drift
Pearson's X^2 is then a sum of d_i * chi2(1), with design effects d_i = 1 + m * l_i for
wafers of m dies (l_i: the reference's ``wafer_modes``); its p-value is Satterthwaite's
scaled chi-square with the same mean and variance (the second-order Rao-Scott
correction, Rao & Scott 1984), read as an F with the training wafers less one as its
denominator's degrees of freedom: the wafer-to-wafer spread is itself estimated from
those wafers, as a t-test's variance is. Without wafer ids in training, d_i = 1
(plain chi-square). The p-values of a group's features are Holm-adjusted (Holm 1979) for the
number of features.

The tests and the PSI use the inner bins: the two tail bins (outside the training
range) are merged into their neighbours, since training puts no mass there; dies out
of range are their own figure (``out_of_range_share``).

PSI = sum over bins of (a - e) * ln(a / e), a and e the served and training shares
(served counts + 0.5 each, so an empty bin stays finite). By the usual rule of thumb
below 0.1 is no shift, 0.1 to 0.25 a moderate one, above 0.25 a significant shift.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ensemble.drift import FeatureReference, Reference

#: PSI above which a lot's feature has shifted significantly (the alert's threshold).
PSI_SIGNIFICANT = 0.25
#: PSI above which a shift is moderate.
PSI_MODERATE = 0.1
#: Family-wise error rate of a lot's drift verdict (over its features).
ALPHA = 0.01


def _inner(counts: np.ndarray) -> np.ndarray:
    """(bins,) counts -> the inner bins, the tails merged into their neighbours."""
    out = np.asarray(counts[1:-1], dtype=np.float64).copy()
    out[0] += counts[0]
    out[-1] += counts[-1]
    return out


def psi(observed: np.ndarray, expected: np.ndarray) -> float:
    """Population stability index of ``observed`` counts against ``expected`` shares
    (both (bins,), no expected share zero); 0.5 is added to each observed count."""
    a = (observed + 0.5) / (observed.sum() + 0.5 * len(observed))
    e = expected / expected.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def holm(p: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979), in the order given."""
    p_arr = np.asarray(p, dtype=np.float64)
    order = np.argsort(p_arr)
    k = len(p_arr)
    adjusted = np.minimum(1.0, np.maximum.accumulate((k - np.arange(k)) * p_arr[order]))
    out = np.empty(k)
    out[order] = adjusted
    return out.tolist()


def feature_drift(
    ref: FeatureReference, counts: np.ndarray, dies_per_wafer: float
) -> dict[str, Any]:
    """One feature's PSI and design-corrected chi-square against the training histogram.

    ``counts``: (ref.bins,) served counts in the reference's bins; ``dies_per_wafer``:
    the mean dies per wafer of what is tested (1: independent dies).
    """
    from scipy.stats import chi2, chisquare
    from scipy.stats import f as f_dist

    observed, expected = _inner(np.asarray(counts)), _inner(np.asarray(ref.train, dtype=float))
    n = observed.sum()
    d = np.ones(len(observed) - 1)
    d[: len(ref.wafer_modes)] += max(dies_per_wafer, 1.0) * np.asarray(ref.wafer_modes)[: len(d)]
    scale, df = float((d**2).sum() / d.sum()), float(d.sum() ** 2 / (d**2).sum())
    if n == 0 or len(observed) < 2:
        statistic, p = 0.0, 1.0
    else:
        statistic = float(chisquare(observed, expected / expected.sum() * n).statistic)
        if ref.wafer_modes and ref.wafers > 1:
            p = float(f_dist.sf(statistic / scale / df, df, ref.wafers - 1))
        else:
            p = float(chi2.sf(statistic / scale, df))
    return {
        "feature": ref.name,
        "psi": round(psi(observed, expected), 6) if n else 0.0,
        "chi2": round(statistic, 4),
        "df": round(df, 3),
        "design_effect": round(float(d.mean()), 4),
        "p_value": p,
    }


def drift(
    reference: Reference,
    counts: np.ndarray,
    dies: int,
    wafers: int,
    out_of_range: int,
    alpha: float = ALPHA,
) -> dict[str, Any]:
    """A group's (lot, wafer, window) drift from its (k, bins) ``counts`` per feature.

    Returns the features sorted by PSI, most moved first, each with its PSI, its
    chi-square, p-value and Holm-adjusted p-value, and whether it drifted (adjusted p
    under ``alpha``); the group's share of dies out of range, its worst PSI and whether
    any feature drifted.
    """
    per_wafer = dies / wafers if wafers else 1.0
    rows = [
        feature_drift(f, np.asarray(c), per_wafer)
        for f, c in zip(reference.features, counts, strict=True)
    ]
    for row, adjusted in zip(rows, holm([r["p_value"] for r in rows]), strict=True):
        row["p_holm"] = adjusted
        row["drifted"] = adjusted < alpha
        row["level"] = (
            "significant" if row["psi"] > PSI_SIGNIFICANT
            else "moderate" if row["psi"] > PSI_MODERATE else "none"
        )  # fmt: skip
    rows.sort(key=lambda r: (-r["psi"], r["p_value"]))
    return {
        "dies": dies,
        "wafers": wafers,
        "out_of_range_dies": out_of_range,
        "out_of_range_share": out_of_range / dies if dies else None,
        "max_psi": rows[0]["psi"] if rows else 0.0,
        "drifted": any(r["drifted"] for r in rows),
        "moved_most": [r["feature"] for r in rows if r["drifted"]][:3],
        "features": rows,
        "alpha": alpha,
    }
