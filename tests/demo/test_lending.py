from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from setpoint.demo.lending import GRADES, TARGET, TIME_COLUMN, Drift, applications

SHIFT = datetime(2026, 2, 15, tzinfo=UTC)


def test_a_seed_gives_the_same_stream() -> None:
    pd.testing.assert_frame_equal(applications(500, seed=4), applications(500, seed=4))


def test_the_stream_looks_like_loan_applications() -> None:
    frame = applications(5000, seed=1)
    assert frame[TIME_COLUMN].is_monotonic_increasing
    assert set(frame["grade"]) == set(GRADES)
    assert 0.05 < frame[TARGET].mean() < 0.35
    assert 0.01 < frame["employment_years"].isna().mean() < 0.1
    assert frame["age"].between(18, 90).all()


def test_drift_changes_inputs_and_outcomes_after_it_starts() -> None:
    frame = applications(20_000, seed=2, drift=Drift(SHIFT, covariate=1.0, concept=1.0))
    before = frame[frame[TIME_COLUMN] < SHIFT]
    after = frame[frame[TIME_COLUMN] >= SHIFT]
    assert after["age"].mean() < before["age"].mean() - 4
    assert (after["channel"] == "partner").mean() > 0.3 > (before["channel"] == "partner").mean()
    assert after[TARGET].mean() > before[TARGET].mean()
