"""Drift of binned feature counts against a model's reference (``ensemble.drift``).

Per feature: the population stability index (PSI) and a two-sample chi-square test of
the served counts against the training counts, corrected for sampling whole wafers:
dies of one wafer share its process corner, so a lot of a few wafers varies more than
as many independent dies would, and so does the training histogram itself. Under no
drift Pearson's X^2 (served counts against the training shares) is then about a sum of
d_i * chi2(1), with d_i = (1 + m * l_i) + (n / N) * (1 + m_t * l_i): served wafers of m
dies, n served and N training rows, training wafers of m_t dies (``wafer_dies``) and l_i
the reference's ``wafer_modes`` (Rao & Scott 1984). Its p-value is bounded from above
as X^2 / sum(d) against one degree of freedom: for weights summing to one, a weighted
sum of chi2(1) variables exceeds t no more often than one chi2(1) does, whenever that
chance is under 0.21 (Szekely & Bakirov 2003). The d_i being estimated from the training
wafers, the chi2(1) is widened to F(1, training wafers - 1), as a t-test's is; serving
reads its p-value from the table computed with scipy at training (``SfTable``), and says
when it is below the table's smallest ("p_below"). The bound is deliberately
conservative: the Satterthwaite df the first version used let 4% of unshifted lots
alarm at alpha 0.01 (bench/drift.py). Without wafer ids in training, d_i = 1 + n / N
and X^2 / (1 + n / N) is chi-square with bins - 1 df (``ledger.stats.chi2_sf``). The
p-values of a group's features are Holm-adjusted (Holm 1979) for the number of features.

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

from ensemble.drift import FeatureReference, Reference, SfTable
from ledger.stats import chi2_sf

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
    ref: FeatureReference, counts: np.ndarray, dies_per_wafer: float, table: SfTable | None
) -> dict[str, Any]:
    """One feature's PSI and wafer-corrected two-sample chi-square against the training
    histogram.

    ``counts``: (ref.bins,) served counts in the reference's bins; ``dies_per_wafer``:
    the mean dies per wafer of what is tested (1: independent dies); ``table``: the
    reference's p-value table (needed when the feature has ``wafer_modes``; without it
    the p-value is None, a reference saved before the table existed).
    """
    observed, expected = _inner(np.asarray(counts)), _inner(np.asarray(ref.train, dtype=float))
    n, big_n = float(observed.sum()), float(expected.sum())
    modes = np.zeros(len(observed) - 1)
    modes[: len(ref.wafer_modes)] = np.asarray(ref.wafer_modes)[: len(modes)]
    d = (1 + max(dies_per_wafer, 1.0) * modes) + n / big_n * (1 + ref.wafer_dies * modes)
    wafer_test = bool(ref.wafer_modes) and ref.wafers > 1
    statistic, p, below = 0.0, 1.0, False
    p_value: float | None
    if n and len(observed) >= 2:
        e = expected / big_n * n
        statistic = float(((observed - e) ** 2 / e).sum())
        if not wafer_test:
            p = chi2_sf(statistic / float(d[0]), len(observed) - 1)
        elif table is not None:
            p, below = table.sf(statistic / float(d.sum()))
    p_value = None if wafer_test and table is None else p
    return {
        "feature": ref.name,
        "psi": round(psi(observed, expected), 6) if n else 0.0,
        "chi2": round(statistic, 4),
        "df": [1, ref.wafers - 1] if wafer_test else len(observed) - 1,
        # One inner bin (a constant feature, or a tester's test no training part ran)
        # leaves no mode: nothing to correct, and an empty mean would be NaN in the JSON.
        "design_effect": round(float(d.mean()), 4) if d.size else 1.0,
        "p_value": p_value,
        "p_below": below,
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
    chi-square, p-value (``p_below``: the true one is smaller) and Holm-adjusted p-value,
    and whether it drifted (adjusted p under ``alpha``); the group's share of dies out of
    range, its worst PSI and whether any feature drifted. A reference with wafer modes
    but no p-value table (saved before tables) gives p-values of None, tested: False.
    """
    per_wafer = dies / wafers if wafers else 1.0
    table = reference.sf_table
    rows = [
        feature_drift(f, np.asarray(c), per_wafer, table)
        for f, c in zip(reference.features, counts, strict=True)
    ]
    tested = [r for r in rows if r["p_value"] is not None]
    for row in rows:
        row["p_holm"], row["drifted"] = None, False
    for row, adjusted in zip(tested, holm([r["p_value"] for r in tested]), strict=True):
        row["p_holm"] = adjusted
        row["drifted"] = adjusted < alpha
        row["level"] = (
            "significant" if row["psi"] > PSI_SIGNIFICANT
            else "moderate" if row["psi"] > PSI_MODERATE else "none"
        )  # fmt: skip
    rows.sort(key=lambda r: (-r["psi"], 1.0 if r["p_value"] is None else r["p_value"]))
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
        "tested": len(tested) == len(rows),
    }
