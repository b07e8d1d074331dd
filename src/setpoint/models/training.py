"""Fitting a model from a spec, and everything worth knowing about how it was made.

``fit`` checks the spec against the table, splits the rows (at random, or by time so
the hold-out is the most recent rows), fits (see :mod:`setpoint.models._estimators`),
evaluates on both sides (overall, per segment, and the train/validation gap) and
gathers the lineage facts: package versions, the git revision, wall and CPU time.
Evaluation goes through the same predictor the registry stores, so the figures
describe the model as it will be served.
"""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
import time
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy.typing as npt
import pyarrow as pa

from setpoint.data.kinds import Kind
from setpoint.errors import DependencyMissingError, InvalidSpecError, SetpointError, TrainingError
from setpoint.models import _training_data as data
from setpoint.models import background, flavors
from setpoint.models._estimators import (
    build,
    fit_estimator,
    native_library,
    preprocessing_steps,
    unused_xgboost_params,
)
from setpoint.models.evaluation import (
    MAX_SEGMENTS,
    OTHER_SEGMENT,
    evaluate,
    overfit_gap,
    primary_metric,
    segment_metrics,
)
from setpoint.models.flavors._trees import TreePredictor
from setpoint.models.inputs import encode_categories
from setpoint.models.predictor import Predictor, Task
from setpoint.models.spec import Step, TrainSpec

__all__ = ["FitResult", "Progress", "fit", "git_revision", "packages"]

Progress = Callable[[str, float], None]
Array = npt.NDArray[Any]

# Fractions of the progress bar at which each stage starts.
_STAGES = {"loading": 0.0, "splitting": 0.05, "fitting": 0.1, "evaluating": 0.85, "done": 1.0}


@dataclass(frozen=True)
class FitResult:
    """A fitted model and how it was made: what the registry stores with the version.

    ``estimator`` is the fitted object (a LightGBM/XGBoost model on the native path,
    else a scikit-learn estimator or pipeline); ``predictor`` wraps it for serving,
    with the class labels set. ``dropped_rows`` counts the rows in neither split
    (no target value, or no time for a time split); ``notes`` says what was decided
    on the user's behalf (a column left out, the inferred task, library warnings).
    """

    estimator: Any
    predictor: Predictor
    features: list[str]
    kinds: dict[str, Kind]
    categories: dict[str, list[str]]
    task: Task
    classes: list[Any] | None
    metrics: dict[str, dict[str, float | None]]  # {"train": {...}, "validation": {...}}
    segments: dict[str, dict[str, dict[str, Any]]]  # {column: {value: {"n", metrics}}}
    gap: dict[str, Any] | None
    n_train: int
    n_validation: int
    dropped_rows: int
    train_seconds: float
    cpu_seconds: float
    packages: dict[str, str]
    git: dict[str, Any] | None
    spec: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    importance: dict[str, Any] | None = None  # mean |contribution| per feature
    fairness: dict[str, Any] | None = None  # the hold-out's fairness table, judged
    # What the version is explained against, for flavors without TreeSHAP (background.py).
    background: pa.Table | None = None


def fit(
    spec: TrainSpec,
    table: pa.Table,
    *,
    kinds: Mapping[str, Kind] | None = None,
    progress: Progress | None = None,
    personal: Collection[str] = (),
) -> FitResult:
    """Fit ``spec`` on ``table`` and evaluate it; ``personal`` columns (personal data)
    keep no values in the background sample (``models/background.py``).

    ``kinds`` (from the dataset's contract) says what each column is; columns it
    does not cover get their kind from the Arrow type. ``progress(stage, fraction)``
    is called as the stages go by, with fractions that never decrease and end at 1.0.
    """
    report = _Reporter(progress)
    report.stage("loading")
    notes: list[str] = []
    data.check_columns(spec, table)
    kept = data.rows_to_use(spec, table, notes)
    all_kinds = data.column_kinds(kept, kinds)
    features = data.choose_features(spec, kept, all_kinds, notes)
    used_kinds = {name: all_kinds[name] for name in features}
    y = data.target_values(kept.column(spec.target))
    task = spec.task or data.infer_task(spec.target, y, all_kinds[spec.target], notes)
    classes = data.class_labels(spec.target, y, task)
    data.check_fairness_task(spec, task)
    metric_names = data.metric_names(spec, task, notes)

    report.stage("splitting")
    train_rows, valid_rows = data.split_rows(spec, kept, y, task, notes)
    train, valid = kept.take(train_rows), kept.take(valid_rows)
    y_train, y_valid = y[train_rows], y[valid_rows]

    report.stage("fitting")
    step = spec.estimator_for(task)
    estimator = build(step, spec.seed, task=task)
    steps = preprocessing_steps(spec)
    native = native_library(step, spec)
    categories = encode_categories(train, features, used_kinds) if native else {}
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = fit_estimator(
                estimator,
                spec=spec,
                steps=steps,
                native=native,
                train=train,
                y=y_train,
                features=features,
                kinds=used_kinds,
                categories=categories,
                classes=classes,
                on_iteration=report.iterations if progress else None,
            )
        except SetpointError:
            raise
        except Exception as exc:
            if _is_fit_failure(exc):
                raise TrainingError(f"fitting {step.cls} failed: {exc}") from exc
            raise
    train_seconds = time.perf_counter() - wall
    cpu_seconds = time.process_time() - cpu
    notes.extend(_warning_notes(step, caught))
    predictor = flavors.from_object(
        model,
        features=features,
        task=task,
        kinds=used_kinds,
        categories=categories or None,
        classes=classes,
    )

    report.stage("evaluating")
    scored = {
        name: _score(predictor, part) for name, part in (("train", train), ("validation", valid))
    }
    metrics = {
        name: evaluate(truth, *scored[name], task=task, classes=classes, metrics=metric_names)
        for name, truth in (("train", y_train), ("validation", y_valid))
    }
    segments = {
        column: segment_metrics(
            y_valid,
            *scored["validation"],
            valid.column(column).to_pylist(),
            task=task,
            classes=classes,
            metrics=metric_names,
        )
        for column in spec.segments
    }
    for column, by_value in segments.items():
        if len(by_value) == MAX_SEGMENTS and OTHER_SEGMENT in by_value:
            notes.append(
                f"segments: {column} has more than {MAX_SEGMENTS} values; the largest are "
                f"reported, the rest pooled as {OTHER_SEGMENT}"
            )
    primary = primary_metric(task, metrics["train"], metrics["validation"])
    gap = (
        None
        if primary is None
        else overfit_gap(metrics["train"], metrics["validation"], primary, spec.overfit_threshold)
    )
    importance = _importance(predictor, train, valid, notes)
    fairness = _fairness(spec, task, classes, valid, y_valid, scored["validation"][0])
    explained_against = (
        background.sample(train, features, seed=spec.seed, personal=personal)
        if background.needs_background(predictor)
        else None
    )
    report.stage("done")
    return FitResult(
        estimator=model,
        predictor=predictor,
        features=features,
        kinds=used_kinds,
        categories=categories,
        task=task,
        classes=classes,
        metrics=metrics,
        segments=segments,
        gap=gap,
        n_train=len(train_rows),
        n_validation=len(valid_rows),
        dropped_rows=table.num_rows - kept.num_rows,
        train_seconds=train_seconds,
        cpu_seconds=cpu_seconds,
        packages=packages(step, *spec.pipeline),
        git=git_revision(),
        spec=spec.to_dict(),
        notes=notes,
        importance=importance,
        fairness=fairness,
        background=explained_against,
    )


def _importance(
    predictor: Predictor, train: pa.Table, valid: pa.Table, notes: list[str]
) -> dict[str, Any] | None:
    """Global importance on the hold-out (``models/explain.py``): by TreeSHAP on up to
    ``TREE_ROWS`` rows for the tree flavors, by shap's permutation explainer on
    ``OTHER_ROWS`` against ``BACKGROUND_ROWS`` training rows otherwise (the ``explain``
    extra; without it, none and a note)."""
    from setpoint.models import explain

    explainer = getattr(predictor, "explain", None)
    if explainer is None or valid.num_rows == 0:
        return None
    try:
        if isinstance(predictor, TreePredictor):
            explained = explainer(valid.slice(0, explain.TREE_ROWS))
        else:
            background = train.slice(0, explain.BACKGROUND_ROWS)
            explained = explainer(
                valid.slice(0, explain.OTHER_ROWS),
                background,
                permutations=explain.PERMUTATIONS,
            )
    except DependencyMissingError:
        notes.append(
            "importance: not measured; the explain extra explains this kind of model "
            "(pip install 'setpoint[explain]')"
        )
        return None
    return explain.global_importance(explained)


def _fairness(
    spec: TrainSpec,
    task: Task,
    classes: list[Any] | None,
    valid: pa.Table,
    y_valid: Array,
    predicted: Array,
) -> dict[str, Any] | None:
    """The spec's fairness table on the hold-out (``models/fairness.py``), with the
    metrics over ``max_disparity``; rates count the last class as the positive one."""
    if spec.fairness is None:
        return None
    from setpoint.models.fairness import fairness_table, judged

    settings = spec.fairness
    positive = classes[-1] if classes else None
    table = fairness_table(
        y_valid,
        predicted,
        {name: valid.column(name).to_pylist() for name in settings.sensitive},
        task=task,
        positive=positive,
        metrics=settings.metrics_for(task),
        min_group=settings.min_group,
    )
    return judged(table, positive=positive, max_disparity=settings.max_disparity)


class _Reporter:
    """Calls ``progress`` with fractions that never go back, at most every 1 %."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.name = ""
        self.last = -1.0

    def stage(self, name: str) -> None:
        self.name = name
        self.emit(_STAGES[name], force=True)

    def iterations(self, done: int, total: int) -> None:
        """Boosting rounds: the fitting stage's share of the bar, filled as they go."""
        start, end = _STAGES["fitting"], _STAGES["evaluating"]
        self.emit(start + (end - start) * min(done / max(total, 1), 1.0))

    def emit(self, fraction: float, *, force: bool = False) -> None:
        if self.progress is None or (not force and fraction < self.last + 0.01):
            return
        self.last = max(self.last, fraction)
        self.progress(self.name, self.last)


# -- fitting and evaluation ------------------------------------------------------------------


def _is_fit_failure(exc: Exception) -> bool:
    """Whether ``exc`` means the library could not fit this data with these settings."""
    if isinstance(exc, ValueError | TypeError | ArithmeticError | MemoryError | RuntimeError):
        return True
    # The libraries' own error types (LightGBMError, XGBoostError).
    return type(exc).__module__.split(".")[0] in ("lightgbm", "xgboost", "sklearn")


def _warning_notes(step: Step, caught: list[warnings.WarningMessage]) -> list[str]:
    """Library warnings from fitting, as notes; an unused XGBoost parameter is an error
    (XGBoost ignores misspelt names), and deprecations go on as warnings."""
    notes: list[str] = []
    for w in caught:
        unused = unused_xgboost_params(str(w.message))
        if unused:
            raise InvalidSpecError(
                f"estimator.params: {step.cls} does not use {', '.join(unused)}; "
                "check the spelling against the XGBoost parameter list",
                details=[f"estimator.params.{p}: not used by {step.cls}" for p in unused],
            )
        if issubclass(w.category, DeprecationWarning | FutureWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            continue
        text = " ".join(str(w.message).split())
        note = f"{w.category.__name__} while fitting: {text[:300]}"
        if note not in notes:
            notes.append(note)
    return notes


def _score(predictor: Predictor, part: pa.Table) -> tuple[Array, Array | None]:
    return predictor.predict(part), predictor.predict_proba(part)


# -- lineage ----------------------------------------------------------------------------------


def packages(*steps: Step) -> dict[str, str]:
    """Versions of Python and of the libraries the fitted model depends on."""
    names = ["numpy", "pandas", "pyarrow", "sklearn", "joblib"]
    for step in steps:
        root = step.cls.split(".")[0]
        if root not in names:
            names.append(root)
    out = {"python": platform.python_version()}
    for name in names:
        try:
            version = getattr(importlib.import_module(name), "__version__", None)
        except ImportError:
            continue
        if version is not None:
            out["scikit-learn" if name == "sklearn" else name] = str(version)
    return out


def git_revision(cwd: str | None = None) -> dict[str, Any] | None:
    """The commit checked out where training runs, and whether tracked files have
    changes since; None outside a repository or without git. Never fails training."""
    try:
        where = cwd or os.getcwd()
        revision = _git(["rev-parse", "HEAD"], where)
        status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    except (OSError, ValueError, subprocess.SubprocessError):  # ValueError: undecodable output
        return None
    return {"revision": revision.strip(), "dirty": bool(status.strip())}


def _git(args: list[str], cwd: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
    ).stdout
