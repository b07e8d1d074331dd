"""The parts of a training spec: a step (an estimator or transformer by import path),
a preprocessing pipeline, the split and the fairness measurement, each a declarative
model of its own, with the value types they share with the spec (``models/spec.py``).
The fairness part is also a key of a policy's gates and of a monitor's settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from setpoint._documents import Document, Flag, Number, Whole
from setpoint.errors import InvalidSpecError, SetpointError

__all__ = [
    "FAIRNESS_METRICS",
    "Column",
    "Fairness",
    "ImportPath",
    "Pipeline",
    "Preprocessing",
    "Split",
    "Step",
    "StepOrPath",
    "StepOrPathOrNone",
]

_EXAMPLE_CLASS = "sklearn.ensemble.RandomForestClassifier"


def _import_path(path: Any) -> Any:
    parts = path.split(".") if isinstance(path, str) else []
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        raise ValueError(f"must be an import path such as {_EXAMPLE_CLASS}, got {path!r}")
    return path


# Python identifiers joined by dots; the pattern is a little looser than the reader
# (which asks str.isidentifier), never stricter.
ImportPath = Annotated[
    str,
    BeforeValidator(_import_path),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[^.\d\s][^.\s]*(\.[^.\d\s][^.\s]*)+$",
            "description": f"An import path, such as {_EXAMPLE_CLASS}.",
        }
    ),
]


def _column(name: Any) -> Any:
    if not isinstance(name, str) or not name:
        raise ValueError(f"must be a column name, got {name!r}")
    return name


Column = Annotated[
    str, BeforeValidator(_column), WithJsonSchema({"type": "string", "minLength": 1})
]


def _params(params: Any) -> Any:
    if params is None:
        return {}
    if not isinstance(params, Mapping) or not all(isinstance(key, str) for key in params):
        raise ValueError(f"must map parameter names to values, got {params!r}")
    return dict(params)


# -- the parts --------------------------------------------------------------------------


class Step(Document):
    """An estimator or transformer named by import path, with its parameters:
    ``{class: sklearn.linear_model.Ridge, params: {alpha: 2}}``, or the import path
    alone for default parameters."""

    # From Python: Step("sklearn.linear_model.Ridge", {"alpha": 2}).

    what: ClassVar[str] = "the step"
    error: ClassVar[type[SetpointError]] = InvalidSpecError

    cls: ImportPath = Field(alias="class")
    """The class (or factory) by import path, e.g. ``sklearn.linear_model.Ridge``,
    ``lightgbm.LGBMClassifier``."""
    params: Annotated[
        dict[str, Any], BeforeValidator(_params, json_schema_input_type=dict[str, Any] | None)
    ] = Field(default_factory=dict)
    """Keyword arguments the class is built with; leave out for its defaults. A seed
    (``random_state``) is filled in from the spec's ``seed`` unless given here."""

    def __init__(
        self, cls: str | None = None, params: Mapping[str, Any] | None = None, /, **data: Any
    ) -> None:
        # Python code writes Step(path, params); the file's own key, ``class``, is a
        # keyword Python cannot spell, so it arrives in ``data``.
        if cls is not None:
            data["class"] = cls
        if params is not None:
            data["params"] = params
        super().__init__(**data)

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.cls, "params": dict(self.params)}


def _step(step: Any) -> Any:
    if isinstance(step, str):  # the class alone, default parameters
        return {"class": step}
    if isinstance(step, Mapping | Step):
        return step
    raise ValueError(
        f"must be an import path, or a mapping with 'class' (an import path) and 'params', "
        f"got {step!r}"
    )


def _step_or_none(step: Any) -> Any:
    return None if step is None else _step(step)


# A step where the file may give the import path alone: `estimator: sklearn.X`.
StepOrPath = Annotated[Step, BeforeValidator(_step, json_schema_input_type=ImportPath | Step)]
# The same, or nothing: `estimator` left out (or null, as the stored form has it).
StepOrPathOrNone = Annotated[
    Step | None,
    BeforeValidator(_step_or_none, json_schema_input_type=ImportPath | Step | None),
]


class Pipeline(Document):
    """Preprocessing steps written out, applied in order before the estimator."""

    what: ClassVar[str] = "the preprocessing pipeline"
    error: ClassVar[type[SetpointError]] = InvalidSpecError

    pipeline: tuple[StepOrPath, ...] = Field(min_length=1)
    """The transformers, in order; each an import path, or ``{class, params}``."""

    @field_validator("pipeline", mode="before")
    @classmethod
    def _listed(cls, steps: Any) -> Any:
        if not isinstance(steps, list | tuple) or not steps:
            raise ValueError(f"must be a non-empty list of {{class, params}} steps, got {steps!r}")
        return steps

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": [step.to_dict() for step in self.pipeline]}


class Split(Document):
    """How rows are divided into training and validation.

    ``time``: the last ``test_size`` share of rows by ``time_column`` is the
    validation set, which is how a model meets the future in production."""

    what: ClassVar[str] = "the split"
    error: ClassVar[type[SetpointError]] = InvalidSpecError

    method: Literal["random", "time"] = "random"
    """``random``: rows drawn at random (stratified for classification); ``time``: the
    latest rows by ``time_column`` validate."""
    test_size: Number = Field(0.2, gt=0, lt=1)
    """The share of rows held out for validation, between 0 and 1."""
    time_column: Annotated[Column | None, Field(validate_default=True)] = None
    """The column that orders rows in time: required by ``method: time``, and only
    taken with it. It orders the split, so it is never a feature."""
    stratify: Flag = True
    """Random splits of classification data keep each class's share in both parts."""

    @field_validator("test_size", mode="before")
    @classmethod
    def _share(cls, share: Any) -> Any:
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share < 1:
            raise ValueError(
                f"must be the validation share, between 0 and 1 (e.g. 0.2), got {share!r}"
            )
        return share

    @field_validator("time_column")
    @classmethod
    def _with_time(cls, column: str | None, info: ValidationInfo) -> str | None:
        method = info.data.get("method")  # absent when it was not valid itself
        if method == "time" and column is None:
            raise ValueError("is required when split.method is time")
        if method == "random" and column is not None:
            raise ValueError("only applies when split.method is time")
        return column

    @field_validator("stratify", mode="before")
    @classmethod
    def _true_or_false(cls, stratify: Any) -> Any:
        if not isinstance(stratify, bool):
            raise ValueError(f"must be true or false, got {stratify!r}")
        return stratify

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "test_size": self.test_size,
            "time_column": self.time_column,
            "stratify": self.stratify,
        }


def _auto_none_or_pipeline(preprocessing: Any) -> Any:
    if isinstance(preprocessing, str) and preprocessing not in ("auto", "none"):
        raise ValueError(f"{preprocessing!r}: use auto, none, or {{pipeline: [steps]}}")
    if not isinstance(preprocessing, str | Mapping | Pipeline):
        raise ValueError(
            f"use auto, none, or {{pipeline: [{{class: ..., params: ...}}]}}, got {preprocessing!r}"
        )
    return preprocessing


def _preprocessing_kind(value: Any) -> str:
    return "choice" if isinstance(value, str) else "steps"


# `auto`, `none` or {pipeline: [...]}: the discriminator picks the one form that
# applies, so a wrong pipeline is not also reported as "not auto or none".
Preprocessing = Annotated[
    Annotated[
        Annotated[Literal["auto", "none"], Tag("choice")] | Annotated[Pipeline, Tag("steps")],
        Discriminator(_preprocessing_kind),
    ],
    # The schema says the plain union (anyOf): the discriminator only keeps the reader
    # from reporting a wrong pipeline as "not auto or none" too.
    BeforeValidator(
        _auto_none_or_pipeline, json_schema_input_type=Literal["auto", "none"] | Pipeline
    ),
]


# -- fairness -----------------------------------------------------------------------------

# The metrics models/fairness.py measures per group, by task (kept here, where reading a
# spec needs them, so the reader does not import pandas and fairlearn).
FAIRNESS_METRICS: dict[str, tuple[str, ...]] = {
    "classification": (
        "selection_rate",
        "true_positive_rate",
        "false_positive_rate",
        "precision",
        "error_rate",
    ),
    "regression": ("mean_error",),
}
_ALL_FAIRNESS = tuple(dict.fromkeys(m for ms in FAIRNESS_METRICS.values() for m in ms))


def _listed(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):  # one name needs no brackets
        return [value]
    return value


def _columns_given(value: Any) -> Any:
    value = _listed(value)
    if value is None or (isinstance(value, list | tuple) and not value):
        raise ValueError("name at least one column whose values make the groups, e.g. [region]")
    return value


def _distinct_names(names: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if names is None:
        return None
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"lists {', '.join(twice)} more than once; give each once")
    return names


def _fairness_metric(name: Any) -> Any:
    if name not in _ALL_FAIRNESS:
        raise ValueError(f"unknown fairness metric {name!r}; known: {', '.join(_ALL_FAIRNESS)}")
    return name


FairnessMetric = Annotated[
    str, BeforeValidator(_fairness_metric), WithJsonSchema({"enum": list(_ALL_FAIRNESS)})
]


class Fairness(Document):
    """How a model's treatment of groups is measured, and judged: per group of the
    ``sensitive`` columns (which need not be model inputs), each metric, and the largest
    difference between groups with at least ``min_group`` rows."""

    # From Python: Fairness(sensitive=("region",), max_disparity=0.1).

    what: ClassVar[str] = "the fairness settings"
    error: ClassVar[type[SetpointError]] = InvalidSpecError

    sensitive: Annotated[
        tuple[Column, ...],
        BeforeValidator(_columns_given, json_schema_input_type=Column | list[Column]),
        AfterValidator(_distinct_names),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "minLength": 1},
                    {
                        "type": "array",
                        "items": {"type": "string", "minLength": 1},
                        "minItems": 1,
                        "uniqueItems": True,
                    },
                ]
            }
        ),
    ]
    """The columns whose values make the groups (one name or a list). They need not be
    model inputs: training reads them from the dataset, requests carry them beside the
    inputs; in a training spec they are features only if listed under ``features``."""
    metrics: Annotated[
        tuple[FairnessMetric, ...] | None,
        BeforeValidator(
            _listed, json_schema_input_type=FairnessMetric | list[FairnessMetric] | None
        ),
        AfterValidator(_distinct_names),
    ] = None
    """The metrics compared between groups; leave out for every one of the task
    (classification: selection_rate, true_positive_rate, false_positive_rate, precision,
    error_rate; regression: mean_error)."""
    max_disparity: Annotated[Number, Field(ge=0)] | None = None
    """The largest difference allowed between two judged groups on any listed metric
    (0.1: ten points of a rate); null: measured, never judged."""
    margin: Annotated[Number, Field(ge=0)] | None = 0.05
    """In the loop's gates: how much larger than the champion's a candidate's difference
    may be on any listed metric; null: not compared with the champion."""
    min_group: Whole = Field(30, ge=1)
    """Groups with fewer rows are listed and marked too small, not judged."""

    @field_validator("metrics")
    @classmethod
    def _some(cls, metrics: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if metrics is not None and not metrics:
            raise ValueError("lists no metric; leave it out for every metric of the task")
        return metrics

    def metrics_for(self, task: str) -> tuple[str, ...]:
        """The metrics measured for a model of ``task``."""
        return self.metrics or FAIRNESS_METRICS[task]

    def wrong_task(self, task: str) -> list[str]:
        """The listed metrics that do not apply to ``task``."""
        return [m for m in self.metrics or () if m not in FAIRNESS_METRICS[task]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "sensitive": list(self.sensitive),
            "metrics": None if self.metrics is None else list(self.metrics),
            "max_disparity": self.max_disparity,
            "margin": self.margin,
            "min_group": self.min_group,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fairness:
        return cls.read(data)
