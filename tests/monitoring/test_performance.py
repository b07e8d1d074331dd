"""Realized and estimated performance: the estimate follows covariate shift."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.stats import rankdata
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

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
    for shift in shifts:
        x, y = draw(rng, 2_000, shift)
        proba = model.predict_proba(x)
        predicted = model.predict(x)
        estimate = estimator.estimate(proba, predicted, band=0.95)
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


# The estimate against its definitions: scikit-learn's weighted figures for the point,
# and a brute-force Monte Carlo band for the interval.


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def draw_classes(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """One class per row, drawn from the row's probabilities."""
    return np.minimum((rng.random((len(p), 1)) > p.cumsum(axis=1)).sum(axis=1), p.shape[1] - 1)


def case(seed: int, k: int, n_reference: int, n_window: int, step: float) -> tuple[Any, ...]:
    """A model whose scores are over-confident (and rounded to ``step``: ties, and
    few calibration blocks) on a reference with labels, and a shifted window."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n_reference + n_window, k)) * 1.5
    logits[n_reference:, 0] += 0.5  # the window leans towards the first class
    truth = draw_classes(rng, softmax(logits))
    scores = softmax(logits * 1.4)
    if step:
        scores = np.round(scores / step) * step
    return scores[:n_reference], truth[:n_reference], scores[n_reference:]


CASES = [
    pytest.param(1, 2, 5_000, 2_000, 0.0, id="binary"),
    pytest.param(2, 2, 600, 300, 0.0, id="binary-small"),
    pytest.param(3, 2, 3_000, 1_000, 0.05, id="binary-ties"),
    pytest.param(4, 3, 5_000, 2_000, 0.0, id="three-classes"),
    pytest.param(5, 4, 3_000, 1_500, 0.02, id="four-classes-ties"),
]


def sklearn_expected(p: np.ndarray, chosen: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """The expected figures as scikit-learn computes them: every row once per class,
    weighted by the chance that it is of that class."""
    n, k = p.shape
    truth = np.tile(np.arange(k), n)
    answer, weight = np.repeat(chosen, k), p.ravel()
    average = {"average": "binary", "pos_label": 1} if k == 2 else {"average": "macro"}
    scored = [1] if k == 2 else list(range(k))
    return {
        "accuracy": accuracy_score(truth, answer, sample_weight=weight),
        "precision": precision_score(
            truth, answer, sample_weight=weight, zero_division=0, **average
        ),
        "recall": recall_score(truth, answer, sample_weight=weight, zero_division=0, **average),
        "f1": f1_score(truth, answer, sample_weight=weight, zero_division=0, **average),
        "roc_auc": float(
            np.mean(
                [
                    roc_auc_score(truth == j, np.repeat(scores[:, j], k), sample_weight=weight)
                    for j in scored
                ]
            )
        ),
    }


@pytest.mark.parametrize(("seed", "k", "n_reference", "n_window", "step"), CASES)
def test_the_estimate_equals_scikit_learns_weighted_figures(
    seed: int, k: int, n_reference: int, n_window: int, step: float
) -> None:
    ref_scores, ref_truth, window = case(seed, k, n_reference, n_window, step)
    estimator = ConfidenceEstimator(list(range(k))).fit(ref_scores, ref_truth)
    chosen = window.argmax(axis=1)
    calibrated = estimator.calibrated(window)
    scored = [1] if k == 2 else list(range(k))
    raw = np.column_stack(
        [
            IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            .fit(ref_scores[:, j], ref_truth == j)
            .predict(window[:, j])
            for j in scored
        ]
    )
    by_sklearn = np.column_stack([1 - raw, raw]) if k == 2 else raw / raw.sum(axis=1)[:, None]
    np.testing.assert_allclose(calibrated, by_sklearn, atol=1e-12)
    expected = sklearn_expected(calibrated, chosen, window)
    point = estimator.expected(window, chosen)
    band = estimator.estimate(window, chosen)
    for name, value in expected.items():
        assert point[name] == pytest.approx(value, abs=1e-9), name
        assert band[name].value == point[name]


def realized_figures(truth: np.ndarray, chosen: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Accuracy, precision, recall, F1 and ROC AUC of one label set, counted directly
    (AUC by scipy's ranks: the Mann-Whitney statistic)."""
    k = scores.shape[1]
    scored = [1] if k == 2 else list(range(k))
    hit = truth == chosen
    tp = np.array([(hit & (truth == j)).sum() for j in scored], dtype=float)
    predicted = np.array([(chosen == j).sum() for j in scored], dtype=float)
    actual = np.array([(truth == j).sum() for j in scored], dtype=float)
    areas = []
    for j in scored:
        positives = truth == j
        m = positives.sum()
        rank_sum = rankdata(scores[:, j])[positives].sum()
        areas.append((rank_sum - m * (m + 1) / 2) / (m * (len(truth) - m)))

    def mean_ratio(top: np.ndarray, bottom: np.ndarray) -> float:
        return float(np.mean(np.divide(top, bottom, out=np.zeros_like(top), where=bottom > 0)))

    return np.array(
        [
            hit.mean(),
            mean_ratio(tp, predicted),
            mean_ratio(tp, actual),
            mean_ratio(2 * tp, predicted + actual),
            np.mean(areas),
        ]
    )


@pytest.mark.parametrize(("seed", "k", "n_reference", "n_window", "step"), CASES)
def test_the_band_agrees_with_a_brute_force_monte_carlo_band(
    seed: int, k: int, n_reference: int, n_window: int, step: float
) -> None:
    """The Monte Carlo band: 1,000 label sets drawn from the calibrated probabilities,
    each scored as the realized figure is, plus the estimate's move when the
    calibration is refit on one of 200 resamples of the reference. The closed-form
    90% band's width is within 15% of its width, and each end within a quarter of its
    half-width (the labels' scatter alone would be 10 to 20% too narrow)."""
    ref_scores, ref_truth, window = case(seed, k, n_reference, n_window, step)
    classes = list(range(k))
    estimator = ConfidenceEstimator(classes).fit(ref_scores, ref_truth)
    chosen = window.argmax(axis=1)
    names = ["accuracy", "precision", "recall", "f1", "roc_auc"]
    point = estimator.expected(window, chosen)
    base = np.array([point[name] for name in names])
    rng = np.random.default_rng(seed)
    moves = []
    for _ in range(200):
        rows = rng.integers(0, n_reference, n_reference)
        refit = ConfidenceEstimator(classes).fit(ref_scores[rows], ref_truth[rows])
        again = refit.expected(window, chosen)
        moves.append([again[name] for name in names])
    p = estimator.calibrated(window)
    samples = np.array(
        [
            realized_figures(draw_classes(rng, p), chosen, window) + moves[d % 200] - base
            for d in range(1_000)
        ]
    )
    low, high = np.quantile(samples, [0.05, 0.95], axis=0)
    band = estimator.estimate(window, chosen, band=0.9)
    for i, name in enumerate(names):
        half = (high[i] - low[i]) / 2
        ours = band[name]
        assert ours.high - ours.low == pytest.approx(high[i] - low[i], rel=0.15), name
        assert abs(ours.low - low[i]) <= 0.25 * half, name
        assert abs(ours.high - high[i]) <= 0.25 * half, name
