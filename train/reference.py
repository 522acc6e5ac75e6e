"""The reference distributions saved with a model (``ensemble.drift.Reference``).

Per feature: the training range, quantiles, bins cut at the training deciles (bins no
training row fell in are merged away, so a feature with few distinct values gets one
bin per value), the histogram of the training rows and of the held-out rows, and how
alike the dies of one wafer are (``wafer_modes``, from the training wafers; none
without wafer ids). That likeness is what makes a whole wafer, or a lot of a few
wafers, differ from the pooled training data by more than its die count suggests,
with no process change at all.
"""

from __future__ import annotations

import numpy as np

from ensemble.drift import QUANTILES, FeatureReference, Reference, SfTable

#: The deciles that cut a feature's training range into equal-mass bins.
DECILES = np.linspace(0.1, 0.9, 9)
#: The p-value table's statistics: from where P(F > x) is 0.9999 to where it is 1e-7.
SF_TABLE_RANGE = (0.9999, 1e-7)
SF_TABLE_POINTS = 400


def sf_table(df1: int, df2: int) -> SfTable:
    """P(F(df1, df2) > x) at ``SF_TABLE_POINTS`` statistics log-spaced over
    ``SF_TABLE_RANGE``'s quantiles (``scipy.stats.f``), log10 p to 6 decimals."""
    from scipy.stats import f

    lo, hi = (float(np.log10(f.isf(p, df1, df2))) for p in SF_TABLE_RANGE)
    x = np.logspace(lo, hi, SF_TABLE_POINTS)
    log_sf = np.round(np.log10(f.sf(x, df1, df2)), 6)
    return SfTable(df1, df2, lo, hi, tuple(float(v) for v in log_sf))


def _inner_edges(values: np.ndarray) -> np.ndarray:
    """Decile edges, without repeats and without edges leaving a bin no training row is in."""
    edges = np.unique(np.quantile(values, DECILES))
    lo, hi = float(values.min()), float(values.max())
    edges = edges[(edges > lo) & (edges <= hi)]
    while len(edges):
        counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
        empty = np.flatnonzero(counts == 0)
        if not len(empty):
            break
        edges = np.delete(edges, min(empty[0], len(edges) - 1))
    return edges


def wafer_modes(bins: np.ndarray, groups: np.ndarray, n_bins: int) -> tuple[float, ...]:
    """How much more the wafers' bin shares vary than independent dies would.

    ``bins`` (n,) bin numbers (tails merged into their neighbours, as the tests do),
    ``groups`` (n,) wafer ids. The between-wafer covariance of the bin shares by the
    method of moments, Sb = (S - P) / m0 (S the size-weighted covariance of the wafers'
    shares, P the multinomial covariance, m0 the ANOVA mean wafer size), then the
    eigenvalues of P^-1 Sb (``scipy.linalg.eigh``), clipped at 0, largest first: a lot
    of G wafers of m dies has design effects 1 + m * each (Rao & Scott 1984). Empty
    with fewer than two wafers.
    """
    from scipy.linalg import eigh

    inner = np.clip(bins, 1, n_bins - 2) - 1
    _, g = np.unique(groups, return_inverse=True)
    n, k, b = len(bins), int(g.max()) + 1 if len(g) else 0, n_bins - 2
    if k < 2 or b < 2:
        return ()
    counts = np.zeros((k, b))
    np.add.at(counts, (g, inner), 1)
    sizes = counts.sum(axis=1)
    p = counts.sum(axis=0) / n
    shares = counts / sizes[:, None]
    dev = (shares - p)[:, :-1]  # the last share is 1 minus the others
    s = (dev * sizes[:, None]).T @ dev / (k - 1)
    pr = p[:-1]
    multinomial = np.diag(pr) - np.outer(pr, pr)
    m0 = (n - (sizes**2).sum() / n) / (k - 1)
    between = (s - multinomial) / m0
    modes = eigh(between, multinomial, eigvals_only=True)
    return tuple(round(float(v), 8) for v in np.clip(modes, 0, None)[::-1])


def fit_reference(
    names: tuple[str, ...],
    train: np.ndarray,
    held_out: np.ndarray,
    groups: np.ndarray | None = None,
) -> Reference:
    """The reference of ``train`` (n, k) and ``held_out`` (m, k) rows in ``names`` order;
    ``groups``: the wafer id of each training row, if known (then the reference holds
    the drift test's p-value table, ``sf_table(1, wafers - 1)``)."""
    features = []
    wafers, wafer_dies = 0, 0.0
    if groups is not None:
        sizes = np.unique(np.asarray(groups), return_counts=True)[1]
        wafers, wafer_dies = len(sizes), float((sizes.astype(np.float64) ** 2).sum() / len(groups))
    for j, name in enumerate(names):
        values = np.asarray(train[:, j], dtype=np.float64)
        probe = FeatureReference(
            name,
            float(values.min()),
            float(values.max()),
            tuple(float(q) for q in np.quantile(values, QUANTILES)),
            tuple(float(e) for e in _inner_edges(values)),
            (),
            (),
        )
        bins = probe.bin_of(values)
        modes = () if groups is None else wafer_modes(bins, np.asarray(groups), probe.bins)
        features.append(
            FeatureReference(
                probe.name,
                probe.minimum,
                probe.maximum,
                probe.quantiles,
                probe.inner,
                tuple(int(c) for c in np.bincount(bins, minlength=probe.bins)),
                tuple(int(c) for c in probe.counts(held_out[:, j])),
                modes,
                wafers,
                round(wafer_dies, 4),
            )
        )
    # The drift test's p-value (ledger.drift_stats): F(1, training wafers - 1).
    return Reference(tuple(features), sf_table(1, wafers - 1) if wafers > 1 else None)
