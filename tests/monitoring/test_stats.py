"""Statistics on counts agree with scipy on the raw data, or stay within their bounds."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import spatial, special
from scipy import stats as sps

from setpoint.errors import InvalidDataError, UsageError
from setpoint.monitoring import stats

discrete = st.lists(st.integers(-6, 6), min_size=1, max_size=300)
continuous = st.lists(
    st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False), min_size=1, max_size=300
)


def binned(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts and sums on the right-closed bins of ``edges`` (the summaries' layout)."""
    index = np.searchsorted(edges, values, side="left")
    return (
        np.bincount(index, minlength=edges.size + 1),
        np.bincount(index, weights=values, minlength=edges.size + 1),
    )


def close(ours: float, theirs: float) -> bool:
    return math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-12)


@settings(max_examples=300, deadline=None)
@given(x=discrete, y=discrete)
def test_on_discrete_data_every_statistic_equals_scipy(x: list[int], y: list[int]) -> None:
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    edges = np.unique(np.concatenate([xs, ys]))
    rx, sx = binned(xs, edges)
    ry, sy = binned(ys, edges)

    result = stats.ks(rx, ry)
    with np.errstate(divide="ignore"):  # scipy divides by 0 for one value vs one
        expected = sps.ks_2samp(xs, ys, method="asymp")
    assert result.statistic == float(expected.statistic)
    if not (xs.size == 1 and ys.size == 1):
        assert close(result.p_value, float(expected.pvalue))

    distance = stats.wasserstein(
        edges, rx, sx, ry, sy, minimum=float(edges[0]), maximum=float(edges[-1])
    )
    assert math.isclose(distance.distance, sps.wasserstein_distance(xs, ys), abs_tol=1e-9)
    assert distance.bound <= 1e-9

    assert close(
        stats.jensen_shannon(rx, ry), float(spatial.distance.jensenshannon(rx, ry, base=2))
    )
    p, q = rx / rx.sum(), ry / ry.sum()
    assert close(stats.total_variation(rx, ry), 0.5 * float(np.abs(p - q).sum()))

    chi = stats.chi_square(rx, ry)
    keep = (rx + ry) > 0
    if keep.sum() >= 2:
        scipy_chi = sps.chi2_contingency([rx[keep], ry[keep]], correction=False)
        assert close(chi.statistic, float(scipy_chi.statistic))
        assert close(chi.p_value, float(scipy_chi.pvalue))
        assert chi.dof == scipy_chi.dof
    else:
        assert (chi.statistic, chi.p_value, chi.dof) == (0.0, 1.0, 0)


@settings(max_examples=300, deadline=None)
@given(x=continuous, y=continuous, data=st.data())
def test_on_continuous_data_ks_and_wasserstein_stay_within_their_bounds(
    x: list[float], y: list[float], data: st.DataObject
) -> None:
    xs, ys = np.asarray(x), np.asarray(y)
    # Any edges will do for the bounds: a few reference values, and arbitrary points.
    picks = data.draw(st.lists(st.sampled_from(x), max_size=12))
    extra = data.draw(st.lists(st.floats(-1e3, 1e3, allow_nan=False), max_size=4))
    edges = np.unique(np.asarray(picks + extra, float))
    rx, sx = binned(xs, edges)
    ry, sy = binned(ys, edges)

    result = stats.ks(rx, ry)
    with np.errstate(divide="ignore"):
        true_d = float(sps.ks_2samp(xs, ys, method="asymp").statistic)
    assert result.statistic <= true_d + 1e-12
    assert true_d - result.statistic <= result.bound + 1e-12
    assert result.bound <= max(rx.max() / rx.sum(), ry.max() / ry.sum())

    both = np.concatenate([xs, ys])
    distance = stats.wasserstein(
        edges, rx, sx, ry, sy, minimum=float(both.min()), maximum=float(both.max())
    )
    true_w = sps.wasserstein_distance(xs, ys)
    tolerance = 1e-9 * max(1.0, float(np.abs(both).max()))
    assert abs(distance.distance - true_w) <= distance.bound + tolerance


@pytest.mark.parametrize("shift", [0, 1500, 2700, 3875, 6000, 40_000])
def test_large_sample_ks_p_values_are_scipys_within_1e_10(shift: int) -> None:
    # n1 = n2 = 500,000 (scipy's n = 250,000), D from 0 to 0.08: across the cut-over
    # from scipy's exact tail to the Massart bound, which applies once below 1e-10.
    ref = np.array([250_000, 250_000])
    cur = np.array([250_000 + shift, 250_000 - shift])
    result = stats.ks(ref, cur)
    assert math.isclose(result.statistic, shift / 500_000, abs_tol=1e-15)
    expected = float(sps.kstwo.sf(result.statistic, 250_000))
    assert abs(result.p_value - expected) <= 1e-10
    assert result.p_value >= expected


def test_the_ks_bound_is_tight_for_values_inside_one_bin() -> None:
    # Edges at 0 and 10 only: all of x sits below all of y inside the same bin.
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    edges = np.array([0.0, 10.0])
    result = stats.ks(binned(x, edges)[0], binned(y, edges)[0])
    assert result.statistic == 0.0
    assert result.bound == 1.0 == sps.ks_2samp(x, y).statistic


@settings(max_examples=200, deadline=None)
@given(
    ref=st.lists(st.integers(0, 50), min_size=1, max_size=20),
    data=st.data(),
)
def test_psi_is_the_symmetric_divergence_of_the_floored_proportions(
    ref: list[int], data: st.DataObject
) -> None:
    cur = data.draw(st.lists(st.integers(0, 50), min_size=len(ref), max_size=len(ref)))
    r, c = np.asarray(ref, float), np.asarray(cur, float)
    if r.sum() == 0 or c.sum() == 0:
        with pytest.raises(InvalidDataError):
            stats.psi(r, c)
        return
    p = np.maximum(r / r.sum(), 1e-4)
    q = np.maximum(c / c.sum(), 1e-4)
    expected = float(np.sum(special.rel_entr(p, q) + special.rel_entr(q, p)))
    assert math.isclose(stats.psi(r, c), expected, rel_tol=1e-9, abs_tol=1e-12)
    assert stats.psi(r, c) >= 0
    assert math.isclose(stats.psi(r, c), stats.psi(c, r), rel_tol=1e-12, abs_tol=1e-15)


def test_psi_of_identical_histograms_is_zero_even_with_empty_bins() -> None:
    assert stats.psi([5, 0, 3], [10, 0, 6]) == 0.0


@settings(max_examples=300, deadline=None)
@given(
    ref_n=st.integers(1, 10_000),
    cur_n=st.integers(1, 10_000),
    data=st.data(),
)
def test_null_rate_test_is_pearson_chi_square_on_the_two_by_two_table(
    ref_n: int, cur_n: int, data: st.DataObject
) -> None:
    ref_nulls = data.draw(st.integers(0, ref_n))
    cur_nulls = data.draw(st.integers(0, cur_n))
    p_value = stats.null_rate_test(ref_nulls, ref_n, cur_nulls, cur_n)
    assert 0.0 <= p_value <= 1.0
    pooled = ref_nulls + cur_nulls
    if pooled in (0, ref_n + cur_n):
        assert p_value == 1.0  # no variation at all: no evidence of a change
        return
    table = [[ref_nulls, ref_n - ref_nulls], [cur_nulls, cur_n - cur_nulls]]
    expected = float(sps.chi2_contingency(table, correction=False).pvalue)
    assert math.isclose(p_value, expected, rel_tol=1e-9, abs_tol=1e-15)


def test_null_rate_test_edge_cases_give_numbers_not_nan() -> None:
    assert stats.null_rate_test(0, 100, 0, 50) == 1.0
    assert stats.null_rate_test(100, 100, 50, 50) == 1.0
    assert stats.null_rate_test(0, 1000, 1000, 1000) < 1e-100
    with pytest.raises(InvalidDataError, match="empty"):
        stats.null_rate_test(0, 0, 0, 10)
    with pytest.raises(UsageError, match="between 0 and 10"):
        stats.null_rate_test(11, 10, 0, 10)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), max_size=60))
def test_benjamini_hochberg_equals_scipy(p_values: list[float]) -> None:
    ours = stats.benjamini_hochberg(p_values)
    assert ours.shape == (len(p_values),)
    if p_values:
        expected = sps.false_discovery_control(p_values, method="bh")
        np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=0)


def test_benjamini_hochberg_rejects_values_that_are_not_probabilities() -> None:
    with pytest.raises(UsageError, match=r"\[0, 1\]"):
        stats.benjamini_hochberg([0.1, 1.5])
    with pytest.raises(UsageError, match=r"\[0, 1\]"):
        stats.benjamini_hochberg([float("nan")])


@pytest.mark.parametrize(
    "fn", [stats.ks, stats.chi_square, stats.psi, stats.jensen_shannon, stats.total_variation]
)
def test_empty_and_mismatched_inputs_fail_clearly(fn: Callable[..., object]) -> None:
    with pytest.raises(InvalidDataError, match="reference sample is empty"):
        fn([0, 0], [1, 2])
    with pytest.raises(InvalidDataError, match="current sample is empty"):
        fn([1, 2], [0, 0])
    with pytest.raises(InvalidDataError, match="reference sample is empty"):
        fn([], [])
    with pytest.raises(UsageError, match="same bins"):
        fn([1, 2], [1, 2, 3])
    with pytest.raises(InvalidDataError, match="non-negative"):
        fn([1, -2], [1, 2])


def test_wasserstein_checks_its_layout() -> None:
    with pytest.raises(UsageError, match="2 edges make 3 bins"):
        stats.wasserstein([0, 1], [1, 1], [0, 1], [1, 1], [0, 1], minimum=0, maximum=1)
    with pytest.raises(UsageError, match="strictly increasing"):
        stats.wasserstein([1, 0], [1, 1, 1], [0, 1, 1], [1, 1, 1], [0, 1, 1], minimum=0, maximum=1)
    with pytest.raises(InvalidDataError, match="empty"):
        stats.wasserstein([0], [0, 0], [0, 0], [1, 0], [0, 0], minimum=0, maximum=0)


def test_identical_samples_show_no_difference() -> None:
    counts = np.array([3, 0, 7, 1])
    assert stats.ks(counts, counts * 2).statistic == 0.0
    assert stats.ks(counts, counts * 2).p_value == 1.0
    assert stats.jensen_shannon(counts, counts) == 0.0
    assert stats.total_variation(counts, counts) == 0.0
    assert stats.chi_square(counts, counts).statistic == 0.0
