"""The domain classifier: silent on the same distribution, sees a joint shift."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from setpoint.errors import InvalidDataError
from setpoint.monitoring.multivariate import domain_classifier

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


def test_a_feature_with_hundreds_of_categories_is_taken_too() -> None:
    rng = np.random.default_rng(5)
    kinds = {"a": "numeric", "zip": "categorical"}

    def table(n: int, shift: float) -> pa.Table:
        codes = rng.zipf(1.3, n) % 400 + (shift * 50)
        return pa.table({"a": rng.normal(size=n), "zip": [f"z{int(c)}" for c in codes]})

    assert not domain_classifier(table(5_000, 0), table(5_000, 0), kinds).drifted
    assert domain_classifier(table(5_000, 0), table(5_000, 1), kinds).drifted
