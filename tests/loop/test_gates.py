from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression, LogisticRegression

from setpoint.errors import UsageError
from setpoint.loop import bootstrap
from setpoint.loop.gates import (
    Check,
    GateConfig,
    GateReport,
    MetricGate,
    evaluate_gates,
    measure_cost,
)
from setpoint.models import flavors
from setpoint.models.evaluation import METRICS, evaluate

CLASSES = [0, 1]


def scored(y: np.ndarray, signal: np.ndarray, noise: float, seed: int) -> tuple[Any, Any]:
    """Answers of a classifier whose score is the signal plus noise of this size."""
    rng = np.random.default_rng(seed)
    logit = signal + rng.normal(0, noise, len(y))
    p1 = 1 / (1 + np.exp(-logit))
    return (p1 > 0.5).astype(int), np.column_stack([1 - p1, p1])


def binary(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    signal = rng.normal(0, 1.5, n)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-signal))).astype(int)
    return y, signal


def judge(config: GateConfig, y: Any, champion: Any, candidate: Any, **kw: Any) -> GateReport:
    return evaluate_gates(
        config,
        task="classification",
        classes=CLASSES,
        y_true=y,
        champion=champion,
        candidate=candidate,
        **kw,
    )


def check(report: GateReport, name: str) -> Check:
    (found,) = [c for c in report.checks if c.name == name]
    return found


# --- the metric gate ----------------------------------------------------------------


def test_a_clearly_better_candidate_passes() -> None:
    y, signal = binary(2000)
    report = judge(GateConfig(), y, scored(y, signal, 2.0, 1), scored(y, signal, 0.3, 2))
    assert report.passed, report.reasons
    assert report.reasons == []
    auc = check(report, "roc_auc")
    assert auc.value is not None
    assert auc.interval is not None
    assert auc.value > 0.05
    assert 0 < auc.interval[0] <= auc.value <= auc.interval[1]
    assert auc.threshold == 0.0
    assert re.fullmatch(
        r"roc_auc 0\.\d{3} vs champion 0\.\d{3}: \+0\.\d{3} "
        r"\(90% CI \+0\.\d{3} to \+0\.\d{3}\), needs >= \+0\.000",
        auc.detail,
    ), auc.detail
    assert report.n_samples == 2000
    assert (
        set(report.champion)
        == set(report.candidate)
        == {m.name for m in METRICS.values() if m.task == "classification"}
    )
    assert check(report, "min_samples").passed


def test_a_worse_candidate_fails_naming_the_metric() -> None:
    y, signal = binary(2000)
    report = judge(GateConfig(), y, scored(y, signal, 0.3, 2), scored(y, signal, 2.0, 1))
    assert not report.passed
    assert len(report.reasons) == 1
    assert report.reasons[0].startswith("roc_auc ")
    assert "not enough" in report.reasons[0]
    assert check(report, "roc_auc").value < 0  # type: ignore[operator]


def noise_candidates(y: np.ndarray, signal: np.ndarray) -> tuple[Any, list[Any]]:
    """A champion and near-identical candidates: its scores with a little noise added."""
    champion = scored(y, signal, 1.0, 7)
    logit = np.log(champion[1][:, 1] / champion[1][:, 0])
    candidates = []
    # Seeds far from those that drew the signal: noise that correlates with it is not noise.
    for seed in range(1000, 1030):
        p1 = 1 / (1 + np.exp(-(logit + np.random.default_rng(seed).normal(0, 0.1, len(y)))))
        candidates.append(((p1 > 0.5).astype(int), np.column_stack([1 - p1, p1])))
    return champion, candidates


def test_a_candidate_better_only_by_noise_does_not_pass_with_confidence() -> None:
    y, signal = binary(1000)
    champion, candidates = noise_candidates(y, signal)
    lucky = []  # the noise happened to help on this hold-out
    for candidate in candidates:
        report = judge(GateConfig(), y, champion, candidate)
        auc = check(report, "roc_auc")
        assert auc.value is not None
        assert abs(auc.value) < 0.005
        if auc.value > 0:
            lucky.append((candidate, report))
    assert len(lucky) >= 8
    # With a 90% interval, about one in twenty noise candidates looks better by chance.
    assert sum(report.passed for _, report in lucky) <= 2
    held_back = [report for _, report in lucky if not report.passed]
    for report in held_back:
        auc = check(report, "roc_auc")
        assert auc.interval is not None
        assert auc.interval[0] < 0 < auc.interval[1]
        assert "may be noise" in auc.detail

    # On the point estimate alone every lucky one passes, and with a small allowed
    # loss so do the unlucky ones.
    for candidate, _ in lucky:
        assert judge(GateConfig(confidence=None), y, champion, candidate).passed
    loose = GateConfig(metrics=(MetricGate(metric="roc_auc", min_delta=-0.005),), confidence=None)
    for candidate in candidates[:10]:
        report = judge(loose, y, champion, candidate)
        assert report.passed
        assert check(report, "roc_auc").interval is None
        assert "CI" not in check(report, "roc_auc").detail


def test_the_same_model_is_not_worse_so_a_zero_margin_passes() -> None:
    y, signal = binary(500)
    answers = scored(y, signal, 1.0, 3)
    report = judge(GateConfig(), y, answers, answers)
    assert report.passed
    assert check(report, "roc_auc").interval == (0.0, 0.0)
    strict = GateConfig(metrics=(MetricGate(metric="roc_auc", min_delta=0.001),))
    assert not judge(strict, y, answers, answers).passed


def test_too_few_samples_fail() -> None:
    y, signal = binary(150)
    report = judge(GateConfig(), y, scored(y, signal, 2.0, 1), scored(y, signal, 0.1, 2))
    assert not report.passed
    assert report.reasons == ["too few samples: 150 < 200 labelled hold-out rows"]
    samples = check(report, "min_samples")
    assert (samples.value, samples.threshold) == (150.0, 200.0)
    assert judge(GateConfig(min_samples=150), y, *_pair(y, signal)).passed


def _pair(y: np.ndarray, signal: np.ndarray) -> tuple[Any, Any]:
    return scored(y, signal, 2.0, 1), scored(y, signal, 0.1, 2)


def test_a_relative_margin_is_a_fraction_of_the_champions_value() -> None:
    y, signal = binary(3000)
    champion, candidate = scored(y, signal, 1.0, 1), scored(y, signal, 0.8, 2)
    auc_a = evaluate(y, *champion, task="classification", classes=CLASSES)["roc_auc"]
    auc_b = evaluate(y, *candidate, task="classification", classes=CLASSES)["roc_auc"]
    assert auc_a is not None
    assert auc_b is not None
    gain = auc_b - auc_a
    assert 0.005 < gain < 0.05

    small = gain / auc_a / 2  # half the relative gain: passes
    config = GateConfig(
        metrics=(MetricGate(metric="roc_auc", min_delta=small, relative=True),), confidence=None
    )
    report = judge(config, y, champion, candidate)
    assert report.passed
    assert check(report, "roc_auc").threshold == pytest.approx(small * auc_a)
    assert f"{small * 100:g}% of the champion's" in check(report, "roc_auc").detail

    config = GateConfig(
        metrics=(MetricGate(metric="roc_auc", min_delta=2 * gain / auc_a, relative=True),)
    )
    report = judge(config, y, champion, candidate)
    assert not report.passed
    assert check(report, "roc_auc").threshold == pytest.approx(2 * gain)


def test_lower_is_better_metrics_count_a_decrease_as_the_gain() -> None:
    y, signal = binary(2000)
    worse, better = scored(y, signal, 2.0, 1), scored(y, signal, 0.3, 2)
    config = GateConfig(
        metrics=(MetricGate(metric="log_loss", min_delta=0.01), MetricGate(metric="brier"))
    )
    report = judge(config, y, worse, better)
    assert report.passed, report.reasons
    loss = check(report, "log_loss")
    assert report.candidate["log_loss"] < report.champion["log_loss"]  # type: ignore[operator]
    assert loss.value == pytest.approx(report.champion["log_loss"] - report.candidate["log_loss"])  # type: ignore[operator]
    assert loss.detail.startswith("log_loss (lower is better) ")

    backwards = judge(config, y, better, worse)
    assert not backwards.passed
    assert {c.name for c in backwards.checks if not c.passed} == {"log_loss", "brier"}


def test_regression_gates_on_rmse_by_default() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(10, 3, 1500)
    y = x + rng.normal(0, 1, 1500)
    rough = (x + rng.normal(0, 1.5, 1500), None)
    close = (x + rng.normal(0, 0.3, 1500), None)

    def run(config: GateConfig, champion: Any, candidate: Any) -> GateReport:
        return evaluate_gates(
            config,
            task="regression",
            classes=None,
            y_true=y,
            champion=champion,
            candidate=candidate,
        )

    report = run(GateConfig(), rough, close)
    assert report.passed, report.reasons
    rmse = check(report, "rmse")
    assert rmse.value is not None
    assert rmse.value > 0
    assert "rmse (lower is better)" in rmse.detail
    assert not run(GateConfig(), close, rough).passed
    two = GateConfig(
        metrics=(MetricGate(metric="mae", min_delta=0.1), MetricGate(metric="r2", min_delta=0.05))
    )
    assert run(two, rough, close).passed
    assert [c.name for c in run(two, close, rough).checks if not c.passed] == ["mae", "r2"]


def test_an_undefined_metric_fails_its_check() -> None:
    y, signal = binary(500)
    labels_only = (scored(y, signal, 0.3, 2)[0], None)
    config = GateConfig(metrics=(MetricGate(metric="roc_auc"),))
    report = judge(config, y, scored(y, signal, 2.0, 1), labels_only)
    assert not report.passed
    (reason,) = report.reasons
    assert "roc_auc is undefined for the candidate" in reason
    assert "gave no probabilities" in reason

    one_class = np.ones(300, dtype=int)
    answers = (np.ones(300, dtype=int), np.tile([0.2, 0.8], (300, 1)))
    report = judge(config, one_class, answers, answers)
    assert not report.passed
    assert "undefined for the champion and the candidate" in report.reasons[0]


def test_the_default_metric_falls_back_when_the_primary_is_undefined() -> None:
    y, signal = binary(500)
    champion = (scored(y, signal, 2.0, 1)[0], None)
    candidate = (scored(y, signal, 0.3, 2)[0], None)
    report = judge(GateConfig(), y, champion, candidate)
    assert [c.name for c in report.checks] == ["min_samples", "accuracy"]
    assert report.passed


def test_the_bootstrap_is_seeded() -> None:
    y, signal = binary(800)
    a, b = _pair(y, signal)
    first = check(judge(GateConfig(), y, a, b), "roc_auc").interval
    assert check(judge(GateConfig(), y, a, b), "roc_auc").interval == first
    assert check(judge(GateConfig(seed=1), y, a, b), "roc_auc").interval != first
    narrower = check(judge(GateConfig(confidence=0.5), y, a, b), "roc_auc").interval
    assert first is not None
    assert narrower is not None
    assert first[0] < narrower[0] <= narrower[1] < first[1]


def test_wrong_shapes_and_tasks_are_usage_errors() -> None:
    y, signal = binary(300)
    a, b = _pair(y, signal)
    with pytest.raises(UsageError, match="candidate has 299 prediction"):
        judge(GateConfig(), y, a, (b[0][:-1], b[1][:-1]))
    with pytest.raises(UsageError, match="probabilities have shape"):
        judge(GateConfig(), y, a, (b[0], b[1][:, :1]))
    with pytest.raises(UsageError, match="rmse is a regression metric"):
        judge(GateConfig(metrics=(MetricGate(metric="rmse"),)), y, a, b)
    with pytest.raises(UsageError, match="task must be"):
        evaluate_gates(
            GateConfig(), task="ranking", classes=None, y_true=y, champion=a, candidate=b
        )
    with pytest.raises(UsageError, match="one value per row"):
        judge(GateConfig(), y, a, b, segments={"channel": ["web"] * 10})


# --- segments -----------------------------------------------------------------------


def test_a_segment_where_the_candidate_collapses_fails_though_overall_it_passes() -> None:
    y, signal = binary(3000, seed=5)
    channel = np.where(np.arange(3000) < 2400, "web", "store")
    champion = scored(y, signal, 2.0, 1)
    candidate_web = scored(y, signal, 0.2, 2)
    coin = scored(y, np.zeros(3000), 1.0, 3)  # no signal at all: AUC about 0.5
    store = channel == "store"
    candidate = (
        np.where(store, coin[0], candidate_web[0]),
        np.where(store[:, None], coin[1], candidate_web[1]),
    )
    config = GateConfig(segments=("channel",))
    report = judge(config, y, champion, candidate, segments={"channel": channel})

    assert check(report, "roc_auc").passed
    assert check(report, "roc_auc[channel=web]").passed
    collapsed = check(report, "roc_auc[channel=store]")
    assert not collapsed.passed
    assert collapsed.threshold == -0.05
    assert collapsed.value is not None
    assert collapsed.value < -0.1
    assert not report.passed
    assert len(report.reasons) == 1
    assert report.reasons[0].startswith("roc_auc[channel=store] ")
    assert "on 600 rows" in report.reasons[0]

    # The same collapse in a segment too small to judge is not checked.
    few = GateConfig(segments=("channel",), min_segment_samples=601)
    report = judge(few, y, champion, candidate, segments={"channel": channel})
    assert report.passed
    assert [c.name for c in report.checks if c.name.startswith("roc_auc[")] == [
        "roc_auc[channel=web]"
    ]
    # A loose allowance lets it through.
    loose = GateConfig(segments=("channel",), max_segment_drop=0.5)
    assert judge(loose, y, champion, candidate, segments={"channel": channel}).passed


def test_a_named_segment_column_that_is_missing_fails() -> None:
    y, signal = binary(300)
    report = judge(GateConfig(segments=("region",)), y, *_pair(y, signal), segments={})
    assert not report.passed
    assert "no segment column 'region'" in check(report, "segments[region]").detail


def test_segments_given_without_names_are_all_checked() -> None:
    y, signal = binary(400)
    channel = np.where(np.arange(400) % 2 == 0, "web", None)
    report = judge(GateConfig(), y, *_pair(y, signal), segments={"channel": channel})
    names = {c.name for c in report.checks}
    assert {"roc_auc[channel=web]", "roc_auc[channel=(missing)]"} <= names


# --- latency, cost and the contract -------------------------------------------------


@pytest.fixture(scope="module")
def classifier() -> tuple[Any, pd.DataFrame]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    frame["when"] = pd.date_range("2024-01-01", periods=300, freq="h")  # not a feature
    y = (frame.a + frame.b > 0).astype(int)
    model = LogisticRegression().fit(frame[["a", "b"]], y)
    return flavors.from_object(model, features=["a", "b"]), frame


def test_measure_cost_times_one_row_predictions(classifier: tuple[Any, pd.DataFrame]) -> None:
    predictor, frame = classifier
    cost = measure_cost(predictor, frame, calls=40, cpu_hour_cost=0.05)
    assert set(cost) == {
        "calls",
        "p50_latency_ms",
        "p99_latency_ms",
        "mean_latency_ms",
        "cpu_seconds_per_1000",
        "cpu_hour_cost",
        "cost_per_1000",
    }
    assert cost["calls"] == 40
    assert 0 < cost["p50_latency_ms"] <= cost["p99_latency_ms"]
    assert cost["cpu_seconds_per_1000"] > 0
    assert cost["cost_per_1000"] == pytest.approx(cost["cpu_seconds_per_1000"] / 3600 * 0.05)
    json.dumps(cost)

    rng = np.random.default_rng(1)
    x = pd.DataFrame({"a": rng.normal(size=50)})
    regressor = flavors.from_object(
        LinearRegression().fit(x, x.a * 2), features=["a"], task="regression"
    )
    assert measure_cost(regressor, x.head(3), calls=10, cpu_hour_cost=0.0)["cost_per_1000"] == 0
    with pytest.raises(UsageError, match="at least one row"):
        measure_cost(regressor, x.head(0), cpu_hour_cost=0.05)
    with pytest.raises(UsageError, match="calls must be"):
        measure_cost(regressor, x, calls=0, cpu_hour_cost=0.05)


def test_latency_and_cost_budgets(classifier: tuple[Any, pd.DataFrame]) -> None:
    predictor, frame = classifier
    cost = measure_cost(predictor, frame, calls=40, cpu_hour_cost=0.05)
    y, signal = binary(300)
    a, b = _pair(y, signal)

    tight = GateConfig(max_p99_latency_ms=1e-9, max_cost_per_1000=1e-9)
    report = judge(tight, y, a, b, candidate_cost=cost)
    assert not report.passed
    assert {c.name for c in report.checks if not c.passed} == {"p99_latency_ms", "cost_per_1000"}
    latency = check(report, "p99_latency_ms")
    assert latency.value == cost["p99_latency_ms"]
    assert "over budget" in latency.detail

    # Without a price of its own the gate prices at the one the cost was measured at
    # (the workspace's cpu_hour_price, when the loop measures it).
    huge = GateConfig(max_p99_latency_ms=1e9, max_cost_per_1000=1e9)
    report = judge(huge, y, a, b, candidate_cost=cost)
    assert report.passed, report.reasons
    assert check(report, "cost_per_1000").value == pytest.approx(cost["cost_per_1000"])

    # The gate's own price per CPU-hour turns the measured CPU time into cost.
    pricier = GateConfig(max_cost_per_1000=1e9, cpu_hour_cost=5.0)
    report = judge(pricier, y, a, b, candidate_cost=cost)
    assert check(report, "cost_per_1000").value == pytest.approx(cost["cost_per_1000"] * 100)

    unmeasured = judge(huge, y, a, b)
    assert not unmeasured.passed
    assert all("not measured" in reason for reason in unmeasured.reasons)
    assert len(unmeasured.reasons) == 2
    # Without budgets there is nothing to check.
    assert [c.name for c in judge(GateConfig(), y, a, b).checks] == ["min_samples", "roc_auc"]


def test_contract_problems_fail() -> None:
    y, signal = binary(300)
    a, b = _pair(y, signal)
    problems = ["the candidate also needs 'amount'", "'channel' is numeric for the candidate"]
    report = judge(GateConfig(), y, a, b, contract_problems=problems)
    assert not report.passed
    contract = check(report, "contract")
    assert contract.value == 2
    assert report.reasons == [
        "2 input contract problem(s): the candidate also needs 'amount'; "
        "'channel' is numeric for the candidate"
    ]
    clean = judge(GateConfig(), y, a, b, contract_problems=[])
    assert clean.passed
    assert check(clean, "contract").passed
    assert "contract" not in {c.name for c in judge(GateConfig(), y, a, b).checks}


# --- configuration and the report as data -------------------------------------------


def test_config_round_trips_through_yaml() -> None:
    config = GateConfig(
        metrics=(
            MetricGate(metric="roc_auc", min_delta=0.01),
            MetricGate(metric="log_loss", min_delta=-0.02, relative=True),
        ),
        min_samples=500,
        confidence=0.95,
        bootstrap=1000,
        seed=3,
        segments=("channel", "region"),
        max_segment_drop=0.1,
        min_segment_samples=50,
        max_p99_latency_ms=25.0,
        max_cost_per_1000=0.01,
        cpu_hour_cost=0.1,
    )
    data = yaml.safe_load(yaml.safe_dump(config.to_dict()))
    assert data["metrics"] == [
        {"metric": "roc_auc", "min_delta": 0.01, "relative": False},
        {"metric": "log_loss", "min_delta": -0.02, "relative": True},
    ]
    assert GateConfig.from_dict(data) == config
    assert GateConfig.from_dict(GateConfig().to_dict()) == GateConfig()
    assert GateConfig.from_dict({}) == GateConfig() == GateConfig.from_dict(None)


def test_config_reads_the_yaml_forms_of_metrics() -> None:
    text = """
    metrics:
      roc_auc: {min_delta: 0.01}
      log_loss: 0.02
      brier:
    segments: channel
    confidence: null
    """
    config = GateConfig.from_dict(yaml.safe_load(text))
    assert config.metrics == (
        MetricGate(metric="roc_auc", min_delta=0.01),
        MetricGate(metric="log_loss", min_delta=0.02),
        MetricGate(metric="brier"),
    )
    assert config.segments == ("channel",)
    assert config.confidence is None
    listed = GateConfig.from_dict(
        {"metrics": ["f1", {"metric": "recall", "min_delta": 0.1}, {"roc_auc": {"relative": True}}]}
    )
    assert listed.metrics == (
        MetricGate(metric="f1"),
        MetricGate(metric="recall", min_delta=0.1),
        MetricGate(metric="roc_auc", relative=True),
    )
    assert GateConfig.from_dict({"metrics": "rmse"}).metrics == (MetricGate(metric="rmse"),)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"confidnce": 0.9}, r"confidnce: unknown key; did you mean 'confidence'\? valid keys"),
        (
            {"metrics": {"roc_auc": {"delta": 0.1}}},
            r"metrics\[0\]\.delta: unknown key; did you mean 'min_delta'\?",
        ),
        ({"metrics": [{"metric": "f1", "margin": 1}]}, r"metrics\[0\]\.margin: unknown key"),
        ({"metrics": {"auc": {}}}, r"metric: unknown metric 'auc'; known: accuracy, "),
        ({"metrics": {"roc_auc": "a lot"}}, "metrics: give a mapping .* got 'a lot' for roc_auc"),
        ({"metrics": [{"f1": 0.1, "recall": 0.1}]}, "metrics: give a mapping"),
        ({"metrics": {"roc_auc": {"min_delta": "0.1"}}}, "min_delta: must be a number"),
        ({"metrics": {"roc_auc": {"relative": "yes"}}}, "relative: must be true or false"),
        ({"metrics": ["f1", "f1"]}, r"metric\(s\) f1 gated twice"),
        ({"metrics": ["f1", "rmse"]}, "mix classification and regression"),
        ({"confidence": 90}, r"confidence: give a fraction between 0 and 1 such as 0\.9"),
        ({"confidence": 1}, "confidence: give a fraction"),
        ({"min_samples": "lots"}, "min_samples: must be a whole number, got 'lots'"),
        ({"min_samples": 0}, "min_samples: must be greater than or equal to 1"),
        ({"bootstrap": 10}, "bootstrap: must be greater than or equal to 100"),
        ({"seed": -1}, "seed: must be greater than or equal to 0"),
        ({"segments": [1]}, r"segments\[0\]: must be text"),
        ({"segments": ["a", "a"]}, r"segments: column\(s\) a named twice"),
        ({"segments": {"a": 1}}, "segments: give a list of column names"),
        ({"max_segment_drop": -0.1}, "max_segment_drop: must be greater than or equal to 0"),
        ({"min_segment_samples": 0.5}, "min_segment_samples: must be a whole number"),
        ({"max_p99_latency_ms": 0}, "max_p99_latency_ms: must be greater than 0"),
        ({"max_cost_per_1000": "cheap"}, "max_cost_per_1000: must be a number"),
        ({"cpu_hour_cost": float("nan")}, "cpu_hour_cost: must be a finite number"),
    ],
)
def test_bad_settings_are_usage_errors_that_say_what_to_do(data: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        GateConfig.from_dict(data)


def test_not_a_mapping_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="the gates is a mapping"):
        GateConfig.from_dict(["roc_auc"])  # type: ignore[arg-type]


def test_the_report_round_trips_through_json() -> None:
    y, signal = binary(400)
    channel = np.where(np.arange(400) % 2 == 0, "web", "store")
    report = judge(
        GateConfig(segments=("channel",), max_p99_latency_ms=5.0),
        y,
        *_pair(y, signal),
        segments={"channel": channel},
        candidate_cost={"p99_latency_ms": 9.0},
        contract_problems=["x: too big"],
    )
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["reasons"] == report.reasons
    assert GateReport.from_dict(data) == report
    assert not report.passed


# --- the vectorized bootstrap against the registry ----------------------------------


def _registry_values(
    name: str, y: Any, pred: Any, proba: Any, task: str, classes: Any, idx: Any
) -> np.ndarray:
    values = [
        evaluate(
            y[rows],
            pred[rows],
            None if proba is None else proba[rows],
            task=task,
            classes=classes,
            metrics=[name],
        )[name]
        for rows in idx
    ]
    return np.array([np.nan if v is None else v for v in values])


def _resamples(n: int, count: int = 15) -> tuple[np.ndarray, np.ndarray]:
    idx = np.random.default_rng(9).integers(0, n, (count, n))
    weights = np.stack([np.bincount(rows, minlength=n) for rows in idx]).astype(np.float64)
    return weights, idx


@pytest.mark.parametrize("name", [m.name for m in METRICS.values()])
def test_every_metric_resamples_fast_and_like_the_registry(name: str) -> None:
    rng = np.random.default_rng(2)
    n = 400
    weights, idx = _resamples(n)
    if METRICS[name].task == "regression":
        y = rng.normal(10, 3, n)
        cases = [(y, y + rng.normal(0, 1, n), None, None)]
        task = "regression"
    else:
        task = "classification"
        y2, signal = binary(n)
        pred2, proba2 = scored(y2, signal, 1.0, 3)
        labels = np.array(["no", "yes"])
        y3 = rng.choice(["a", "b", "c"], n)
        proba3 = rng.dirichlet([1, 1, 1], n)
        pred3 = np.array(["a", "b", "c"])[proba3.argmax(axis=1)]
        cases = [
            (y2, pred2, proba2, [0, 1]),
            (labels[y2], labels[pred2], proba2, ["no", "yes"]),
            (y3, pred3, proba3, ["a", "b", "c"]),
        ]
    for y, pred, proba, classes in cases:
        if evaluate(y, pred, proba, task=task, classes=classes, metrics=[name])[name] is None:
            continue  # undefined here (Brier score of three classes): nothing to resample
        assert bootstrap._vectorized(name, y, pred, proba, classes) is not None, (name, classes)
        scorer = bootstrap._scorer(name, y, pred, proba, task, classes)
        got = scorer(weights, idx)
        expected = _registry_values(name, y, pred, proba, task, classes, idx)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_without_classes_the_registry_computes_each_resample() -> None:
    y, signal = binary(300)
    pred, proba = scored(y, signal, 1.0, 3)
    assert bootstrap._vectorized("log_loss", y, pred, proba, None) is None
    weights, idx = _resamples(300, 5)
    scorer = bootstrap._scorer("log_loss", y, pred, proba, "classification", None)
    expected = _registry_values("log_loss", y, pred, proba, "classification", None, idx)
    np.testing.assert_allclose(scorer(weights, idx), expected)


# --- properties ---------------------------------------------------------------------


@st.composite
def hold_outs(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(0, 60))
    task = draw(st.sampled_from(["classification", "regression"]))
    metric_names = [m.name for m in METRICS.values() if m.task == task]
    chosen = draw(st.lists(st.sampled_from(metric_names), min_size=1, max_size=2, unique=True))
    deltas = draw(st.lists(st.floats(1e-6, 0.5), min_size=len(chosen), max_size=len(chosen)))
    config = GateConfig(
        metrics=tuple(
            MetricGate(metric=m, min_delta=d) for m, d in zip(chosen, deltas, strict=True)
        ),
        min_samples=draw(st.integers(1, 40)),
        confidence=draw(st.sampled_from([None, 0.8])),
        bootstrap=100,
        seed=draw(st.integers(0, 5)),
        max_segment_drop=draw(st.floats(0, 0.2)),
        min_segment_samples=draw(st.integers(1, 30)),
    )
    floats = st.floats(-3, 3, allow_nan=False)
    if task == "classification":
        y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)), dtype=int)
        models = []
        for _ in range(2):
            p1 = np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)), dtype=float)
            proba = np.column_stack([1 - p1, p1]) if n else np.empty((0, 2))
            models.append(((p1 > 0.5).astype(int), proba))
    else:
        y = np.array(draw(st.lists(floats, min_size=n, max_size=n)), dtype=float)
        models = [
            (np.array(draw(st.lists(floats, min_size=n, max_size=n)), dtype=float), None)
            for _ in range(2)
        ]
    segment = np.array(draw(st.lists(st.sampled_from(["a", "b"]), min_size=n, max_size=n)))
    return {
        "config": config,
        "task": task,
        "classes": CLASSES if task == "classification" else None,
        "y": y,
        "models": models,
        "segment": segment,
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hold_outs())
def test_passed_is_all_checks_and_swapping_never_lets_both_pass(case: dict[str, Any]) -> None:
    reports = [
        evaluate_gates(
            case["config"],
            task=case["task"],
            classes=case["classes"],
            y_true=case["y"],
            champion=first,
            candidate=second,
            segments={"segment": case["segment"]},
        )
        for first, second in (case["models"], case["models"][::-1])
    ]
    for report in reports:
        assert report.passed == all(c.passed for c in report.checks)
        assert report.reasons == [c.detail for c in report.checks if not c.passed]
        assert (
            GateReport.from_dict(json.loads(json.dumps(report.to_dict(), allow_nan=False)))
            == report
        )
    assert not (reports[0].passed and reports[1].passed)


def test_an_agreement_gate_counts_the_rows_given_the_champions_label() -> None:
    y, signal = binary(400)
    champion = scored(y, signal, 2.0, 1)
    same = judge(GateConfig(min_agreement=0.99, confidence=None), y, champion, champion)
    agreement = check(same, "agreement")
    assert (agreement.passed, agreement.value, agreement.threshold) == (True, 1.0, 0.99)

    flipped = (champion[0].copy(), champion[1])
    flipped[0][:40] = 1 - flipped[0][:40]  # 10% of the labels changed
    report = judge(GateConfig(min_agreement=0.95), y, champion, flipped)
    agreement = check(report, "agreement")
    assert not agreement.passed
    assert agreement.value == pytest.approx(0.9)
    assert "too different" in agreement.detail
    # Not given: no such check, and a stored policy reads back as it was.
    assert "agreement" not in {c.name for c in judge(GateConfig(), y, champion, champion).checks}
    assert "min_agreement" not in GateConfig().to_dict()
