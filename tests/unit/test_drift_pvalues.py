"""The drift test's p-values at serve time (no scipy) against scipy's."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from scipy.stats import chi2
from scipy.stats import f as f_dist

from ensemble.drift import FeatureReference, Reference, SfTable
from ledger.drift_stats import drift, feature_drift
from train.reference import SF_TABLE_RANGE, sf_table

#: Serving's p-values match scipy's to this relative error from 1e-6 to 1.
RTOL = 0.005


@pytest.mark.parametrize("df2", [1, 2, 5, 12, 28, 60, 200, 1000])
def test_the_table_gives_scipys_p_values_from_one_to_one_in_a_million(df2: int) -> None:
    table = SfTable.from_dict(json.loads(json.dumps(sf_table(1, df2).to_dict())))
    for p in np.logspace(-6, np.log10(SF_TABLE_RANGE[0]), 400):
        x = float(f_dist.isf(p, 1, df2))
        got, below = table.sf(x)
        assert not below and got == pytest.approx(p, rel=RTOL), (df2, p, x)
    # Between the grid's points as well as at them: random statistics over the range.
    for x in np.random.default_rng(df2).uniform(0.0, float(f_dist.isf(1e-6, 1, df2)), 300):
        assert table.sf(x)[0] == pytest.approx(float(f_dist.sf(x, 1, df2)), rel=RTOL, abs=1e-3)


def test_beyond_the_table_p_is_a_bound_and_below_it_about_one() -> None:
    table = sf_table(1, 20)
    assert table.p_min == pytest.approx(1e-7, rel=RTOL)
    assert table.sf(1e6) == (table.p_min, True)
    assert table.sf(0.0) == (1.0, False) and table.sf(-2.0) == (1.0, False)
    assert table.sf(1e-9)[0] == pytest.approx(1.0, abs=1e-3)
    # Monotone: a larger statistic never has a larger p-value.
    ps = [table.sf(x)[0] for x in np.logspace(-4, 3, 2000)]
    assert all(a >= b for a, b in itertools.pairwise(ps))


def _feature(modes: tuple[float, ...], wafers: int) -> FeatureReference:
    train = (0, 300, 250, 250, 200, 0)
    return FeatureReference("f", 0.0, 1.0, (0.0,) * 11, (0.25, 0.5, 0.75), train, train,
                            modes, wafers, 150.0)  # fmt: skip


def test_a_wafer_test_uses_f_one_and_training_wafers_less_one_as_scipy_does() -> None:
    ref = _feature((0.02, 0.005, 0.0), 25)
    counts = np.array([3, 120, 70, 60, 45, 2])
    row = feature_drift(ref, counts, 100.0, sf_table(1, 24))
    observed = np.array([123.0, 70, 60, 47])
    expected = np.array([300.0, 250, 250, 200]) / 1000 * 300
    n_ratio, modes = 300 / 1000, np.array([0.02, 0.005, 0.0])
    d = (1 + 100 * modes) + n_ratio * (1 + 150 * modes)
    x2 = float(((observed - expected) ** 2 / expected).sum())
    assert row["chi2"] == pytest.approx(x2, abs=1e-4) and row["df"] == [1, 24]
    assert row["p_value"] == pytest.approx(float(f_dist.sf(x2 / d.sum(), 1, 24)), rel=RTOL)
    assert not row["p_below"]


def test_without_training_wafers_the_test_is_a_chi_square_with_bins_less_one_df() -> None:
    ref = _feature((), 0)
    counts = np.array([0, 90, 75, 80, 55, 0])
    row = feature_drift(ref, counts, 1.0, None)
    x2 = float(
        ((np.array([90, 75, 80, 55]) - np.array([0.3, 0.25, 0.25, 0.2]) * 300) ** 2
         / (np.array([0.3, 0.25, 0.25, 0.2]) * 300)).sum()
    )  # fmt: skip
    assert row["df"] == 3
    assert row["p_value"] == pytest.approx(float(chi2.sf(x2 / (1 + 300 / 1000), 3)), rel=1e-9)


def test_a_reference_without_a_table_reports_no_p_value_rather_than_failing() -> None:
    reference = Reference((_feature((0.02, 0.005, 0.0), 25),), None)
    out = drift(reference, np.array([[3, 120, 70, 60, 45, 2]]), 300, 3, 0)
    row = out["features"][0]
    assert row["p_value"] is None and row["p_holm"] is None and not row["drifted"]
    assert not out["tested"] and not out["drifted"] and row["psi"] > 0


def test_a_far_drifted_feature_reports_the_tables_bound() -> None:
    reference = Reference((_feature((0.02, 0.005, 0.0), 25),), sf_table(1, 24))
    out = drift(reference, np.array([[0, 3000, 0, 0, 0, 0]]), 3000, 30, 0)
    row = out["features"][0]
    assert row["p_below"] and row["p_value"] == reference.sf_table.p_min  # type: ignore[union-attr]
    assert row["drifted"] and out["tested"] and out["moved_most"] == ["f"]


def test_a_feature_of_one_bin_has_no_test_and_nothing_that_is_not_a_number() -> None:
    """A constant feature (or a tester's test no training part ran) has one inner bin: the
    A/B report's drift section answered 500 on an STDF-trained model (NaN in its JSON)."""
    ref = FeatureReference("f", 0.0, 0.0, (0.0,) * 11, (0.0, 0.0, 0.0), (0, 40, 0), (0, 40, 0),
                           (), 4, 10.0)  # fmt: skip
    row = feature_drift(ref, np.array([1, 30, 2]), 10.0, None)
    json.dumps(row, allow_nan=False)  # raises on NaN or inf
    assert row["df"] == 0 and row["p_value"] == 1.0 and row["design_effect"] == 1.0
