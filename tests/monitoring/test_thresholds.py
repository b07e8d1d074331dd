"""Thresholds learned from the reference: above the noise of small windows, and above
the swings the reference itself has over time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import setpoint
from setpoint.errors import InvalidDataError, UsageError
from setpoint.monitoring.chunks import Period, cut
from setpoint.monitoring.comparison import Comparison
from setpoint.monitoring.drift import detect
from setpoint.monitoring.engine import Baseline, Engine, EngineSettings
from setpoint.monitoring.settings import DriftSettings
from setpoint.monitoring.summary import ReferenceSummary, summarize
from setpoint.monitoring.thresholds import learn_effect_thresholds, learn_from_time

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


# -- learned from time ---------------------------------------------------------------

REGIONS = ["north", "south", "east", "west"]


def seasonal(
    year: int, rng: np.random.Generator, *, per_month: int = 1_000, shift: float = 0.0
) -> pd.DataFrame:
    """A year of card spending whose months differ by season: the mean spend moves with
    the month, and so does the mix of regions; ``tenure`` does not move. ``shift``
    moves every month's spend (a real change). ``pred`` is a model's answer, ``y`` the
    outcome, harder to tell in some months than in others."""
    months = []
    for m in range(12):
        start = pd.Timestamp(year=year, month=m + 1, day=1)
        seconds = rng.uniform(
            0, (start + pd.offsets.MonthBegin(1) - start).total_seconds(), per_month
        )
        phase = 2 * np.pi * m / 12
        spend = rng.normal(100 + 15 * np.sin(phase) + shift, 10, per_month)
        weights = np.array([1 + 0.6 * np.cos(phase), 1 - 0.6 * np.cos(phase), 1.0, 1.0])
        noise = 4 + 4 * (1 + np.cos(phase))  # the outcome is noisier in winter
        months.append(
            pd.DataFrame(
                {
                    "when": start + pd.to_timedelta(seconds, unit="s"),
                    "spend": spend,
                    "region": rng.choice(REGIONS, per_month, p=weights / weights.sum()),
                    "tenure": rng.normal(5, 2, per_month),
                    "pred": (spend > 100).astype(np.int64),
                    "y": (spend + rng.normal(0, noise, per_month) > 100).astype(np.int64),
                }
            )
        )
    return pd.concat(months, ignore_index=True)


def alarms(comparison: Comparison, prefix: str = "drift:") -> int:
    """Chunks where a condition of that kind held."""
    return sum(any(a["key"].startswith(prefix) for a in c["alerts"]) for c in comparison.chunks)


def test_a_reference_whose_months_differ_does_not_alarm_on_months_like_its_own() -> None:
    rng = np.random.default_rng(0)
    reference = seasonal(2023, rng)
    later = pd.concat([seasonal(2024, rng), seasonal(2025, rng)], ignore_index=True)
    options = {"time_column": "when", "chunk": "1M", "prediction": "pred", "multivariate": False}
    with_time = setpoint.compare(reference, later, **options)  # type: ignore[arg-type]
    learned = with_time.reference["learned_from_time"]
    assert learned["chunks"] == 12
    assert learned["effects"]["spend"] > 0.5  # months sit ~1 reference std apart
    assert learned["effects"]["tenure"] < 0.15  # it never moved: about the static 0.1
    assert len(with_time.chunks) == 24
    assert alarms(with_time) <= 0.05 * 24
    # Without the reference's time, thresholds come from random windows only, which
    # carry no season: months like the reference's own are flagged as drift.
    without_time = setpoint.compare(reference.drop(columns="when"), later, **options)  # type: ignore[arg-type]
    assert without_time.reference["learned_from_time"] is None
    assert alarms(without_time) >= 0.5 * 24
    # A real change of the same data is still flagged, month after month.
    shifted = setpoint.compare(reference, seasonal(2024, rng, shift=45), **options)  # type: ignore[arg-type]
    assert alarms(shifted) == 12
    assert all("spend" in c["drift"]["drifted_features"] for c in shifted.chunks)


def test_performance_alerts_allow_the_swing_the_reference_had_over_time() -> None:
    rng = np.random.default_rng(1)
    reference = seasonal(2023, rng)
    later = pd.concat([seasonal(2024, rng), seasonal(2025, rng)], ignore_index=True)
    options = {
        "time_column": "when",
        "chunk": "1M",
        "target": "y",
        "prediction": "pred",
        "multivariate": False,
    }
    with_time = setpoint.compare(reference, later, **options)  # type: ignore[arg-type]
    drop = with_time.reference["learned_from_time"]["performance_drop"]["accuracy"]
    assert drop > 0.1  # winter months are that much harder than the year as a whole
    assert with_time.chunks[0]["performance"]["learned_drop"] == {"accuracy": drop}
    assert alarms(with_time, "performance:") <= 0.05 * 24
    without_time = setpoint.compare(reference.drop(columns="when"), later, **options)  # type: ignore[arg-type]
    assert alarms(without_time, "performance:") >= 4  # the hard months alarm, every year
    # A model that is wrong far more often than in any month of the reference alarms.
    broken = seasonal(2024, rng).assign(pred=lambda f: 1 - f["pred"])
    assert alarms(setpoint.compare(reference, broken, **options), "performance:") == 12  # type: ignore[arg-type]


def test_the_domain_classifier_threshold_is_learned_from_time_too() -> None:
    rng = np.random.default_rng(2)
    reference = pa.Table.from_pandas(seasonal(2023, rng, per_month=300), preserve_index=False)
    kinds = {"spend": "numeric", "region": "categorical", "tenure": "numeric"}
    summary = ReferenceSummary.build(reference, kinds)
    chunks, _ = cut(reference, time_column="when", chunk=Period(1, "M"))
    learned = learn_from_time(
        reference,
        summary,
        [c.rows for c in chunks],
        features=kinds,  # type: ignore[arg-type]
    )
    assert learned is not None
    assert learned.domain_auc is not None
    assert learned.domain_auc > 0.6  # a month is easy to tell from the rest of the year
    month = pa.Table.from_pandas(seasonal(2024, rng, per_month=300), preserve_index=False)
    june = month.slice(5 * 300, 300)
    baseline = Baseline(summary=summary, features=kinds, learned=learned)
    static = Engine(Baseline(summary=summary, features=kinds), EngineSettings(), sample=reference)
    timed = Engine(baseline, EngineSettings(), sample=reference)
    assert static.measure(june)["multivariate"]["drifted"] is True
    assert timed.measure(june)["multivariate"]["drifted"] is False


def test_without_enough_chunks_of_time_nothing_is_learned() -> None:
    rng = np.random.default_rng(3)
    reference = pa.Table.from_pandas(seasonal(2023, rng, per_month=50), preserve_index=False)
    kinds = {"spend": "numeric"}
    summary = ReferenceSummary.build(reference, kinds)
    chunks, _ = cut(reference, time_column="when", chunk=Period(1, "q"))
    # Four quarters of 150 rows: enough rows, but a window of 100 needs three chunks.
    assert learn_from_time(reference, summary, [c.rows for c in chunks]) is not None
    assert learn_from_time(reference, summary, [c.rows for c in chunks[:2]]) is None


def test_the_rest_of_a_reference_is_its_counts_minus_a_chunk() -> None:
    rng = np.random.default_rng(4)
    reference = table(rng, 5_000)
    summary = ReferenceSummary.build(reference, KINDS)
    part = summarize(reference.slice(0, 1_200), summary)
    rest = summary.without(part)
    counted = summarize(reference.slice(1_200), summary)  # the same rows counted again
    assert rest.n_rows == 3_800
    for name, ref in rest.columns.items():
        np.testing.assert_array_equal(ref.counts.counts, counted.columns[name].counts)
    spend = rest.columns["smooth"]
    values = reference.column("smooth").to_numpy()[1_200:]
    assert spend.mean == pytest.approx(values.mean())  # type: ignore[union-attr]
    assert spend.std == pytest.approx(values.std())  # type: ignore[union-attr]
    with pytest.raises(UsageError, match="not part of these"):
        _ = (
            summary.columns["smooth"].counts
            - summarize(table(rng, 9_000), summary).columns["smooth"]
        )  # type: ignore[operator]
