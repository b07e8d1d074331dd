"""Realized and estimated performance: the estimate follows covariate shift."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from setpoint.errors import InvalidDataError, UsageError
from setpoint.monitoring.performance import ConfidenceEstimator, realized

WEIGHTS = np.array([1.5, -1.0])


def draw(rng: np.random.Generator, n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Inputs moved by ``shift`` towards the decision boundary's far side; the chance of
    the label given the inputs never changes (covariate shift, not concept drift)."""
    x = rng.normal(0.0, 1.0, size=(n, 2)) + np.array([-shift, shift]) + np.array([1.0, -1.0])
    p = 1.0 / (1.0 + np.exp(-(x @ WEIGHTS)))
    return x, (rng.random(n) < p).astype(int)


def test_the_estimate_tracks_realized_performance_under_covariate_shift() -> None:
    rng = np.random.default_rng(7)
    x_train, y_train = draw(rng, 20_000, 0.0)
    model = LogisticRegression().fit(x_train, y_train)
    x_ref, y_ref = draw(rng, 50_000, 0.0)
    estimator = ConfidenceEstimator([0, 1]).fit(model.predict_proba(x_ref), y_ref)

    inside: dict[str, int] = {"accuracy": 0, "f1": 0, "roc_auc": 0}
    estimated, actual = [], []
    shifts = np.linspace(0.0, 1.0, 40)  # towards the boundary: harder and harder cases
    for window, shift in enumerate(shifts):
        x, y = draw(rng, 2_000, shift)
        proba = model.predict_proba(x)
        predicted = model.predict(x)
        estimate = estimator.estimate(proba, predicted, band=0.95, seed=window)
        truth = realized(y, predicted, proba, task="classification", classes=[0, 1])
        for name in inside:
            value = truth[name]
            assert value is not None
            if estimate[name].low <= value <= estimate[name].high:
                inside[name] += 1
        estimated.append(estimate["accuracy"].value)
        actual.append(truth["accuracy"])

    # The drop is real, and the estimate sees it without a single label.
    assert actual[0] - actual[-1] > 0.06
    assert estimated[0] - estimated[-1] > 0.06
    assert np.corrcoef(estimated, actual)[0, 1] > 0.9
    # A 95% band holds the realized figure in nearly every window (isotonic calibration
    # is slightly biased where the reference is thin, which costs a few windows).
    for name, count in inside.items():
        assert count >= 34, (name, count)


def test_a_perfectly_calibrated_model_has_a_small_calibration_error() -> None:
    rng = np.random.default_rng(3)
    p = rng.random(50_000)
    y = (rng.random(50_000) < p).astype(int)
    proba = np.column_stack([1 - p, p])
    figures = realized(y, (p >= 0.5).astype(int), proba, task="classification", classes=[0, 1])
    assert figures["calibration_error"] is not None
    assert figures["calibration_error"] < 0.01
    overconfident = np.column_stack([1 - p, p]) ** 0.3
    overconfident /= overconfident.sum(axis=1, keepdims=True)
    worse = realized(
        y, (p >= 0.5).astype(int), overconfident, task="classification", classes=[0, 1]
    )
    assert worse["calibration_error"] is not None
    assert worse["calibration_error"] > 0.05


def test_multiclass_estimates_agree_with_labels_drawn_from_the_model() -> None:
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(30_000, 3)) * 2
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(3, p=row) for row in p[:10_000]])
    estimator = ConfidenceEstimator(["a", "b", "c"]).fit(
        p[:10_000], np.array(["a", "b", "c"])[labels]
    )
    window = p[10_000:]
    truth = np.array([rng.choice(3, p=row) for row in window])
    estimate = estimator.estimate(window, band=0.95)
    accuracy = float((truth == window.argmax(axis=1)).mean())
    assert estimate["accuracy"].low <= accuracy <= estimate["accuracy"].high
    assert set(estimate) == {"accuracy", "precision", "recall", "f1", "roc_auc"}


def test_mistakes_get_clear_errors() -> None:
    estimator = ConfidenceEstimator([0, 1])
    with pytest.raises(UsageError, match="fit the estimator"):
        estimator.estimate([[0.5, 0.5]])
    with pytest.raises(InvalidDataError, match="at least 100"):
        estimator.fit([[0.5, 0.5]] * 10, [0] * 10)
    with pytest.raises(InvalidDataError, match="one column per class"):
        estimator.fit(np.ones((200, 3)) / 3, [0] * 200)
    with pytest.raises(UsageError, match="2 or more classes"):
        ConfidenceEstimator([1])
    fitted = ConfidenceEstimator([0, 1]).fit(np.tile([0.3, 0.7], (200, 1)), [1] * 150 + [0] * 50)
    with pytest.raises(InvalidDataError, match="not one of the classes"):
        fitted.estimate([[0.3, 0.7]], ["yes"])
