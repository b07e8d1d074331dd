"""The domain classifier: silent on the same distribution, sees a joint shift."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from setpoint.errors import InvalidDataError, UsageError
from setpoint.monitoring.multivariate import MAX_ROWS, auc_with_se, domain_classifier

KINDS = {"a": "numeric", "b": "numeric", "grade": "categorical"}


def frame(rng: np.random.Generator, n: int, correlation: float) -> pa.Table:
    """Two standard normal features with the given correlation and a categorical one:
    every marginal is the same whatever the correlation."""
    a = rng.normal(size=n)
    b = correlation * a + np.sqrt(1 - correlation**2) * rng.normal(size=n)
    grade = rng.choice(["A", "B", "C"], size=n, p=[0.5, 0.3, 0.2])
    b[rng.random(n) < 0.05] = np.nan  # missing values are part of real data
    return pa.table({"a": a, "b": b, "grade": grade})


def test_the_same_distribution_is_not_drift() -> None:
    rng = np.random.default_rng(1)
    result = domain_classifier(frame(rng, 20_000, 0.8), frame(rng, 20_000, 0.8), KINDS)
    assert 0.45 < result.auc < 0.55
    assert not result.drifted
    assert result.n_reference == result.n_current == 5_000


def test_a_joint_shift_with_unchanged_marginals_is_caught() -> None:
    rng = np.random.default_rng(2)
    reference, current = frame(rng, 20_000, 0.8), frame(rng, 20_000, -0.8)
    # Each feature on its own looks the same (per-feature tests see nothing)...
    for name in ("a", "b"):
        ref = reference.column(name).to_numpy(zero_copy_only=False)
        cur = current.column(name).to_numpy(zero_copy_only=False)
        assert abs(np.nanmean(ref) - np.nanmean(cur)) < 0.05
        assert abs(np.nanstd(ref) - np.nanstd(cur)) < 0.05
    # ...but together they have moved.
    result = domain_classifier(reference, current, KINDS)
    assert result.auc > 0.8
    assert result.drifted


def test_a_column_the_window_lacks_counts_as_missing() -> None:
    rng = np.random.default_rng(3)
    reference = frame(rng, 2_000, 0.5)
    current = frame(rng, 2_000, 0.5).drop(["grade"])
    result = domain_classifier(reference, current, KINDS)
    assert result.drifted  # a feature that stopped arriving is a change


def test_too_few_rows_is_a_clear_error() -> None:
    rng = np.random.default_rng(4)
    with pytest.raises(InvalidDataError, match="at least 50 rows on each side"):
        domain_classifier(frame(rng, 10, 0.0), frame(rng, 1_000, 0.0), KINDS)
    with pytest.raises(InvalidDataError, match="at least one feature"):
        domain_classifier(frame(rng, 100, 0.0), frame(rng, 100, 0.0), {})
    with pytest.raises(UsageError, match="2 to 5 folds"):
        domain_classifier(frame(rng, 100, 0.0), frame(rng, 100, 0.0), KINDS, folds=10)
    with pytest.raises(UsageError, match="50 to 5,000 rows a side"):
        domain_classifier(frame(rng, 100, 0.0), frame(rng, 100, 0.0), KINDS, max_rows=10**6)


def test_a_feature_with_hundreds_of_categories_is_taken_too() -> None:
    rng = np.random.default_rng(5)
    kinds = {"a": "numeric", "zip": "categorical"}

    def table(n: int, shift: float) -> pa.Table:
        codes = rng.zipf(1.3, n) % 400 + (shift * 50)
        return pa.table({"a": rng.normal(size=n), "zip": [f"z{int(c)}" for c in codes]})

    assert not domain_classifier(table(5_000, 0), table(5_000, 0), kinds).drifted
    assert domain_classifier(table(5_000, 0), table(5_000, 1), kinds).drifted


def test_the_auc_comes_with_its_standard_error_and_noise_is_not_drift() -> None:
    """On small samples of one distribution the AUC can cross the threshold by chance;
    it is called drift only when it is also more than two standard errors above 0.5."""
    crossed_by_chance = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        result = domain_classifier(frame(rng, 60, 0.5), frame(rng, 60, 0.5), KINDS)
        assert result.to_dict()["auc_se"] == result.auc_se > 0
        significant = result.auc - 0.5 > 2 * result.auc_se
        assert result.drifted == (result.auc >= result.threshold and significant)
        crossed_by_chance += result.auc >= result.threshold and not significant
    assert crossed_by_chance >= 1


def test_the_sample_is_bounded_whatever_the_size() -> None:
    rng = np.random.default_rng(6)
    result = domain_classifier(frame(rng, 3 * MAX_ROWS, 0.0), frame(rng, 200, 0.0), KINDS)
    assert result.n_reference == result.n_current == 200
    big = domain_classifier(frame(rng, 3 * MAX_ROWS, 0.0), frame(rng, 3 * MAX_ROWS, 0.9), KINDS)
    assert big.n_reference == big.n_current == MAX_ROWS
    assert big.drifted


def delong_by_pairs(positives: np.ndarray, negatives: np.ndarray) -> tuple[float, float]:
    """DeLong's variance from its definition, every pair compared (quadratic)."""
    wins = (positives[:, None] > negatives[None, :]) + 0.5 * (
        positives[:, None] == negatives[None, :]
    )
    v10, v01 = wins.mean(axis=1), wins.mean(axis=0)
    variance = v10.var(ddof=1) / len(positives) + v01.var(ddof=1) / len(negatives)
    return float(wins.mean()), math.sqrt(variance)


scores = st.lists(st.integers(0, 12).map(lambda v: v / 4), min_size=2, max_size=60)


@given(scores, scores)
def test_auc_and_its_standard_error_equal_the_definitions(
    pos: list[float], neg: list[float]
) -> None:
    positives, negatives = np.array(pos), np.array(neg)
    auc, se = auc_with_se(positives, negatives)
    truth = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    if len(set(pos) | set(neg)) > 1:
        assert auc == pytest.approx(roc_auc_score(truth, np.r_[positives, negatives]), abs=1e-12)
    expected_auc, expected_se = delong_by_pairs(positives, negatives)
    assert auc == pytest.approx(expected_auc, abs=1e-12)
    assert se == pytest.approx(expected_se, abs=1e-12)
