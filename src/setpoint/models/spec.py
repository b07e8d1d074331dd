"""The training spec: what to fit, on which data, and how to judge it.

A spec is a small YAML document a person writes and reviews; it is stored with every
model version it produced. Parsing collects every problem, each with its path
(``estimator.params``, ``split.time_column``), and names unknown keys, so a typo is
caught before any training starts rather than silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from setpoint._names import check_name, split_ref
from setpoint.errors import InvalidSpecError, SetpointError

Task = Literal["classification", "regression"]
TASKS: tuple[str, ...] = ("classification", "regression")
PREPROCESSING = ("auto", "none")

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
    method: Literal["random", "time"] = "random"
    test_size: float = 0.2
    time_column: str | None = None
    stratify: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "test_size": self.test_size,
            "time_column": self.time_column,
            "stratify": self.stratify,
        }


@dataclass(frozen=True)
class TrainSpec:
    model: str
    dataset: str
    target: str
    features: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    task: Task | None = None
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

    # -- reading and writing ------------------------------------------------------------

    @classmethod
    def from_yaml(cls, text: str) -> TrainSpec:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidSpecError(f"the training spec is not valid YAML: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> TrainSpec:
        """A spec from its dict form; every problem is reported at once, by path."""
        if not isinstance(data, Mapping):
            raise InvalidSpecError(
                "a training spec is a mapping with at least model, dataset and target",
                details=["(top): not a mapping"],
            )
        p = _Problems()
        for key in data:
            if key not in _KEYS:
                p.add(str(key), f"unknown key; a spec has {', '.join(_KEYS)}")
        for key in ("model", "dataset", "target"):
            if key not in data:
                p.add(key, "is required")
        model = p.text(data, "model")
        if model is not None:
            p.check(lambda: check_name("model", model), "model")
        dataset = p.text(data, "dataset")
        if dataset is not None:
            p.check(lambda: split_ref("dataset", dataset), "dataset")
        target = p.text(data, "target")
        features = p.names(data, "features")
        exclude = p.names(data, "exclude") or ()
        if features is not None and exclude:
            p.add("exclude", "give features or exclude, not both")
        if features is not None and target in features:
            p.add("features", f"the target {target!r} cannot also be a feature")
        task = data.get("task")
        if task is not None and task not in TASKS:
            p.add("task", f"{task!r} is not one of {', '.join(TASKS)}")
        raw_estimator = data.get("estimator")
        estimator = None if raw_estimator is None else p.step(raw_estimator, "estimator")
        preprocessing = p.preprocessing(data.get("preprocessing", "auto"))
        split = p.split(data.get("split", {}))
        metrics = p.names(data, "metrics")
        if metrics is not None:
            from setpoint.models.evaluation import METRICS

            unknown = [m for m in metrics if m not in METRICS]
            if unknown:
                p.add(
                    "metrics",
                    f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}",
                )
        segments = p.names(data, "segments") or ()
        threshold = p.number(data, "overfit_threshold", 0.05, low=0.0)
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            p.add("seed", f"must be a whole number 0 or more, got {seed!r}")
        description = data.get("description", "")
        if not isinstance(description, str):
            p.add("description", "must be text")
        p.raise_if_any()
        assert model is not None
        assert dataset is not None
        assert target is not None
        return cls(
            model=model,
            dataset=dataset,
            target=target,
            features=features,
            exclude=exclude,
            task=task,
            estimator=estimator,
            preprocessing=preprocessing,  # type: ignore[arg-type]
            split=split,  # type: ignore[arg-type]
            metrics=metrics,
            segments=segments,
            overfit_threshold=float(threshold),  # type: ignore[arg-type]
            seed=seed,
            description=description,
        )

    def to_dict(self) -> dict[str, Any]:
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


class _Problems:
    """Collects problems by path while a spec is read."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, problem: str) -> None:
        self.items.append(f"{path}: {problem}")

    def check(self, fn: Any, path: str) -> None:
        try:
            fn()
        except SetpointError as error:
            self.add(path, error.message)

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
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.add(key, f"must be a list of column names, got {value!r}")
            return None
        if len(set(value)) != len(value):
            self.add(key, "lists a name more than once")
        return tuple(value)

    def number(
        self,
        data: Mapping[str, Any],
        key: str,
        default: float,
        *,
        low: float,
        high: float | None = None,
    ) -> float | None:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.add(key, f"must be a number, got {value!r}")
            return None
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"{low} or more"
            self.add(key, f"must be {bounds}, got {value}")
            return None
        return float(value)

    def step(self, raw: Any, path: str) -> Step | None:
        if isinstance(raw, str):
            raw = {"class": raw}
        if not isinstance(raw, Mapping):
            self.add(path, "must be a mapping with 'class' (an import path) and 'params'")
            return None
        for key in raw:
            if key not in ("class", "params"):
                self.add(f"{path}.{key}", "unknown key; use class and params")
        cls = raw.get("class")
        ok = True
        if not isinstance(cls, str) or "." not in cls:
            self.add(
                f"{path}.class",
                f"must be an import path such as sklearn.svm.SVC, got {cls!r}",
            )
            ok = False
        params = raw.get("params") or {}
        if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
            self.add(f"{path}.params", "must map parameter names to values")
            ok = False
        return Step(str(cls), dict(params)) if ok else None

    def preprocessing(self, raw: Any) -> str | tuple[Step, ...] | None:
        if isinstance(raw, str):
            if raw not in PREPROCESSING:
                self.add("preprocessing", f"{raw!r}: use auto, none, or {{pipeline: [steps]}}")
                return None
            return raw
        if (
            isinstance(raw, Mapping)
            and set(raw) == {"pipeline"}
            and isinstance(raw["pipeline"], list)
        ):
            steps = [
                self.step(s, f"preprocessing.pipeline[{i}]") for i, s in enumerate(raw["pipeline"])
            ]
            if not steps:
                self.add("preprocessing.pipeline", "lists no steps")
            return tuple(s for s in steps if s is not None)
        self.add("preprocessing", "use auto, none, or {pipeline: [{class: ..., params: ...}]}")
        return None

    def split(self, raw: Any) -> Split | None:
        if not isinstance(raw, Mapping):
            self.add("split", "must be a mapping (method, test_size, time_column, stratify)")
            return None
        for key in raw:
            if key not in _SPLIT_KEYS:
                self.add(f"split.{key}", f"unknown key; use {', '.join(_SPLIT_KEYS)}")
        method = raw.get("method", "random")
        if method not in ("random", "time"):
            self.add("split.method", f"{method!r}: use random or time")
        test_size = raw.get("test_size", 0.2)
        if (
            isinstance(test_size, bool)
            or not isinstance(test_size, int | float)
            or not 0 < test_size < 1
        ):
            self.add("split.test_size", f"must be a share between 0 and 1, got {test_size!r}")
        time_column = raw.get("time_column")
        if method == "time" and not isinstance(time_column, str):
            self.add("split.time_column", "is required when split.method is time")
        if method != "time" and time_column is not None:
            self.add("split.time_column", "only applies when split.method is time")
        stratify = raw.get("stratify", True)
        if not isinstance(stratify, bool):
            self.add("split.stratify", "must be true or false")
        try:
            return Split(method, float(test_size), time_column, bool(stratify))
        except (TypeError, ValueError):
            return None

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidSpecError(
                f"the training spec has {len(self.items)} problem(s): " + "; ".join(self.items),
                details=list(self.items),
            )
