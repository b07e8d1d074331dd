"""The engine: one window measured against a reference, with no workspace at all."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from setpoint.monitoring.engine import Baseline, Engine, EngineSettings
from setpoint.monitoring.reference import PREDICTION
from setpoint.monitoring.settings import DriftSettings
from setpoint.monitoring.summary import ReferenceSummary

FEATURES = {"income": "numeric", "grade": "categorical"}
OUTPUTS = {PREDICTION: "categorical"}


def frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pa.Table:
    return pa.table(
        {
            "income": rng.normal(50 + shift, 10, n),
            "grade": rng.choice(["A", "B", "C"], n),
        }
    )


def answers(table: pa.Table) -> pa.Array:
    income = table.column("income").to_numpy()
    return pa.array(np.where(income > 55, "yes", "no"))


def engine(rng: np.random.Generator, **settings: object) -> Engine:
    reference = frame(rng, 5_000)
    with_outputs = reference.append_column(PREDICTION, answers(reference))
    baseline = Baseline(
        summary=ReferenceSummary.build(with_outputs, {**FEATURES, **OUTPUTS}),
        features=FEATURES,
        outputs=OUTPUTS,
        name="credit@1",
        task="classification",
        classes=["no", "yes"],
        performance={"accuracy": 0.9},
    )
    return Engine(baseline, EngineSettings(**settings), sample=reference)  # type: ignore[arg-type]


def test_a_window_is_measured_into_the_results_document_monitors_store() -> None:
    rng = np.random.default_rng(0)
    measure = engine(rng, multivariate=True)
    window = frame(rng, 2_000, shift=8.0)
    labels = pa.array(["yes"] * 1_000 + [None] * 1_000)
    results = measure.measure(window, predictions=answers(window), labels=labels)
    assert list(results) == [
        "judged",
        "reference",
        "drift",
        "multivariate",
        "quality",
        "performance",
        "attribution",
    ]
    assert results["attribution"] is None  # no model to explain
    assert results["judged"] is True
    assert results["reference"] == "credit@1"
    drift = results["drift"]
    assert drift["drifted_features"] == ["income"]
    assert drift["drift_share"] == 0.5
    # The model's answers are judged apart, never in the share.
    assert set(drift["prediction"]) == {PREDICTION}
    assert drift["prediction"][PREDICTION]["drifted"] is True
    assert results["multivariate"]["drifted"] is True
    assert results["quality"]["volume"] == 2_000
    realized = results["performance"]["realized"]
    assert realized["labels"] == 1_000
    assert realized["coverage"] == 0.5
    assert 0 < realized["accuracy"] < 1
    assert results["performance"]["reference"] == {"accuracy": 0.9}


def test_a_window_under_min_rows_is_not_judged_and_runs_no_classifier() -> None:
    rng = np.random.default_rng(1)
    measure = engine(rng, drift=DriftSettings(min_rows=100))
    results = measure.measure(frame(rng, 60, shift=30.0))
    assert results["judged"] is False
    assert results["drift"]["drift_share"] is None
    assert results["multivariate"] is None
    assert results["performance"]["realized"] is None  # no label could be known


def test_thresholds_are_learned_once_per_size_class() -> None:
    rng = np.random.default_rng(2)
    measure = engine(rng, multivariate=False)
    first = measure.drift_settings(300)
    assert measure.drift_settings(400) is not first  # a new settings object...
    assert measure.drift_settings(400).effects == first.effects  # ...from one learning
    assert len(measure._learned) == 1
    assert engine(rng, learn_thresholds=False).drift_settings(300) == DriftSettings()


def test_thresholds_learned_by_one_engine_serve_another(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    teacher = engine(rng)
    taught = teacher.drift_settings(300)
    learner = engine(np.random.default_rng(3))
    learner.reuse(teacher.learned)

    def learn(*args: object, **kwargs: object) -> None:
        raise AssertionError("learned again")

    monkeypatch.setattr("setpoint.monitoring.engine.learn_effect_thresholds", learn)
    assert learner.drift_settings(300) == taught  # the same size class: nothing learned
    with pytest.raises(AssertionError, match="learned again"):
        learner.drift_settings(5_000)  # another size class is learned as before


def test_refused_rows_count_for_the_features_but_not_for_the_outputs() -> None:
    rng = np.random.default_rng(3)
    measure = engine(rng)
    refused = frame(rng, 500, shift=30.0)  # every row refused: nothing was answered
    nothing = frame(rng, 0)
    results = measure.measure(nothing, predictions=answers(nothing), refused=refused)
    drift = results["drift"]
    assert results["judged"] is True  # 500 rows were sent
    assert "income" in drift["drifted_features"]
    # The model answered no row: its outputs are not judged, not called "stable".
    assert drift["prediction"] == {}
    assert drift["prediction_drifted"] is False


def test_labels_that_cannot_be_compared_are_said_in_the_window() -> None:
    rng = np.random.default_rng(4)
    measure = engine(rng, multivariate=False)
    window = frame(rng, 300)
    # A client sent numbers for a model that answers "yes" and "no".
    labels = pa.array([1.5] * 300)
    realized = measure.measure(window, predictions=answers(window), labels=labels)["performance"][
        "realized"
    ]
    assert realized["labels"] == 300
    assert "cannot be compared with the model's answers" in realized["problem"]
    assert "accuracy" not in realized
