"""Thresholds learned from the reference: above the noise of small windows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from setpoint.errors import InvalidDataError, UsageError
from setpoint.monitoring.drift import DriftSettings, detect
from setpoint.monitoring.summary import ReferenceSummary, summarize
from setpoint.monitoring.thresholds import learn_effect_thresholds

KINDS = {"smooth": "numeric", "state": "categorical"}
STATES = [f"s{i}" for i in range(60)]


def table(rng: np.random.Generator, n: int) -> pa.Table:
    weights = np.arange(1, 61, dtype=np.float64) ** -0.8
    return pa.table(
        {
            "smooth": rng.normal(0, 1, n),
            "state": rng.choice(STATES, size=n, p=weights / weights.sum()),
        }
    )


def test_small_windows_of_many_categories_get_a_higher_threshold() -> None:
    rng = np.random.default_rng(1)
    reference = table(rng, 40_000)
    small = learn_effect_thresholds(reference, KINDS, window_rows=200)
    large = learn_effect_thresholds(reference, KINDS, window_rows=10_000)
    static = DriftSettings()
    # 60 categories in 200 rows scatter well past the static 0.1 by chance alone...
    assert small["state"] > static.categorical_effect * 1.5
    # ...while in 10,000 rows the static threshold already sits above the noise.
    assert large["state"] == static.categorical_effect
    assert large["smooth"] == static.numeric_effect


def test_learned_thresholds_silence_noise_that_static_ones_would_flag() -> None:
    rng = np.random.default_rng(2)
    reference = table(rng, 40_000)
    summary = ReferenceSummary.build(reference, KINDS)
    learned = DriftSettings(
        alpha=0.5,  # a lax test, so that the effect threshold decides
        effects=learn_effect_thresholds(reference, KINDS, window_rows=200),
    )
    static = DriftSettings(alpha=0.5)
    windows = [summarize(table(rng, 200), summary) for _ in range(100)]
    flagged_static = sum("state" in detect(summary, w, static).drifted_features for w in windows)
    flagged_learned = sum("state" in detect(summary, w, learned).drifted_features for w in windows)
    assert flagged_learned <= 3 < flagged_static


def test_bad_arguments_are_named() -> None:
    rng = np.random.default_rng(3)
    with pytest.raises(InvalidDataError, match="at least 200 reference rows"):
        learn_effect_thresholds(table(rng, 50), KINDS, window_rows=10)
    with pytest.raises(UsageError, match="window_rows"):
        learn_effect_thresholds(table(rng, 500), KINDS, window_rows=0)
