"""Estimators named by import path: building them, and fitting them the way the spec says.

The spec names classes as text, so every way that can go wrong (a library not
installed, a class that does not exist, a misspelt or refused parameter, a regressor
for a classification task) is an error naming the spec path and the fix, raised
before any fitting starts where the library lets us check.

Preprocessing ``auto`` keeps LightGBM and XGBoost on their native path: categories
become codes the booster treats as categorical, missing values stay NaN, and the
fitted booster predicts through the fast native flavor. Other estimators get a
scikit-learn pipeline: median imputation and scaling for numbers, one-hot encoding
for categories, or native missing-value and categorical support for
HistGradientBoosting.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from setpoint.data.kinds import TEXT_KINDS, Kind
from setpoint.errors import DependencyMissingError, InvalidSpecError
from setpoint.models.inputs import to_frame, to_matrix
from setpoint.models.spec import Step, Task, TrainSpec

# The libraries fitted natively under ``auto``: module -> (package, setpoint extra).
NATIVE: dict[str, tuple[str, str]] = {
    "lightgbm": ("lightgbm", "lightgbm"),
    "xgboost": ("xgboost-cpu", "xgboost"),
}
# One-hot columns per categorical feature at most; rarer values share one column.
MAX_ONE_HOT = 50
MISSING_CATEGORY = "__missing__"

OnIteration = Callable[[int, int], None]  # (iterations done, iterations in all)

_XGBOOST_UNUSED = re.compile(r"Parameters: \{(.*?)\} (?:are|is) not used")
_LIGHTGBM_NAME_UNSAFE = re.compile(r'[\s"\',:\[\]{}]')


def native_library(step: Step, spec: TrainSpec) -> str | None:
    """``lightgbm`` or ``xgboost`` when ``step`` is fitted natively, else None."""
    root = step.cls.split(".")[0]
    return root if spec.preprocessing == "auto" and root in NATIVE else None


# -- building ---------------------------------------------------------------------------


def import_class(path: str, where: str) -> Any:
    """The class (or factory) at ``path``; ``where`` is its spec path, for errors."""
    module_name, _, name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = (getattr(exc, "name", None) or module_name).split(".")[0]
        if missing in NATIVE:
            raise DependencyMissingError.for_extra(*NATIVE[missing]) from None
        raise InvalidSpecError(
            f"{where}.class: cannot import {module_name!r} for {path!r} ({exc}); check the "
            "spelling, or install the package that provides it",
            details=[f"{where}.class: module {module_name!r} cannot be imported"],
        ) from None
    found = getattr(module, name, None)
    if found is None or not callable(found):
        public = [n for n in dir(module) if not n.startswith("_")]
        close = difflib.get_close_matches(name, public, n=3)
        hint = f"; did you mean {', '.join(f'{module_name}.{c}' for c in close)}?" if close else ""
        raise InvalidSpecError(
            f"{where}.class: {module_name!r} has no class {name!r}{hint}",
            details=[f"{where}.class: {path!r} does not exist"],
        )
    return found


def build(step: Step, seed: int, *, where: str = "estimator", task: Task | None = None) -> Any:
    """An unfitted instance of ``step``, seeded, its parameters checked.

    ``random_state`` is set to the spec's seed when the class takes one and the spec
    does not, so the same spec on the same data gives the same model.
    """
    cls = import_class(step.cls, where)
    params = dict(step.params)
    accepted = _accepted_params(cls, step.cls)
    if accepted is not None:
        unknown = sorted(set(params) - accepted)
        if unknown:
            raise InvalidSpecError(
                f"{where}.params: {step.cls} has no parameter(s) {', '.join(unknown)}"
                + _suggestions(unknown, accepted),
                details=[f"{where}.params.{p}: not a parameter of {step.cls}" for p in unknown],
            )
    seeded = "random_state" in params
    if not seeded and "random_state" in _signature_params(cls):
        params["random_state"] = seed
        seeded = True
    if step.cls.startswith("lightgbm.") and not {"verbose", "verbosity"} & set(params):
        params["verbose"] = -1  # LightGBM logs to stdout otherwise
    try:
        estimator = cls(**params)
    except (TypeError, ValueError) as exc:
        raise InvalidSpecError(
            f"{where}.params: {step.cls} refused them: {exc}", details=[f"{where}.params: {exc}"]
        ) from None
    if not seeded and "random_state" in _get_params(estimator):  # XGBoost takes **kwargs
        estimator.set_params(random_state=seed)
    if not callable(getattr(estimator, "fit", None)):
        raise InvalidSpecError(
            f"{where}.class: {step.cls} has no fit method, so it cannot be trained",
            details=[f"{where}.class: not an estimator"],
        )
    _validate_values(estimator, step, where)
    if task is not None:
        _check_task(estimator, step, task, where)
    return estimator


def _get_params(estimator: Any) -> dict[str, Any]:
    try:
        return dict(estimator.get_params(deep=False))
    except (AttributeError, TypeError):  # not a scikit-learn style estimator
        return {}


def _signature_params(cls: Any) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(cls).parameters)
    except (TypeError, ValueError):
        return {}


def _accepted_params(cls: Any, path: str) -> set[str] | None:
    """The parameter names ``cls`` takes, or None when it cannot be told (``**kwargs``)."""
    parameters = _signature_params(cls)
    named = {n for n, p in parameters.items() if p.kind is not p.VAR_KEYWORD}
    if not parameters:
        return None
    if len(named) == len(parameters):
        return named
    if path.startswith("lightgbm."):
        # LGBMModel passes **kwargs to the booster, which ignores names it does not
        # know without a word (verbose=-1): check them against LightGBM's own list.
        return _lightgbm_params(named)
    return None  # XGBoost: its "not used" warning after fitting is turned into an error


def _lightgbm_params(named: set[str]) -> set[str] | None:
    try:
        from lightgbm.basic import _ConfigAliases

        aliases: dict[str, list[str]] = _ConfigAliases._get_all_param_aliases()
    except (ImportError, AttributeError):  # a LightGBM without the list: skip the check
        return None
    return named | set(aliases) | {a for names in aliases.values() for a in names}


def _suggestions(unknown: Sequence[str], accepted: set[str]) -> str:
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(accepted), n=1)
        if close:
            hints.append(close[0] if len(unknown) == 1 else f"{close[0]} for {name}")
    return f"; did you mean {', '.join(hints)}?" if hints else ""


def _validate_values(estimator: Any, step: Step, where: str) -> None:
    """Check parameter values now rather than after loading and splitting the data.

    scikit-learn estimators declare their parameter constraints; ``_validate_params``
    (what ``fit`` calls first) checks them. Other libraries check at fit time.
    """
    validate = getattr(estimator, "_validate_params", None)
    if not callable(validate) or not getattr(estimator, "_parameter_constraints", None):
        return
    try:
        validate()
    except (ValueError, TypeError) as exc:
        paths = [f"{where}.params.{p}" for p in step.params if f"'{p}'" in str(exc)]
        raise InvalidSpecError(
            f"{where}.params: {exc}",
            details=[f"{path}: {exc}" for path in paths or [f"{where}.params"]],
        ) from None


def _check_task(estimator: Any, step: Step, task: Task, where: str) -> None:
    from sklearn.base import BaseEstimator, is_classifier, is_regressor

    if not isinstance(estimator, BaseEstimator):
        return
    if task == "classification" and is_regressor(estimator):
        kind = "a regressor"
    elif task == "regression" and is_classifier(estimator):
        kind = "a classifier"
    else:
        return
    raise InvalidSpecError(
        f"{where}.class: {step.cls} is {kind} but the task is {task}; pick a {task} "
        "estimator or set task",
        details=[f"{where}.class: {kind} for a {task} task"],
    )


# -- fitting ----------------------------------------------------------------------------


def preprocessing_steps(spec: TrainSpec) -> list[tuple[str, Any]] | None:
    """The spec's explicit pipeline steps, built (and so checked) before any fitting;
    None for ``auto`` and ``none``."""
    if not spec.pipeline:
        return None
    return [
        (f"step{i}", build(step, spec.seed, where=f"preprocessing.pipeline[{i}]"))
        for i, step in enumerate(spec.pipeline)
    ]


def fit_estimator(
    estimator: Any,
    *,
    spec: TrainSpec,
    steps: list[tuple[str, Any]] | None,
    native: str | None,
    train: pa.Table,
    y: npt.NDArray[Any],
    features: list[str],
    kinds: dict[str, Kind],
    categories: dict[str, list[str]],
    classes: list[Any] | None,
    on_iteration: OnIteration | None = None,
) -> Any:
    """The fitted object to register: a native booster wrapper or a scikit-learn one."""
    if native == "lightgbm":
        return _fit_lightgbm(estimator, train, y, features, kinds, categories, on_iteration)
    if native == "xgboost":
        return _fit_xgboost(estimator, train, y, features, kinds, categories, classes, on_iteration)
    frame = to_frame(train, features, kinds)
    if spec.preprocessing == "none":
        return estimator.fit(frame, y)
    from sklearn.pipeline import Pipeline

    if steps is None:
        steps = [("prepare", auto_preprocessing(estimator, features, kinds))]
    return Pipeline([*steps, ("model", estimator)]).fit(frame, y)


def _text_indices(features: list[str], kinds: dict[str, Kind]) -> list[int]:
    return [i for i, name in enumerate(features) if kinds[name] in TEXT_KINDS]


def _fit_lightgbm(
    estimator: Any,
    train: pa.Table,
    y: npt.NDArray[Any],
    features: list[str],
    kinds: dict[str, Kind],
    categories: dict[str, list[str]],
    on_iteration: OnIteration | None,
) -> Any:
    matrix = to_matrix(train, features, kinds, categories)
    callbacks = []
    if on_iteration is not None:
        report = on_iteration
        callbacks.append(lambda env: report(env.iteration + 1, env.end_iteration))
    return estimator.fit(
        matrix,
        y,
        feature_name=_lightgbm_names(features),
        categorical_feature=_text_indices(features, kinds) or "auto",
        callbacks=callbacks or None,
    )


def _lightgbm_names(features: list[str]) -> list[str] | str:
    """Feature names LightGBM accepts (no JSON punctuation or spaces), or ``auto``."""
    names = [_LIGHTGBM_NAME_UNSAFE.sub("_", name) for name in features]
    return names if len(set(names)) == len(names) else "auto"


def _fit_xgboost(
    estimator: Any,
    train: pa.Table,
    y: npt.NDArray[Any],
    features: list[str],
    kinds: dict[str, Kind],
    categories: dict[str, list[str]],
    classes: list[Any] | None,
    on_iteration: OnIteration | None,
) -> Any:
    import xgboost

    matrix = to_matrix(train, features, kinds, categories)
    text = set(_text_indices(features, kinds))
    if text:
        estimator.set_params(
            enable_categorical=True,
            feature_types=["c" if i in text else "q" for i in range(len(features))],
        )
    # XGBoost classifiers take codes 0..k-1; the labels go on the predictor instead.
    target = y if classes is None else np.searchsorted(np.asarray(classes), y)
    if on_iteration is None:
        return estimator.fit(matrix, target, verbose=False)
    total = estimator.get_params().get("n_estimators") or 100  # XGBoost's default
    report = on_iteration

    class _Report(xgboost.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            report(epoch + 1, total)
            return False  # keep training

    estimator.set_params(callbacks=[_Report()])
    try:
        return estimator.fit(matrix, target, verbose=False)
    finally:
        estimator.set_params(callbacks=None)  # a local class would not pickle


def unused_xgboost_params(message: str) -> list[str]:
    """The parameter names XGBoost's "Parameters: { ... } are not used" warning lists."""
    found = _XGBOOST_UNUSED.search(message.replace("\n", " "))
    if not found:
        return []
    return [name.strip().strip('"') for name in found.group(1).split(",") if name.strip()]


def auto_preprocessing(estimator: Any, features: list[str], kinds: dict[str, Kind]) -> Any:
    """The ``auto`` column transformer for a scikit-learn estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    numbers = [f for f in features if kinds[f] not in TEXT_KINDS]
    text = [f for f in features if kinds[f] in TEXT_KINDS]
    transformers: list[tuple[str, Any, list[str]]] = []
    if isinstance(estimator, HistGradientBoostingClassifier | HistGradientBoostingRegressor):
        # Native missing-value and categorical support: numbers as they are, categories
        # as codes (missing and unseen as NaN, rare ones grouped to fit in max_bins).
        if numbers:
            transformers.append(("numbers", "passthrough", numbers))
        if text:
            if isinstance(estimator.get_params()["categorical_features"], str):  # from_dtype
                estimator.set_params(categorical_features=list(range(len(numbers), len(features))))
            encoder = OrdinalEncoder(
                handle_unknown="use_encoded_value",
                unknown_value=np.nan,
                encoded_missing_value=np.nan,
                max_categories=estimator.get_params()["max_bins"],
            )
            transformers.append(("categories", encoder, text))
        return ColumnTransformer(transformers, verbose_feature_names_out=False)
    if numbers:
        if _allows_nan(estimator):  # trees that split on missing values: leave them be
            transformers.append(("numbers", "passthrough", numbers))
        else:
            imputer = SimpleImputer(strategy="median", keep_empty_features=True)
            transformers.append(("numbers", make_pipeline(imputer, StandardScaler()), numbers))
    if text:
        missing = SimpleImputer(
            strategy="constant", fill_value=MISSING_CATEGORY, missing_values=None
        )
        # No ``drop``: with it, scikit-learn warns on every unseen category at predict.
        one_hot = OneHotEncoder(
            handle_unknown="ignore", max_categories=MAX_ONE_HOT, sparse_output=False
        )
        transformers.append(("categories", make_pipeline(missing, one_hot), text))
    return ColumnTransformer(transformers, verbose_feature_names_out=False)


def _allows_nan(estimator: Any) -> bool:
    try:
        from sklearn.utils import get_tags

        return bool(get_tags(estimator).input_tags.allow_nan)
    except (ImportError, AttributeError, TypeError, ValueError):  # scikit-learn < 1.6
        return False
