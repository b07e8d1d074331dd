"""The training spec: what to fit, on which data, and how to judge it.

A spec is a small YAML document a person writes and reviews; it is stored with every
model version it produced. Parsing collects every problem, each with its path
(``estimator.params``, ``split.time_column``), and names unknown keys with the valid
ones (and the closest, for a typo), so a mistake is caught before any training
starts rather than silently ignored.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import yaml

from setpoint._names import LATEST, check_name, split_ref, version_number
from setpoint._yaml import load_user_yaml
from setpoint.errors import InvalidSpecError, SetpointError

__all__ = ["DEFAULT_ESTIMATORS", "Split", "Step", "TrainSpec"]

Task = Literal["classification", "regression"]
TASKS: tuple[Task, ...] = ("classification", "regression")
PREPROCESSING = ("auto", "none")
# numpy's seeds (and so every library's random_state) stop at 2**32 - 1.
MAX_SEED = 2**32 - 1

DEFAULT_ESTIMATORS: dict[str, str] = {
    "classification": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}


@dataclass(frozen=True)
class Step:
    """An estimator or transformer named by import path, with its parameters."""

    cls: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.cls, "params": dict(self.params)}


@dataclass(frozen=True)
class Split:
    """How rows are divided into training and validation.

    ``time``: the last ``test_size`` share of rows by ``time_column`` is the
    validation set, which is how a model meets the future in production.
    """

    method: Literal["random", "time"] = "random"
    test_size: float = 0.2
    time_column: str | None = None
    stratify: bool = True  # random splits of classification data keep class shares

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "test_size": self.test_size,
            "time_column": self.time_column,
            "stratify": self.stratify,
        }


@dataclass(frozen=True)
class TrainSpec:
    """A validated training spec. Build it with :meth:`from_yaml` or :meth:`from_dict`,
    which check everything that can be checked without the data; :meth:`to_dict` gives
    the form stored with the model version."""

    model: str
    dataset: str  # NAME, NAME@VERSION or NAME@latest
    target: str
    features: tuple[str, ...] | None = None  # None: every usable column but excluded ones
    exclude: tuple[str, ...] = ()
    task: Task | None = None  # None: inferred from the target column
    estimator: Step | None = None  # None: the default for the task
    preprocessing: str | tuple[Step, ...] = "auto"  # "auto", "none" or pipeline steps
    split: Split = field(default_factory=Split)
    metrics: tuple[str, ...] | None = None  # None: every metric of the task
    segments: tuple[str, ...] = ()
    overfit_threshold: float = 0.05
    seed: int = 0
    description: str = ""

    def estimator_for(self, task: Task) -> Step:
        return self.estimator or Step(DEFAULT_ESTIMATORS[task])

    @property
    def dataset_name(self) -> str:
        return self.dataset.partition("@")[0]

    @property
    def dataset_version(self) -> int | None:
        """The version number the spec pins, or None for the latest."""
        selector = self.dataset.partition("@")[2]
        return int(selector) if selector.isdigit() else None

    # -- reading and writing ------------------------------------------------------------

    @classmethod
    def from_yaml(cls, text: str, *, source: str | None = None) -> TrainSpec:
        """A spec from YAML; ``source`` is the file it came from, named in syntax errors."""
        data = load_user_yaml(text, what="the training spec", source=source, error=InvalidSpecError)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> TrainSpec:
        """A spec from its dict form; every problem is reported at once, by path."""
        if not isinstance(data, Mapping):
            raise InvalidSpecError(
                "a training spec is a mapping with at least model, dataset and target, "
                f"not a {type(data).__name__}",
                details=["(top): not a mapping"],
            )
        p = _Reader()
        p.unknown_keys(data, _KEYS, "")
        for key in ("model", "dataset", "target"):
            if data.get(key) is None:
                p.add(key, "is required")
        model = p.text(data, "model")
        if model is not None:
            p.check("model", lambda: check_name("model", model))
        dataset = p.text(data, "dataset")
        if dataset is not None:
            p.check("dataset", lambda: _check_dataset_ref(dataset))
        target = p.text(data, "target")
        features = p.names(data, "features")
        if features == ():
            p.add("features", "lists no columns; leave it out to use every usable column")
        exclude = p.names(data, "exclude") or ()
        if features is not None and exclude:
            p.add("exclude", "give features or exclude, not both")
        if features is not None and target in features:
            p.add("features", f"the target {target!r} cannot also be a feature")
        task = data.get("task")
        if task is not None and task not in TASKS:
            p.add("task", f"{task!r} is not one of {', '.join(TASKS)} (or leave it out to infer)")
            task = None
        raw_estimator = data.get("estimator")
        estimator = None if raw_estimator is None else p.step(raw_estimator, "estimator")
        preprocessing = p.preprocessing(data.get("preprocessing", "auto"))
        split = p.split(data.get("split", {}))
        if split is not None and split.time_column is not None:
            if split.time_column == target:
                p.add("split.time_column", "cannot be the target")
            if features is not None and split.time_column in features:
                p.add(
                    "split.time_column",
                    f"{split.time_column!r} orders the split, so it cannot also be a feature; "
                    "remove it from features",
                )
        metrics = p.metrics(data, task)
        segments = p.names(data, "segments") or ()
        threshold = p.number(data, "overfit_threshold", 0.05, low=0.0)
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            p.add("seed", f"must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
        description = data.get("description")
        if description is None:
            description = ""
        elif not isinstance(description, str):
            p.add("description", f"must be text, got {type(description).__name__}")
        p.raise_if_any()
        return cls(
            model=cast(str, model),
            dataset=cast(str, dataset),
            target=cast(str, target),
            features=features,
            exclude=exclude,
            task=task,
            estimator=estimator,
            preprocessing=cast("str | tuple[Step, ...]", preprocessing),
            split=cast(Split, split),
            metrics=metrics,
            segments=segments,
            overfit_threshold=cast(float, threshold),
            seed=seed,
            description=description,
        )

    def to_dict(self) -> dict[str, Any]:
        """The plain form :meth:`from_dict` reads back to an equal spec."""
        return {
            "model": self.model,
            "dataset": self.dataset,
            "target": self.target,
            "features": None if self.features is None else list(self.features),
            "exclude": list(self.exclude),
            "task": self.task,
            "estimator": None if self.estimator is None else self.estimator.to_dict(),
            "preprocessing": (
                self.preprocessing
                if isinstance(self.preprocessing, str)
                else {"pipeline": [s.to_dict() for s in self.preprocessing]}
            ),
            "split": self.split.to_dict(),
            "metrics": None if self.metrics is None else list(self.metrics),
            "segments": list(self.segments),
            "overfit_threshold": self.overfit_threshold,
            "seed": self.seed,
            "description": self.description,
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


_KEYS = (
    "model",
    "dataset",
    "target",
    "features",
    "exclude",
    "task",
    "estimator",
    "preprocessing",
    "split",
    "metrics",
    "segments",
    "overfit_threshold",
    "seed",
    "description",
)
_SPLIT_KEYS = ("method", "test_size", "time_column", "stratify")
_STEP_KEYS = ("class", "params")


def _check_dataset_ref(ref: str) -> None:
    _, selector = split_ref("dataset", ref)
    if selector is not None and selector != LATEST and version_number(ref, selector) is None:
        raise InvalidSpecError(
            f"{ref!r}: after '@' comes a version number or {LATEST!r}, not {selector!r}"
        )


class _Reader:
    """Reads the parts of a spec, collecting problems by path instead of stopping."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, problem: str) -> None:
        self.items.append(f"{path}: {problem}")

    def check(self, path: str, fn: Any) -> None:
        try:
            fn()
        except SetpointError as error:
            self.add(path, error.message)

    def unknown_keys(self, data: Mapping[Any, Any], valid: tuple[str, ...], prefix: str) -> None:
        for key in data:
            if key in valid:
                continue
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            self.add(f"{prefix}{key}", f"unknown key; {hint}valid keys are {', '.join(valid)}")

    def text(self, data: Mapping[str, Any], key: str) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.add(key, f"must be non-empty text, got {value!r}")
            return None
        return value

    def names(self, data: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, str):  # one name needs no brackets
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.add(key, f"must be a list of column names, got {value!r}")
            return None
        repeated = sorted({v for v in value if value.count(v) > 1})
        if repeated:
            self.add(key, f"lists {', '.join(repeated)} more than once")
        return tuple(value)

    def metrics(self, data: Mapping[str, Any], task: Task | None) -> tuple[str, ...] | None:
        from setpoint.models.evaluation import METRICS  # evaluation imports sklearn

        names = self.names(data, "metrics")
        if names is None:
            return None
        unknown = [m for m in names if m not in METRICS]
        if unknown:
            self.add(
                "metrics",
                f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}",
            )
        if task is not None:
            other = [m for m in names if m in METRICS and METRICS[m].task != task]
            if other:
                fitting = [m.name for m in METRICS.values() if m.task == task]
                self.add(
                    "metrics",
                    f"{', '.join(other)} do not apply to {task}; use {', '.join(fitting)}",
                )
        if not names:
            self.add("metrics", "lists no metric; leave it out for every metric of the task")
        return names

    def number(
        self, data: Mapping[str, Any], key: str, default: float, *, low: float
    ) -> float | None:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.add(key, f"must be a number, got {value!r}")
            return None
        if not math.isfinite(value) or value < low:
            self.add(key, f"must be a number {low} or more, got {value}")
            return None
        return float(value)

    def step(self, raw: Any, path: str) -> Step | None:
        if isinstance(raw, str):  # the class alone, default parameters
            raw = {"class": raw}
        if not isinstance(raw, Mapping):
            self.add(path, "must be a mapping with 'class' (an import path) and 'params'")
            return None
        self.unknown_keys(raw, _STEP_KEYS, f"{path}.")
        cls = raw.get("class")
        ok = True
        if not isinstance(cls, str) or not _is_import_path(cls):
            self.add(
                f"{path}.class",
                "must be an import path such as sklearn.ensemble.RandomForestClassifier, "
                f"got {cls!r}",
            )
            ok = False
        params = raw.get("params")
        if params is None:
            params = {}
        if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
            self.add(f"{path}.params", f"must map parameter names to values, got {params!r}")
            ok = False
        return Step(cast(str, cls), dict(params)) if ok else None

    def preprocessing(self, raw: Any) -> str | tuple[Step, ...] | None:
        if isinstance(raw, str):
            if raw not in PREPROCESSING:
                self.add("preprocessing", f"{raw!r}: use auto, none, or {{pipeline: [steps]}}")
                return None
            return raw
        if not isinstance(raw, Mapping) or "pipeline" not in raw:
            self.add("preprocessing", "use auto, none, or {pipeline: [{class: ..., params: ...}]}")
            return None
        self.unknown_keys(raw, ("pipeline",), "preprocessing.")
        listed = raw["pipeline"]
        if not isinstance(listed, list) or not listed:
            self.add("preprocessing.pipeline", "must be a non-empty list of {class, params} steps")
            return None
        steps = [self.step(s, f"preprocessing.pipeline[{i}]") for i, s in enumerate(listed)]
        return tuple(s for s in steps if s is not None)

    def split(self, raw: Any) -> Split | None:
        if not isinstance(raw, Mapping):
            self.add("split", f"must be a mapping with keys {', '.join(_SPLIT_KEYS)}")
            return None
        self.unknown_keys(raw, _SPLIT_KEYS, "split.")
        ok = True
        method = raw.get("method", "random")
        if method not in ("random", "time"):
            self.add("split.method", f"{method!r}: use random or time")
            ok = False
        test_size = raw.get("test_size", 0.2)
        if (
            isinstance(test_size, bool)
            or not isinstance(test_size, int | float)
            or not 0 < test_size < 1
        ):
            self.add(
                "split.test_size",
                f"must be the validation share, between 0 and 1 (e.g. 0.2), got {test_size!r}",
            )
            ok = False
        time_column = raw.get("time_column")
        if time_column is not None and (not isinstance(time_column, str) or not time_column):
            self.add("split.time_column", f"must be a column name, got {time_column!r}")
            ok = False
        elif method == "time" and time_column is None:
            self.add("split.time_column", "is required when split.method is time")
            ok = False
        elif method != "time" and time_column is not None:
            self.add("split.time_column", "only applies when split.method is time")
            ok = False
        stratify = raw.get("stratify", True)
        if not isinstance(stratify, bool):
            self.add("split.stratify", f"must be true or false, got {stratify!r}")
            ok = False
        return Split(method, float(test_size), time_column, stratify) if ok else None

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidSpecError(
                f"the training spec has {len(self.items)} problem(s): " + "; ".join(self.items),
                details=list(self.items),
            )


def _is_import_path(path: str) -> bool:
    parts = path.split(".")
    return len(parts) >= 2 and all(part.isidentifier() for part in parts)
