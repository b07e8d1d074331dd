"""The gates of a policy as a person writes them: what a candidate must show on the
hold-out to replace the champion (:mod:`setpoint.loop.gates` does the judging).

Declarative models (``_documents.Document``), so the policy reader, its errors by
path and the JSON Schema of ``gates`` come from these declarations::

    gates:
      metrics: {roc_auc: {min_delta: 0.01}, log_loss: 0.02, brier:}
      confidence: 0.9
      segments: [channel]
      max_p99_latency_ms: 50
      fairness: {sensitive: [region], metrics: [false_positive_rate], max_disparity: 0.1}

``metrics`` is also a list: of names, of ``{metric: roc_auc, min_delta: 0.01}`` or of
``{roc_auc: {min_delta: 0.01}}``; a bare name is one metric at a margin of 0. It is
stored as the list of ``{metric, min_delta, relative}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BeforeValidator, Field, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from setpoint._documents import Document, Flag, Number, Text, Whole
from setpoint.loop._forms import AlsoAccepts
from setpoint.models.evaluation import METRICS
from setpoint.models.spec import Fairness

__all__ = ["MIN_BOOTSTRAP", "GateConfig", "MetricGate", "MetricName", "known_metric"]

# Fewer resamples make the interval itself noise.
MIN_BOOTSTRAP = 100


def known_metric(name: str) -> str:
    """``name`` if it is a metric of the registry; else the list of known ones."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    return name


_METRIC_NAME: dict[str, Any] = {"type": "string", "enum": list(METRICS)}

MetricName = Annotated[
    Text, AfterValidator(known_metric), Field(json_schema_extra={"enum": list(METRICS)})
]


class MetricGate(Document):
    """The candidate must beat the champion on ``metric`` by at least ``min_delta`` in
    the metric's better direction (a negative value allows a small loss); with
    ``relative``, ``min_delta`` is a fraction of the champion's value (0.01: 1 %)."""

    what: ClassVar[str] = "the gate metric"

    metric: MetricName
    """A metric of the model's task (roc_auc, log_loss, rmse...)."""
    min_delta: Number = 0.0
    """The least improvement the candidate needs over the champion; negative allows a
    small loss."""
    relative: Flag = False
    """``min_delta`` is a fraction of the champion's value (true) or an absolute
    difference (false)."""

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


_METRICS_FORMS = (
    "give a mapping {roc_auc: {min_delta: 0.01, relative: false}} or a list of names, "
    "{metric: roc_auc, min_delta: 0.01} or {roc_auc: {min_delta: 0.01}} items"
)


def _metric_forms(value: Any) -> Any:
    """Every written form of ``metrics`` as the list of ``{metric, ...}`` mappings;
    anything else is left for the model to refuse (a MetricGate, say, is kept)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"metric": value}]
    if isinstance(value, Mapping):
        return [_named(name, spec) for name, spec in value.items()]
    if isinstance(value, Sequence):
        items: list[Any] = []
        for item in value:
            if isinstance(item, str):
                items.append({"metric": item})
            elif isinstance(item, Mapping) and "metric" not in item:
                if len(item) != 1:
                    raise ValueError(f"{_METRICS_FORMS}; got {dict(item)!r}")
                ((name, spec),) = item.items()
                items.append(_named(name, spec))
            else:
                items.append(item)
        return items
    raise ValueError(f"{_METRICS_FORMS}; got {value!r}")


def _named(name: Any, spec: Any) -> Any:
    if spec is None:
        return {"metric": name}
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        return {"metric": name, "min_delta": spec}
    if isinstance(spec, Mapping) and "metric" not in spec:
        return {"metric": name, **spec}
    raise ValueError(f"{_METRICS_FORMS}; got {spec!r} for {name}")


class _MetricFormsSchema:
    """The JSON Schema of ``metrics``: the stored list, and the shorthands."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        stored = handler(core_schema)  # an array of MetricGate
        margin = {
            "anyOf": [
                {"type": "null"},
                {"type": "number", "description": "the min_delta"},
                {
                    "type": "object",
                    "properties": {
                        "min_delta": {"type": "number"},
                        "relative": {"type": "boolean"},
                    },
                    "additionalProperties": False,
                },
            ]
        }
        named = {"type": "object", "propertyNames": _METRIC_NAME, "additionalProperties": margin}
        one = {**named, "minProperties": 1, "maxProperties": 1}
        return {
            "anyOf": [
                {**stored, "items": {"anyOf": [stored["items"], _METRIC_NAME, one]}},
                named,
                _METRIC_NAME,
                {"type": "null"},
            ]
        }


def _one_task(gates: tuple[MetricGate, ...]) -> tuple[MetricGate, ...]:
    names = [g.metric for g in gates]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"metric(s) {', '.join(twice)} gated twice; give each metric once")
    if len({METRICS[n].task for n in names}) > 1:
        raise ValueError(
            f"the gated metrics {', '.join(names)} mix classification and regression "
            "metrics; gate only metrics of the model's task"
        )
    return gates


MetricGates = Annotated[
    tuple[MetricGate, ...],
    BeforeValidator(_metric_forms),
    AfterValidator(_one_task),
    _MetricFormsSchema(),
]


def _column_list(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return value
    raise ValueError(f"give a list of column names, not {value!r}")


def _distinct(columns: tuple[str, ...]) -> tuple[str, ...]:
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise ValueError(f"column(s) {', '.join(twice)} named twice; give each column once")
    return columns


Columns = Annotated[
    tuple[Annotated[Text, Field(min_length=1)], ...],
    BeforeValidator(_column_list),
    AfterValidator(_distinct),
    AlsoAccepts({"type": "string", "minLength": 1}, {"type": "null"}),
]


def _fraction(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(
            "give a fraction between 0 and 1 such as 0.9 (for a 90% interval), or null to "
            f"decide on the point estimate only, not {level:g}"
        )
    return level


_FRACTION = Field(json_schema_extra={"exclusiveMinimum": 0, "exclusiveMaximum": 1})


class GateConfig(Document):
    """What a candidate must show on the hold-out to replace the champion.

    ``metrics`` empty gates the task's primary metric (see
    :func:`~setpoint.models.evaluation.primary_metric`) at a margin of 0: not worse.
    ``confidence`` is the level of the paired bootstrap interval of the difference
    whose lower bound must reach each margin (None: the point estimate alone decides).
    ``segments`` names hold-out columns whose values are checked one by one, where at
    least ``min_segment_samples`` rows have the value; there the candidate may be worse
    by at most ``max_segment_drop`` (absolute) on each gated metric. The budgets are
    per one-row prediction (p99 latency, ms) and per 1,000 predictions (cost, in the
    currency of ``cpu_hour_cost``, the price of one CPU-hour); None is no budget.
    """

    what: ClassVar[str] = "the gates"

    metrics: MetricGates = ()
    """The metrics the candidate must beat the champion on, each with its margin
    (none: the task's primary metric, not worse). Written as a mapping of metric to
    margin (``{roc_auc: {min_delta: 0.01, relative: false}, log_loss: 0.02}``), or a
    list of names or of ``{metric, min_delta, relative}``, or one name."""
    min_samples: Whole = Field(200, ge=1)
    """The labelled hold-out rows a decision needs."""
    confidence: Annotated[Number, AfterValidator(_fraction), _FRACTION] | None = 0.9
    """The level of the paired bootstrap interval whose lower bound must reach each
    margin, e.g. 0.9 for 90 %; null: the point estimate alone decides."""
    bootstrap: Whole = Field(500, ge=MIN_BOOTSTRAP)
    """Bootstrap resamples of the hold-out."""
    seed: Whole = Field(0, ge=0)
    """The seed of the bootstrap."""
    segments: Columns = ()
    """Hold-out columns whose values are checked one by one."""
    max_segment_drop: Number = Field(0.05, ge=0)
    """The largest loss allowed in a segment, in the metric's units."""
    min_segment_samples: Whole = Field(100, ge=1)
    """The rows a segment value needs to be checked."""
    max_p99_latency_ms: Annotated[Number, Field(gt=0)] | None = None
    """The p99 latency budget of a one-row prediction, in milliseconds (null: none)."""
    max_cost_per_1000: Annotated[Number, Field(ge=0)] | None = None
    """The cost budget of 1,000 predictions, in the currency of ``cpu_hour_cost``
    (null: none)."""
    cpu_hour_cost: Annotated[Number, Field(ge=0)] | None = None
    """The price of one CPU-hour for the cost budget; null: the workspace's
    ``cpu_hour_price`` setting, which every other cost figure (monitor windows,
    ``/metrics``, ``setpoint loadtest``) is priced at."""
    # Left out of the stored form when not given, so policies stored before it read
    # back as they were.
    min_agreement: Annotated[Number | None, Field(ge=0, le=1, exclude_if=lambda v: v is None)] = (
        None
    )
    """The share of hold-out rows on which a classifier candidate must answer the
    champion's label, e.g. 0.99 for a version `setpoint optimize` built that should
    change nothing (null: no such gate)."""
    fairness: Annotated[Fairness | None, Field(exclude_if=lambda v: v is None)] = None
    """How the candidate's treatment of groups is judged against ``max_disparity`` and
    the champion's (``{sensitive, metrics, max_disparity, margin, min_group}``); leave
    out to use the model's spec's ``fairness``, if it has one."""

    def to_dict(self) -> dict[str, Any]:
        """Plain values for YAML or JSON (``metrics`` a list, whose order survives
        serializers that sort mapping keys); :meth:`from_dict` reads them back."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> GateConfig:
        """The gates of a policy file (nothing: the defaults)."""
        return cls.read({} if data is None else data)
