"""The report's statistics against scipy and statsmodels on fixed counts."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
    samplesize_proportions_2indep_onetail,
)

from ledger.stats import (
    MCNEMAR_EXACT_MAX,
    chi2_sf,
    chi_square_gof,
    mcnemar_pvalue,
    newcombe_interval,
    sample_size_per_arm,
    two_proportion_pvalue,
    wilson_interval,
)

COUNTS = [(87, 100), (0, 12), (12, 12), (931, 1000), (3, 7)]


@pytest.mark.parametrize(("k", "n"), COUNTS)
def test_wilson_matches_statsmodels(k: int, n: int) -> None:
    assert wilson_interval(k, n) == pytest.approx(proportion_confint(k, n, method="wilson"))


def test_wilson_without_data_is_uninformative() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(("k1", "n1", "k2", "n2"), [(870, 1000, 80, 100), (93, 100, 91, 100)])
def test_newcombe_matches_statsmodels(k1: int, n1: int, k2: int, n2: int) -> None:
    expected = confint_proportions_2indep(k1, n1, k2, n2, method="newcomb", compare="diff")
    assert newcombe_interval(k1, n1, k2, n2) == pytest.approx(expected)


@pytest.mark.parametrize(("k1", "n1", "k2", "n2"), [(870, 1000, 80, 100), (50, 60, 20, 40)])
def test_two_proportion_pvalue_matches_statsmodels(k1: int, n1: int, k2: int, n2: int) -> None:
    _, expected = proportions_ztest([k1, k2], [n1, n2])
    assert two_proportion_pvalue(k1, n1, k2, n2) == pytest.approx(expected)


@pytest.mark.parametrize(("b", "c"), [(12, 4), (0, 5), (30, 30), (400, 330)])
def test_mcnemar_exact_matches_binomial_test(b: int, c: int) -> None:
    p, method = mcnemar_pvalue(b, c)
    assert method == "exact"
    assert p == pytest.approx(binomtest(b, b + c, 0.5).pvalue)
    assert p == pytest.approx(mcnemar([[0, b], [c, 0]], exact=True).pvalue)


def test_mcnemar_large_counts_use_corrected_chi_square() -> None:
    b, c = 700, 600
    assert b + c > MCNEMAR_EXACT_MAX
    p, method = mcnemar_pvalue(b, c)
    assert method.startswith("chi-square")
    assert p == pytest.approx(mcnemar([[0, b], [c, 0]], exact=False, correction=True).pvalue)
    assert p == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=0.02)


@pytest.mark.parametrize(
    ("p1", "p2", "ratio"), [(0.91, 0.93, 1.0), (0.91, 0.93, 1 / 9), (0.6, 0.5, 2)]
)
def test_sample_size_matches_statsmodels(p1: float, p2: float, ratio: float) -> None:
    expected = samplesize_proportions_2indep_onetail(
        p1 - p2, p2, 0.8, ratio=ratio, alpha=0.05, alternative="two-sided"
    )
    assert sample_size_per_arm(p1, p2, ratio=ratio) == int(-(-expected // 1))


def test_sample_size_needs_a_difference() -> None:
    with pytest.raises(ValueError, match="differ"):
        sample_size_per_arm(0.9, 0.9)


#: From far in the body to far in the tail: p-values from about 1 down to below 1e-300.
CHI2_POINTS = [
    0.0,
    1e-8,
    1e-3,
    0.05,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    37.5,
    60.0,
    150.0,
    500.0,
    1400.0,
]


@pytest.mark.parametrize("df", range(1, 11))
def test_chi2_sf_matches_scipy(df: int) -> None:
    from scipy.stats import chi2

    for x in CHI2_POINTS:
        expected = float(chi2.sf(x, df))
        # Relative to the p-value itself, down to the smallest normal doubles.
        assert chi2_sf(x, df) == pytest.approx(expected, rel=1e-9, abs=1e-300), (x, df)


def test_chi2_sf_of_a_negative_statistic_is_one_and_df_must_be_a_positive_integer() -> None:
    assert chi2_sf(-3.0, 4) == 1.0
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="df must be a positive integer"):
            chi2_sf(1.0, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("observed", "shares"),
    [([500, 500], [1, 1]), ([900, 100], [1, 1]), ([48, 31, 21], [0.5, 0.3, 0.2]),
     ([10, 0, 7, 3, 5], [1, 1, 1, 1, 1]), ([1800, 100], [0.9, 0.1])],
)  # fmt: skip
def test_chi_square_gof_matches_scipy(observed: list[int], shares: list[float]) -> None:
    from scipy.stats import chisquare

    expected = [sum(observed) * s / sum(shares) for s in shares]
    stat, p = chi_square_gof(observed, expected)
    want = chisquare(observed, expected)
    assert stat == pytest.approx(want.statistic, rel=1e-12)
    assert p == pytest.approx(want.pvalue, rel=1e-9, abs=1e-300)


def test_chi_square_gof_needs_matching_counts() -> None:
    with pytest.raises(ValueError, match="1 observed and 1 expected"):
        chi_square_gof([3], [3.0])
    with pytest.raises(ValueError, match="2 observed and 3 expected"):
        chi_square_gof([3, 4], [3.0, 2.0, 2.0])
