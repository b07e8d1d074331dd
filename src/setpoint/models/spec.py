"""The training spec: what to fit, on which data, and how to judge it.

A spec is a small YAML document a person writes and reviews; it is stored with every
model version it produced. It is one declarative model (``_documents.Document``), so
the reader, its errors by path (``estimator.params``, ``split.time_column``) and the
JSON Schema (``setpoint schema spec``) come from the declarations below, and a mistake
is caught before any training starts rather than silently ignored::

    model: credit-risk
    dataset: loans@3
    target: defaulted
    exclude: [applied_at, id]
    estimator: {class: lightgbm.LGBMClassifier, params: {n_estimators: 50}}
    split: {method: time, time_column: applied_at, test_size: 0.25}
    metrics: [roc_auc, accuracy]
    fairness: {sensitive: [region], max_disparity: 0.1}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from setpoint._documents import Document, Number, Problems, Text, Whole
from setpoint._names import _NAME, LATEST, check_name, split_ref, version_number
from setpoint.errors import InvalidSpecError, SetpointError
from setpoint.models._spec_parts import (
    Fairness,
    Pipeline,
    Preprocessing,
    Split,
    Step,
    StepOrPathOrNone,
)

__all__ = ["DEFAULT_ESTIMATORS", "Fairness", "Pipeline", "Split", "Step", "TrainSpec"]

Task = Literal["classification", "regression"]
TASKS: tuple[Task, ...] = ("classification", "regression")
# numpy's seeds (and so every library's random_state) stop at 2**32 - 1.
MAX_SEED = 2**32 - 1

DEFAULT_ESTIMATORS: dict[str, str] = {
    "classification": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}


def _names_schema(*, at_least: int) -> WithJsonSchema:
    """One name, or a list of different names, or nothing (null)."""
    column: dict[str, Any] = {"type": "string", "minLength": 1}
    listed: dict[str, Any] = {"type": "array", "items": column, "uniqueItems": True}
    if at_least:
        listed["minItems"] = at_least
    return WithJsonSchema({"anyOf": [column, listed, {"type": "null"}]})


def _none_is_empty(text: Any) -> Any:
    return "" if text is None else text


# Text a person writes for people to read; left out or null is empty.
FreeText = Annotated[Text, BeforeValidator(_none_is_empty, json_schema_input_type=str | None)]


def _setpoint_check(check: Callable[[], object]) -> None:
    """Our own checks raise our errors; a validator reports them as problems."""
    try:
        check()
    except SetpointError as error:
        raise ValueError(error.message) from None


def _check_dataset_ref(ref: str) -> None:
    _, selector = split_ref("dataset", ref)
    if selector is not None and selector != LATEST and version_number(ref, selector) is None:
        raise InvalidSpecError(
            f"{ref!r}: after '@' comes a version number or {LATEST!r}, not {selector!r}"
        )


def _repeated(names: tuple[str, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    repeated = sorted({name for name in names if names.count(name) > 1})
    return [((), f"lists {', '.join(repeated)} more than once")] if repeated else []


# -- the spec ---------------------------------------------------------------------------


class TrainSpec(Document):
    """What to train, on which data, and how to judge it. Everything that can be checked
    without the data is checked when the file is read, before any training starts; the
    spec is stored with every model version it produced."""

    # From Python: TrainSpec.from_yaml(text), TrainSpec.from_dict(data) or keywords;
    # to_dict() gives the form stored with the model version.

    what: ClassVar[str] = "the training spec"
    error: ClassVar[type[SetpointError]] = InvalidSpecError

    model: Text = Field(json_schema_extra={"pattern": f"^{_NAME.pattern}$"})
    """The registered model the trained version belongs to (created if new)."""
    dataset: Text = Field(json_schema_extra={"pattern": f"^{_NAME.pattern}(@({LATEST}|[0-9]+))?$"})
    """The dataset to train on: ``NAME`` or ``NAME@latest`` for its latest version,
    ``NAME@VERSION`` for a fixed one."""
    target: Text = Field(json_schema_extra={"pattern": r"\S"})
    """The column to predict."""
    features: Annotated[tuple[str, ...] | None, _names_schema(at_least=1)] = None
    """The columns to learn from (one name or a list); leave out for every usable
    column but the target, ``exclude`` and the split's ``time_column``."""
    exclude: Annotated[tuple[str, ...], _names_schema(at_least=0)] = ()
    """Columns never to learn from (identifiers, leaks), when ``features`` is left out."""
    task: Task | None = None
    """``classification`` or ``regression``; leave out to infer it from the target."""
    estimator: StepOrPathOrNone = None
    """What to fit: an import path, or ``{class, params}``; leave out for
    scikit-learn's HistGradientBoosting of the task."""
    preprocessing: Preprocessing = "auto"
    """``auto``: what the estimator needs (none for LightGBM and XGBoost, which take
    categories natively); ``none``: the columns as they are; or
    ``{pipeline: [steps]}`` to write the transformers out."""
    split: Split = Field(default_factory=Split)
    """How rows are divided into training and validation."""
    metrics: Annotated[tuple[str, ...] | None, _names_schema(at_least=1)] = None
    """The metrics to report (one name or a list); leave out for every metric of the
    task. The first is the one the model is judged by."""
    segments: Annotated[tuple[str, ...], _names_schema(at_least=0)] = ()
    """Columns whose values the metrics are also broken down by."""
    overfit_threshold: Number = Field(0.05, ge=0)
    """A training score this much better than validation is flagged as overfitting."""
    fairness: Fairness | None = None
    """How the model's treatment of groups is measured on the hold-out (and judged, with
    ``max_disparity``): ``{sensitive: [columns], metrics, max_disparity, margin,
    min_group}``; leave out to measure nothing."""
    seed: Whole = Field(0, ge=0, le=MAX_SEED)
    """The seed of the split and of the estimator, so a spec trains the same twice."""
    description: FreeText = ""
    """Free text kept with the model version."""
    intended_use: FreeText = ""
    """Who the model is for and what it may decide (free text); the model card's
    intended use."""
    limitations: FreeText = ""
    """What it must not be used for, and what is known to go wrong (free text); the
    model card's known limitations."""

    # -- the checks a type cannot say ---------------------------------------------------
    # Each field's checks see the fields declared before it that were valid
    # (``info.data``), so a problem between two fields is reported with the others.

    @field_validator("model", "dataset", "target", mode="before")
    @classmethod
    def _given(cls, text: Any) -> Any:
        if text is None:
            raise ValueError("is required")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"must be non-empty text, got {text!r}")
        return text

    @field_validator("model")
    @classmethod
    def _model_name(cls, model: str) -> str:
        _setpoint_check(lambda: check_name("model", model))
        return model

    @field_validator("dataset")
    @classmethod
    def _dataset_ref(cls, dataset: str) -> str:
        _setpoint_check(lambda: _check_dataset_ref(dataset))
        return dataset

    @field_validator("features", "exclude", "segments", "metrics", mode="before")
    @classmethod
    def _one_or_many(cls, names: Any, info: ValidationInfo) -> Any:
        if names is None:
            return None if info.field_name in ("features", "metrics") else ()
        if isinstance(names, str):  # one name needs no brackets
            names = [names]
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) and n for n in names):
            kind = "metric" if info.field_name == "metrics" else "column"
            raise ValueError(f"must be a list of {kind} names, got {names!r}")
        return tuple(names)

    @field_validator("features")
    @classmethod
    def _features(cls, features: tuple[str, ...] | None, info: ValidationInfo) -> Any:
        if features is None:
            return None
        problems = _repeated(features)
        if not features:
            problems.append(((), "lists no columns; leave it out to use every usable column"))
        target = info.data.get("target")
        if target in features:
            problems.append(((), f"the target {target!r} cannot also be a feature"))
        if problems:
            raise Problems(problems)
        return features

    @field_validator("exclude")
    @classmethod
    def _exclude(cls, exclude: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        problems = _repeated(exclude)
        if exclude and info.data.get("features") is not None:
            problems.append(((), "give features or exclude, not both"))
        if problems:
            raise Problems(problems)
        return exclude

    @field_validator("task", mode="before")
    @classmethod
    def _known_task(cls, task: Any) -> Any:
        if task is not None and task not in TASKS:
            raise ValueError(
                f"{task!r} is not one of {', '.join(TASKS)} (or leave it out to infer)"
            )
        return task

    @field_validator("split", mode="before")
    @classmethod
    def _split_mapping(cls, split: Any) -> Any:
        if not isinstance(split, Mapping | Split):
            keys = ", ".join(info.alias or name for name, info in Split.model_fields.items())
            raise ValueError(f"must be a mapping with keys {keys}, got {split!r}")
        return split

    @field_validator("split")
    @classmethod
    def _time_column_apart(cls, split: Split, info: ValidationInfo) -> Split:
        column = split.time_column
        if column is None:
            return split
        if column == info.data.get("target"):
            raise Problems([(("time_column",), "cannot be the target")])
        if column in (info.data.get("features") or ()):
            raise Problems(
                [
                    (
                        ("time_column",),
                        f"{column!r} orders the split, so it cannot also be a feature; "
                        "remove it from features",
                    )
                ]
            )
        return split

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, metrics: tuple[str, ...] | None, info: ValidationInfo) -> Any:
        from setpoint.models.evaluation import METRICS  # evaluation imports sklearn

        if metrics is None:
            return None
        problems = _repeated(metrics)
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            problems.append(
                ((), f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
            )
        task = info.data.get("task")
        other = [m for m in metrics if m in METRICS and task and METRICS[m].task != task]
        if other:
            fitting = [m.name for m in METRICS.values() if m.task == task]
            problems.append(
                ((), f"{', '.join(other)} do not apply to {task}; use {', '.join(fitting)}")
            )
        if not metrics:
            problems.append(((), "lists no metric; leave it out for every metric of the task"))
        if problems:
            raise Problems(problems)
        return metrics

    @field_validator("segments")
    @classmethod
    def _segments(cls, segments: tuple[str, ...]) -> tuple[str, ...]:
        if problems := _repeated(segments):
            raise Problems(problems)
        return segments

    @field_validator("fairness")
    @classmethod
    def _fairness(cls, fairness: Fairness | None, info: ValidationInfo) -> Fairness | None:
        if fairness is None:
            return None
        problems: list[tuple[tuple[str | int, ...], str]] = []
        target = info.data.get("target")
        if target in fairness.sensitive:
            problems.append((("sensitive",), f"the target {target!r} cannot be a sensitive column"))
        task = info.data.get("task")
        if task and (other := fairness.wrong_task(task)):
            problems.append(
                (
                    ("metrics",),
                    f"{', '.join(other)} do not apply to {task}; leave metrics out for "
                    "those of the task",
                )
            )
        if problems:
            raise Problems(problems)
        return fairness

    @field_validator("seed", mode="before")
    @classmethod
    def _seed(cls, seed: Any) -> Any:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ValueError(f"must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
        return seed

    # -- what the rest of the code asks -------------------------------------------------

    def estimator_for(self, task: Task) -> Step:
        return self.estimator or Step(DEFAULT_ESTIMATORS[task])

    @property
    def pipeline(self) -> tuple[Step, ...]:
        """The preprocessing steps written out; none for ``auto`` and ``none``."""
        return () if isinstance(self.preprocessing, str) else self.preprocessing.pipeline

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
        return cls.read_yaml(text, source=source)

    @classmethod
    def from_dict(cls, data: Any) -> TrainSpec:
        """A spec from its dict form; every problem is reported at once, by path."""
        return cls.read(data)

    def to_dict(self) -> dict[str, Any]:
        """The plain form :meth:`from_dict` reads back to an equal spec; it is stored
        with every model version, so its shape stays readable by later versions."""
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
                else self.preprocessing.to_dict()
            ),
            "split": self.split.to_dict(),
            "metrics": None if self.metrics is None else list(self.metrics),
            "segments": list(self.segments),
            "overfit_threshold": self.overfit_threshold,
            # Only when given: specs stored before the key read back as they were.
            **({} if self.fairness is None else {"fairness": self.fairness.to_dict()}),
            "seed": self.seed,
            "description": self.description,
            "intended_use": self.intended_use,
            "limitations": self.limitations,
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)
