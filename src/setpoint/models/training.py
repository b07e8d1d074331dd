"""Fitting a model from a spec, and everything worth knowing about how it was made.

``fit`` splits the data (at random, or by time so the hold-out is the most recent
rows), preprocesses, fits, evaluates on the hold-out (overall, per segment, and the
train/validation gap) and gathers the lineage facts: package versions, the git
revision, wall and CPU time. Evaluation goes through the same predictor the registry
will store, so the figures describe the model as it will be served.

Preprocessing ``auto`` keeps LightGBM and XGBoost on their native path: categories
become codes the booster treats as categorical, missing values stay NaN, and the
registered model predicts through the fast native flavor. Other estimators get a
scikit-learn pipeline: median imputation (and scaling) for numbers, one-hot encoding
for categories — or native categorical support for HistGradientBoosting.
"""

from __future__ import annotations

import importlib
import inspect
import os
import platform
import subprocess
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.model_selection import train_test_split

from setpoint.data.kinds import TEXT_KINDS, Kind, kind_of
from setpoint.errors import DependencyMissingError, InvalidSpecError, TrainingError, UsageError
from setpoint.models import flavors
from setpoint.models.evaluation import evaluate, overfit_gap, segment_metrics
from setpoint.models.inputs import encode_categories, to_frame, to_matrix
from setpoint.models.predictor import Predictor, Task
from setpoint.models.spec import Step, TrainSpec

Progress = Callable[[str, float], None]

_NATIVE = {"lightgbm": "lightgbm", "xgboost": "xgboost"}  # module -> extra
_MAX_CLASSES_FOR_INTEGER_TARGET = 20


@dataclass(frozen=True)
class FitResult:
    estimator: Any
    predictor: Predictor
    features: list[str]
    kinds: dict[str, Kind]
    categories: dict[str, list[str]]
    task: Task
    classes: list[Any] | None
    metrics: dict[str, dict[str, float | None]]
    segments: dict[str, dict[str, dict[str, Any]]]
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


def fit(
    spec: TrainSpec,
    table: pa.Table,
    *,
    kinds: Mapping[str, Kind] | None = None,
    progress: Progress | None = None,
) -> FitResult:
    """Fit ``spec`` on ``table``. ``kinds`` (from the dataset's contract) says what each
    column is; without it, kinds are read from the Arrow types."""
    report = progress or (lambda _step, _fraction: None)
    report("preparing", 0.0)
    notes: list[str] = []
    _check_columns(spec, table)
    kept = table.filter(pc.is_valid(table.column(spec.target)))
    dropped = table.num_rows - kept.num_rows
    if dropped:
        notes.append(f"{dropped} row(s) without a target value were left out")
    if kept.num_rows < 10:
        raise UsageError(
            f"only {kept.num_rows} row(s) have a {spec.target!r} value; training needs at least 10"
        )
    column_kinds = _kinds(kept, kinds)
    features = _features(spec, kept, column_kinds, notes)
    task = spec.task or _infer_task(kept.column(spec.target), column_kinds[spec.target])
    y = np.asarray(kept.column(spec.target).to_numpy(zero_copy_only=False))
    classes: list[Any] | None = None
    if task == "classification":
        classes = sorted(np.unique(y).tolist())
        if len(classes) < 2:
            raise UsageError(f"the target {spec.target!r} has one class only ({classes[0]!r})")
    elif not np.issubdtype(y.dtype, np.number):
        raise UsageError(f"task is regression but the target {spec.target!r} is not numeric")

    report("splitting", 0.05)
    train_rows, valid_rows = _split(spec, kept, y, task)
    train, valid = kept.take(train_rows), kept.take(valid_rows)
    y_train, y_valid = y[train_rows], y[valid_rows]
    kinds_used = {name: column_kinds[name] for name in features}

    report("fitting", 0.1)
    step = spec.estimator_for(task)
    estimator = _build(step, spec.seed)
    native = _native_library(step) if spec.preprocessing == "auto" else None
    categories = encode_categories(train, features, kinds_used) if native else {}
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # library chatter, not our concern
            model = _fit(
                estimator,
                step,
                native,
                spec,
                train,
                y_train,
                features,
                kinds_used,
                categories,
                classes,
            )
    except (ValueError, TypeError, RuntimeError, MemoryError) as exc:
        raise TrainingError(f"fitting {step.cls} failed: {exc}") from exc
    except Exception as exc:  # the libraries' own error types (LightGBMError, XGBoostError)
        if type(exc).__module__.split(".")[0] in ("lightgbm", "xgboost", "sklearn"):
            raise TrainingError(f"fitting {step.cls} failed: {exc}") from exc
        raise
    train_seconds = time.perf_counter() - wall
    cpu_seconds = time.process_time() - cpu
    predictor = flavors.from_object(
        model,
        features=features,
        task=task,
        kinds=kinds_used,
        categories=categories or None,
        classes=classes,
    )

    report("evaluating", 0.85)
    scored = {}
    for split_name, part in (("train", train), ("validation", valid)):
        pred = predictor.predict(part)
        proba = predictor.predict_proba(part)
        scored[split_name] = (pred, proba)
    metrics = {
        name: evaluate(
            truth,
            scored[name][0],
            scored[name][1],
            task=task,
            classes=classes,
            metrics=spec.metrics,
        )
        for name, truth in (("train", y_train), ("validation", y_valid))
    }
    segments = {
        column: segment_metrics(
            y_valid,
            scored["validation"][0],
            scored["validation"][1],
            valid.column(column).to_pylist(),
            task=task,
            classes=classes,
            metrics=spec.metrics,
        )
        for column in spec.segments
    }
    gap = overfit_gap(
        metrics["train"], metrics["validation"], task=task, threshold=spec.overfit_threshold
    )
    report("done", 1.0)
    return FitResult(
        estimator=model,
        predictor=predictor,
        features=features,
        kinds=kinds_used,
        categories=predictor_categories(predictor),
        task=task,
        classes=classes,
        metrics=metrics,
        segments=segments,
        gap=gap,
        n_train=len(train_rows),
        n_validation=len(valid_rows),
        dropped_rows=dropped,
        train_seconds=train_seconds,
        cpu_seconds=cpu_seconds,
        packages=packages(step),
        git=git_revision(),
        spec=spec.to_dict(),
        notes=notes,
    )


def predictor_categories(predictor: Predictor) -> dict[str, list[str]]:
    return dict(predictor.metadata().get("categories") or {})


# -- columns and kinds ----------------------------------------------------------------


def _check_columns(spec: TrainSpec, table: pa.Table) -> None:
    wanted = [spec.target, *(spec.features or ()), *spec.exclude, *spec.segments]
    if spec.split.time_column:
        wanted.append(spec.split.time_column)
    missing = sorted({c for c in wanted if c not in table.column_names})
    if missing:
        raise InvalidSpecError(
            f"column(s) {', '.join(missing)} named in the spec are not in {spec.dataset}; "
            f"its columns are {', '.join(table.column_names)}",
            details=[f"{c}: not a column of the dataset" for c in missing],
        )


def _kinds(table: pa.Table, given: Mapping[str, Kind] | None) -> dict[str, Kind]:
    out: dict[str, Kind] = {}
    for name in table.column_names:
        if given and name in given:
            out[name] = given[name]
            continue
        column = table.column(name)
        distinct = (
            int(pc.count_distinct(column).as_py()) if pa.types.is_string(column.type) else None
        )
        out[name] = kind_of(column.type, distinct=distinct)
    return out


def _features(
    spec: TrainSpec, table: pa.Table, kinds: Mapping[str, Kind], notes: list[str]
) -> list[str]:
    if spec.features is not None:
        unusable = [f for f in spec.features if kinds[f] in ("string", "datetime")]
        if unusable:
            raise InvalidSpecError(
                f"feature(s) {', '.join(unusable)} are free text or datetimes, which models "
                "cannot take directly; derive numeric or categorical columns from them first",
                details=[f"features: {f} is {kinds[f]}" for f in unusable],
            )
        return list(spec.features)
    left_out = {spec.target, *spec.exclude}
    if spec.split.time_column:
        left_out.add(spec.split.time_column)
    features = []
    for name in table.column_names:
        if name in left_out:
            continue
        if kinds[name] in ("string", "datetime"):
            notes.append(f"{name} ({kinds[name]}) is not used as a feature")
            continue
        features.append(name)
    if not features:
        raise InvalidSpecError("no feature columns are left; list them under features")
    return features


def _infer_task(column: pa.ChunkedArray, kind: Kind) -> Task:
    if kind in ("numeric",):
        return "regression"
    if kind == "integer":
        distinct = int(pc.count_distinct(column).as_py())
        return "classification" if distinct <= _MAX_CLASSES_FOR_INTEGER_TARGET else "regression"
    return "classification"


# -- split ----------------------------------------------------------------------------


def _split(
    spec: TrainSpec, table: pa.Table, y: np.ndarray, task: Task
) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(table.num_rows)
    if spec.split.method == "time":
        assert spec.split.time_column is not None
        order = np.asarray(pc.array_sort_indices(table.column(spec.split.time_column)))
        cut = round(len(order) * (1 - spec.split.test_size))
        if cut < 1 or cut >= len(order):
            raise UsageError("the time split leaves no rows on one side; change split.test_size")
        return np.sort(order[:cut]), np.sort(order[cut:])
    stratify = None
    if task == "classification" and spec.split.stratify:
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2:
            stratify = y
    try:
        train, valid = train_test_split(
            rows, test_size=spec.split.test_size, random_state=spec.seed, stratify=stratify
        )
    except ValueError as exc:
        raise UsageError(f"cannot split the data as asked: {exc}") from None
    return np.sort(train), np.sort(valid)


# -- estimator -----------------------------------------------------------------------


def _import(path: str, where: str) -> Any:
    module_name, _, name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        root = module_name.split(".")[0]
        if root in _NATIVE:
            raise DependencyMissingError.for_extra(
                root if root != "xgboost" else "xgboost-cpu", _NATIVE[root]
            ) from None
        raise InvalidSpecError(
            f"{where}: cannot import module {module_name!r} (from {path!r})"
        ) from None
    if not hasattr(module, name):
        raise InvalidSpecError(f"{where}: module {module_name!r} has no {name!r}")
    return getattr(module, name)


def _build(step: Step, seed: int, where: str = "estimator") -> Any:
    cls = _import(step.cls, where)
    params = dict(step.params)
    try:
        accepted = set(inspect.signature(cls).parameters)
    except (TypeError, ValueError):
        accepted = set()
    has_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in _parameters(cls))
    unknown = sorted(set(params) - accepted) if accepted and not has_kwargs else []
    if unknown:
        raise InvalidSpecError(
            f"{where}.params: {step.cls} has no parameter(s) {', '.join(unknown)}",
            details=[f"{where}.params.{p}: not a parameter of {step.cls}" for p in unknown],
        )
    if "random_state" in accepted and "random_state" not in params:
        params["random_state"] = seed
    if step.cls.startswith("lightgbm.") and "verbose" not in params:
        params["verbose"] = -1
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise InvalidSpecError(f"{where}.params: {step.cls} refused them: {exc}") from None


def _parameters(cls: Any) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        return []


def _native_library(step: Step) -> str | None:
    root = step.cls.split(".")[0]
    return root if root in _NATIVE else None


def _fit(
    estimator: Any,
    step: Step,
    native: str | None,
    spec: TrainSpec,
    train: pa.Table,
    y: np.ndarray,
    features: list[str],
    kinds: dict[str, Kind],
    categories: dict[str, list[str]],
    classes: list[Any] | None,
) -> Any:
    text = [i for i, name in enumerate(features) if kinds[name] in TEXT_KINDS]
    if native == "lightgbm":
        matrix = to_matrix(train, features, kinds, categories)
        return estimator.fit(
            matrix, y, feature_name=list(features), categorical_feature=text or "auto"
        )
    if native == "xgboost":
        matrix = to_matrix(train, features, kinds, categories)
        if text:
            estimator.set_params(
                enable_categorical=True,
                feature_types=["c" if i in text else "q" for i in range(len(features))],
            )
        estimator.set_params(
            feature_names=None
        ) if "feature_names" in estimator.get_params() else None
        target = y
        if classes is not None:  # XGBoost wants 0..k-1; keep the labels on the model
            target = np.searchsorted(np.asarray(classes), y)
        return estimator.fit(matrix, target)
    frame = to_frame(train, features, kinds)
    if spec.preprocessing == "none":
        return estimator.fit(frame, y)
    from sklearn.pipeline import Pipeline

    if isinstance(spec.preprocessing, tuple):
        steps = [
            (f"step{i}", _build(s, spec.seed, f"preprocessing.pipeline[{i}]"))
            for i, s in enumerate(spec.preprocessing)
        ]
        return Pipeline([*steps, ("model", estimator)]).fit(frame, y)
    return Pipeline(
        [("prepare", _auto_preprocessing(estimator, features, kinds)), ("model", estimator)]
    ).fit(frame, y)


def _auto_preprocessing(estimator: Any, features: list[str], kinds: dict[str, Kind]) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    numbers = [f for f in features if kinds[f] not in TEXT_KINDS]
    text = [f for f in features if kinds[f] in TEXT_KINDS]
    if isinstance(estimator, HistGradientBoostingClassifier | HistGradientBoostingRegressor):
        # Native missing-value and categorical support: no imputation, ordinal codes.
        if text and estimator.get_params()["categorical_features"] in ("from_dtype", "warn"):
            estimator.set_params(categorical_features=list(range(len(numbers), len(features))))
        transformers: list[tuple[str, Any, list[str]]] = [("numbers", "passthrough", numbers)]
        if text:
            transformers.append(
                (
                    "categories",
                    OrdinalEncoder(
                        handle_unknown="use_encoded_value",
                        unknown_value=np.nan,
                        encoded_missing_value=np.nan,
                    ),
                    text,
                )
            )
        return ColumnTransformer(transformers, verbose_feature_names_out=False)
    transformers = [
        ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numbers)
    ]
    if text:
        transformers.append(
            (
                "categories",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="(missing)", missing_values=None),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                text,
            )
        )
    return ColumnTransformer(transformers, verbose_feature_names_out=False)


# -- lineage ----------------------------------------------------------------------------


def packages(step: Step) -> dict[str, str]:
    """Versions of Python and the libraries the model depends on."""
    names = ["numpy", "pandas", "pyarrow", "sklearn", "joblib"]
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
    """The commit checked out where training runs, and whether the tree had changes;
    None outside a repository or without git. Never fails training."""
    where = cwd or os.getcwd()
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"revision": revision, "dirty": bool(status.strip())}
