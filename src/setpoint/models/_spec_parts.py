"""The parts of a training spec: a step (an estimator or transformer by import path),
a preprocessing pipeline and the split, each a declarative model of its own, with the
value types they share with the spec (``models/spec.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from setpoint._documents import Document, Flag, Number
from setpoint.errors import InvalidSpecError, SetpointError

__all__ = [
    "Column",
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
