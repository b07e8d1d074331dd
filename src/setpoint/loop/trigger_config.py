"""A policy's triggers as a person writes them: one key and its setting each.

::

    triggers:
      - drift: any             # a feature drifted (or a list of feature names)
      - drift_share: 0.3       # at least this share of the features drifted
      - performance: {metric: roc_auc, source: realized, drop: 0.05}  # or below: 0.7
      - schedule: "0 3 * * 1"  # cron, UTC
      - labels: 5000           # this many new labels since the last retraining

:class:`Trigger` is one declarative model with a field per kind, of which exactly one
is given, so a mistake is reported where it was written
(``triggers[2].performance.drop``) and the JSON Schema is the five one-key forms.
:mod:`setpoint.loop.triggers` decides when they hold.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetJsonSchemaHandler,
    WithJsonSchema,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from setpoint._documents import Document, Number, Text, Whole
from setpoint.loop.gate_config import MetricName

__all__ = ["KINDS", "Performance", "Trigger", "TriggerKind", "next_run"]

TriggerKind = Literal["drift", "drift_share", "performance", "schedule", "labels"]
KINDS: tuple[TriggerKind, ...] = get_args(TriggerKind)


def _positive_drop(drop: float) -> float:
    if not drop > 0:
        raise ValueError(
            "the fraction of the reference figure the metric may lose before it fires: "
            f"give more than 0, e.g. 0.05, not {drop:g}"
        )
    return drop


class Performance(Document):
    """The watched metric is worse than a value (``below``) or than the reference's
    figure by a fraction of it (``drop``): give one of the two."""

    what: ClassVar[str] = "the performance trigger"

    metric: MetricName
    """The metric watched (roc_auc, accuracy, rmse...)."""
    source: Literal["realized", "estimated"] = "realized"
    """``realized``: from the labels that came back; ``estimated``: the monitor's
    estimate before the labels come."""
    below: Number | None = None
    """Fire when the metric is worse than this value."""
    drop: (
        Annotated[
            Number, AfterValidator(_positive_drop), Field(json_schema_extra={"exclusiveMinimum": 0})
        ]
        | None
    ) = None
    """Fire when the metric is worse than the reference's by this fraction of it (0.05:
    5 %)."""

    @model_validator(mode="after")
    def _below_or_drop(self) -> Performance:
        if (self.below is None) == (self.drop is None):
            raise ValueError(
                f"give either below (a value of {self.metric}) or drop (a fraction of the "
                "reference figure), not both or neither"
            )
        return self


def _features(value: Any) -> Any:
    if value is None or value is True or value == "any" or value == []:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(n, str) for n in value):
        return value
    raise ValueError(f"give 'any' or a list of feature names, not {value!r}")


def _performance(value: Any) -> Any:
    if value is None or isinstance(value, Mapping | Performance):
        return value
    raise ValueError(
        f"give {{metric: NAME, below: VALUE}} or {{metric: NAME, drop: FRACTION}}, not {value!r}"
    )


def _cron(text: str) -> str:
    from croniter import croniter

    if not croniter.is_valid(text):
        raise ValueError(
            f"{text!r} is not a cron expression; write e.g. '0 3 * * 1' "
            "(minute hour day-of-month month day-of-week, UTC)"
        )
    return text


_DRIFT_SCHEMA = WithJsonSchema(
    {
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}},
            {"type": "null"},
            {"const": True},
        ]
    }
)


class Trigger(Document):
    """One condition that starts a rollout, written as one key and its setting
    (``- drift_share: 0.3``); :attr:`kind` is that key."""

    what: ClassVar[str] = "the trigger"

    drift: Annotated[tuple[Text, ...] | None, BeforeValidator(_features), _DRIFT_SCHEMA] = None
    """A feature drifted: ``any`` feature, or one of the features named."""
    drift_share: Annotated[Number, Field(gt=0, le=1)] | None = None
    """At least this share of the features drifted in a window, e.g. 0.3."""
    performance: Annotated[Performance | None, BeforeValidator(_performance)] = None
    """The metric is worse than a value or than the reference's."""
    schedule: Annotated[Text, AfterValidator(_cron)] | None = None
    """A cron expression, in UTC: ``"0 3 * * 1"`` is Mondays at 03:00."""
    labels: Annotated[Whole, Field(ge=1)] | None = None
    """This many new labels came since the last retraining, e.g. 5000."""

    @model_validator(mode="before")
    @classmethod
    def _one_key(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and len(data) == 1:
            return data
        if isinstance(data, Trigger):
            return data
        raise ValueError(
            f"a trigger is one of {', '.join(KINDS)} with its setting "
            f"(e.g. '- drift_share: 0.3'), not {data!r}"
        )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Trigger(drift_share=0.3), not the four kinds it is not
        yield self.kind, getattr(self, self.kind)

    @property
    def kind(self) -> TriggerKind:
        set_ = [k for k in KINDS if getattr(self, k) is not None]
        return set_[0]

    @property
    def features(self) -> tuple[str, ...]:
        """drift: the features named; () is any feature."""
        return self.drift or ()

    @property
    def share(self) -> float:
        return self.drift_share or 0.0

    @property
    def metric(self) -> str:
        return "" if self.performance is None else self.performance.metric

    @property
    def source(self) -> Literal["realized", "estimated"]:
        return "realized" if self.performance is None else self.performance.source

    @property
    def below(self) -> float | None:
        return None if self.performance is None else self.performance.below

    @property
    def drop(self) -> float | None:
        return None if self.performance is None else self.performance.drop

    @property
    def cron(self) -> str:
        return self.schedule or ""

    @model_serializer
    def to_dict(self) -> dict[str, Any]:
        """The trigger as written: one key and its setting."""
        kind = self.kind
        if kind == "drift":
            return {"drift": list(self.features) or "any"}
        if kind == "performance":
            assert self.performance is not None
            return {"performance": self.performance.model_dump(mode="json", exclude_none=True)}
        return {kind: getattr(self, kind)}

    @classmethod
    def from_dict(cls, data: Any) -> Trigger:
        return cls.read(data)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # One key and its setting: the five kinds as properties (an editor completes
        # them), exactly one of which is given.
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        if "properties" not in target:  # the serialization schema: to_dict's
            return schema
        properties: dict[str, Any] = target["properties"]
        for key, value in properties.items():
            properties[key] = _not_null(key, value)
        target["minProperties"] = target["maxProperties"] = 1
        target["oneOf"] = [{"required": [key]} for key in properties]
        return schema


def _not_null(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A trigger's setting without the ``null`` that stands for "not this kind"."""
    out = {k: v for k, v in schema.items() if not (k == "default" and v is None)}
    if key == "drift":  # `- drift:` is any feature
        return out
    members = [m for m in out.pop("anyOf", []) if m != {"type": "null"}]
    if len(members) == 1:
        out.update(members[0])
    elif members:
        out["anyOf"] = members
    return out


def next_run(cron: str, after: datetime) -> datetime:
    """The first time ``cron`` fires after ``after`` (UTC)."""
    from croniter import croniter

    found: datetime = croniter(cron, after).get_next(datetime)
    return found
