"""Drift decisions with default settings: exact at scale, quiet on noise, and sensitive.

The data is generated: 25 features of varied shapes (normal, skewed, heavy-tailed,
bounded, discrete, with and without missing values, categorical of several sizes).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest

from setpoint.errors import UsageError
from setpoint.monitoring.drift import detect
from setpoint.monitoring.settings import DriftSettings
from setpoint.monitoring.summary import ReferenceSummary, summarize

Column = Callable[[np.random.Generator, int], np.ndarray]


def _with_nulls(values: np.ndarray, rng: np.random.Generator, share: float) -> np.ndarray:
    out = values.astype(np.float64)
    out[rng.random(len(out)) < share] = np.nan
    return out


def _categories(k: int, skew: float) -> Column:
    names = [f"c{i}" for i in range(k)]
    weights = np.arange(1, k + 1, dtype=np.float64) ** -skew
    return lambda rng, n: rng.choice(names, size=n, p=weights / weights.sum())


# Twenty numeric and five categorical features as they come.
FEATURES: dict[str, Column] = {
    "normal": lambda rng, n: rng.normal(50, 10, n),
    "lognormal": lambda rng, n: rng.lognormal(10, 0.8, n),
    "uniform": lambda rng, n: rng.uniform(-1, 1, n),
    "exponential": lambda rng, n: rng.exponential(3.0, n),
    "student": lambda rng, n: rng.standard_t(3, n),
    "beta": lambda rng, n: rng.beta(2, 5, n),
    "gamma": lambda rng, n: rng.gamma(2.0, 2.0, n),
    "poisson": lambda rng, n: rng.poisson(4, n).astype(np.float64),
    "binomial": lambda rng, n: rng.binomial(30, 0.2, n).astype(np.float64),
    "dice": lambda rng, n: rng.integers(1, 7, n).astype(np.float64),
    "flag": lambda rng, n: (rng.random(n) < 0.3).astype(np.float64),
    "bimodal": lambda rng, n: np.where(
        rng.random(n) < 0.5, rng.normal(-2, 1, n), rng.normal(3, 0.5, n)
    ),
    "with_nulls": lambda rng, n: _with_nulls(rng.normal(0, 1, n), rng, 0.1),
    "income": lambda rng, n: _with_nulls(rng.lognormal(11, 0.5, n), rng, 0.02),
    "laplace": lambda rng, n: rng.laplace(0, 2, n),
    "weibull": lambda rng, n: rng.weibull(1.5, n),
    "big": lambda rng, n: rng.normal(1e6, 1e5, n),
    "tiny": lambda rng, n: rng.normal(1e-6, 1e-7, n),
    "rounded": lambda rng, n: np.round(rng.normal(100, 15, n)),
    "zero_inflated": lambda rng, n: np.where(rng.random(n) < 0.6, 0.0, rng.exponential(5, n)),
    "grade": _categories(7, 1.0),
    "purpose": _categories(12, 0.5),
    "state": _categories(50, 1.2),
    "channel": _categories(3, 0.0),
    "binary_text": _categories(2, 0.3),
}
KINDS = {
    name: (
        "categorical"
        if name in {"grade", "purpose", "state", "channel", "binary_text"}
        else "numeric"
    )
    for name in FEATURES
}


def table(rng: np.random.Generator, n: int, changes: dict[str, Column] | None = None) -> pa.Table:
    columns = {**FEATURES, **(changes or {})}
    return pa.table({name: make(rng, n) for name, make in columns.items()})


def _new_category(share: float, base: Column) -> Column:
    def make(rng: np.random.Generator, n: int) -> np.ndarray:
        values = base(rng, n).astype(object)
        values[rng.random(n) < share] = "brand_new"
        return values

    return make


# Five clearly material changes, one of each kind of drift.
SHIFTED: dict[str, Column] = {
    "normal": lambda rng, n: rng.normal(55, 10, n),  # mean + 0.5 sd
    "lognormal": lambda rng, n: rng.lognormal(10, 1.2, n),  # spread x1.5
    "poisson": lambda rng, n: rng.poisson(6, n).astype(np.float64),  # discrete shift
    "income": lambda rng, n: _with_nulls(rng.lognormal(11, 0.5, n), rng, 0.15),  # nulls 2% -> 15%
    "purpose": _new_category(0.1, _categories(12, 0.5)),  # a new category at 10%
}


@pytest.mark.slow
@pytest.mark.parametrize("rows", [100_000, 1_000_000])
def test_at_scale_exactly_the_shifted_features_are_flagged(rows: int) -> None:
    rng = np.random.default_rng(rows)
    reference = ReferenceSummary.build(table(rng, rows), KINDS)
    report = detect(reference, summarize(table(rng, rows, SHIFTED), reference))
    assert sorted(report.drifted_features) == sorted(SHIFTED), {
        n: (f.effect, f.p_adjusted, f.reasons) for n, f in report.features.items()
    }
    assert report.drift_share == pytest.approx(5 / 25)
    assert not report.drifted  # a fifth of the features is not a drifted dataset


@pytest.mark.slow
def test_windows_from_the_reference_distribution_rarely_alert() -> None:
    rng = np.random.default_rng(11)
    reference = ReferenceSummary.build(table(rng, 200_000), KINDS)
    alerts = 0
    for _ in range(200):
        report = detect(reference, summarize(table(rng, 1_000), reference))
        alerts += bool(report.drifted_features)
    assert alerts / 200 <= 0.05, alerts


def _shifted_mean(sd_shift: float) -> Column:
    return lambda rng, n: rng.normal(50 + 10 * sd_shift, 10, n)


@pytest.mark.parametrize(
    ("feature", "change"),
    [
        ("normal", _shifted_mean(0.2)),  # a mean shift of 0.2 standard deviations
        ("uniform", lambda rng, n: _with_nulls(rng.uniform(-1, 1, n), rng, 0.10)),  # 0% -> 10%
        ("grade", _new_category(0.05, _categories(7, 1.0))),  # a new category at 5%
    ],
    ids=["mean_shift_0.2sd", "null_rate_0_to_10pct", "new_category_5pct"],
)
def test_small_real_changes_are_detected_in_windows_of_10000(feature: str, change: Column) -> None:
    rng = np.random.default_rng(5)
    reference = ReferenceSummary.build(table(rng, 100_000), KINDS)
    report = detect(reference, summarize(table(rng, 10_000, {feature: change}), reference))
    assert report.drifted_features == [feature], {
        n: (f.effect, f.p_adjusted, f.reasons)
        for n, f in report.features.items()
        if f.drifted or n == feature
    }


def test_a_window_too_small_is_described_but_not_judged() -> None:
    rng = np.random.default_rng(6)
    reference = ReferenceSummary.build(table(rng, 5_000), KINDS)
    report = detect(reference, summarize(table(rng, 50, SHIFTED), reference))
    assert not report.judged
    assert report.drifted_features == []
    assert report.features["normal"].statistic > 0  # still described


def test_a_learned_threshold_overrides_the_default_for_its_feature() -> None:
    rng = np.random.default_rng(8)
    reference = ReferenceSummary.build(table(rng, 50_000), KINDS)
    window = summarize(table(rng, 10_000, {"normal": _shifted_mean(0.3)}), reference)
    assert detect(reference, window).drifted_features == ["normal"]
    relaxed = DriftSettings(effects={"normal": 0.5})
    assert detect(reference, window, relaxed).drifted_features == []


def test_settings_are_checked() -> None:
    with pytest.raises(UsageError, match="alpha"):
        DriftSettings(alpha=0)
    with pytest.raises(UsageError, match=r"alpah: unknown key; did you mean .alpha.\?"):
        DriftSettings.from_dict({"alpah": 0.1})
    settings = DriftSettings(numeric_effect=0.2, effects={"x": 0.3})
    assert DriftSettings.from_dict(settings.to_dict()) == settings


def test_the_report_is_plain_json() -> None:
    import json

    rng = np.random.default_rng(9)
    reference = ReferenceSummary.build(table(rng, 5_000), KINDS)
    report = detect(reference, summarize(table(rng, 2_000, SHIFTED), reference))
    document = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert set(document["drifted_features"]) <= set(FEATURES)
    assert document["features"]["grade"]["histogram"]["categories"][-1] == "(other)"
    assert len(document["features"]["normal"]["histogram"]["reference"]) >= 10
