"""Fairness in production: per window, how the model's answers differ between groups
of the sensitive columns.

The groups come from the requests: a request may carry the spec's sensitive columns
beside the model's inputs, and the prediction log keeps them with the record
(``serving/lane.py``, ``LoadedModel.measured``); the monitor reads them from the
log's records as it reads the features. Per window, from the answers alone, the
selection rate of each group (the share answered with the positive class:
demographic parity, known at once); and, on the rows whose labels have come, the
whole fairness table of the task (:func:`setpoint.models.fairness.fairness_table`).
Each is kept in the window's results under ``fairness``, with ``max_disparity``, so
that the conditions are judged from the results alone: a metric whose difference
between judged groups exceeds it raises ``fairness:selection_rate`` or
``fairness:realized:METRIC``, naming the metric and the two groups.

A monitor's own ``fairness`` settings win; without them, the serving model's spec's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from setpoint.models.spec import Fairness
    from setpoint.monitoring._sources import ReferenceSources
    from setpoint.monitoring.conditions import Holding
    from setpoint.monitoring.monitor import Monitor

__all__ = ["REALIZED", "conditions", "measure", "sensitive_kinds", "with_settings"]

SELECTION = "selection_rate"
REALIZED = "fairness:realized:"


def with_settings(monitor: Monitor, sources: ReferenceSources) -> Monitor:
    """``monitor`` with the fairness settings it is run with: its own, else those of
    the spec of the model its reference was built from (None when neither has any)."""
    if monitor.config.fairness is not None:
        return monitor
    from setpoint.models.spec import Fairness

    spec = sources.model(monitor.reference.model).spec or {}
    if not spec.get("fairness"):
        return monitor
    settings = Fairness.from_dict(spec["fairness"])
    config = monitor.config.model_copy(update={"fairness": settings})
    return dataclasses.replace(monitor, config=config)


def sensitive_kinds(monitor: Monitor) -> dict[str, str]:
    """How the sensitive columns that are not features are read from the log: as
    categories (their values name the groups)."""
    settings = monitor.config.fairness
    features = monitor.reference.features
    if settings is None:
        return {}
    return {name: "categorical" for name in settings.sensitive if name not in features}


def measure(
    settings: Fairness,
    *,
    task: str,
    classes: list[Any] | None,
    groups: pa.Table,
    predictions: pa.Array,
    labels: pa.Array | None,
) -> dict[str, Any]:
    """A window's fairness: ``selection`` from the answers on every row (a classifier
    only), ``realized`` on the labelled rows; each a judged fairness table or None."""
    from setpoint.models.fairness import fairness_table, judged

    positive = classes[-1] if classes else None
    limit = settings.max_disparity
    missing = [name for name in settings.sensitive if name not in groups.column_names]
    out: dict[str, Any] = {"max_disparity": limit, "selection": None, "realized": None}
    if missing or not len(predictions):
        out["missing"] = missing
        return out
    answered = _values(predictions)
    if task == "classification" and SELECTION in settings.metrics_for(task):
        table = fairness_table(
            answered,
            answered,
            _columns(groups),
            task=task,
            positive=positive,
            metrics=[SELECTION],
            min_group=settings.min_group,
        )
        out["selection"] = judged(table, positive=positive, max_disparity=limit)
    has = None if labels is None else _labelled(labels)
    if has is not None and pc.any(has).as_py():
        truth = _values(labels.filter(has))  # type: ignore[union-attr]
        try:
            table = fairness_table(
                truth,
                _values(predictions.filter(has)),
                _columns(groups.filter(has)),
                task=task,
                positive=positive,
                metrics=settings.metrics_for(task),
                min_group=settings.min_group,
            )
        except (ValueError, TypeError):
            return out  # labels that cannot be compared: the performance says so
        out["realized"] = judged(table, positive=positive, max_disparity=limit)
    return out


def conditions(results: Mapping[str, Any], when: str) -> dict[str, Holding | None]:
    """The fairness conditions judged in a window's ``results``: a metric is judged
    where two groups are large enough and ``max_disparity`` is set."""
    from setpoint.models.fairness import FairnessTable

    found = results.get("fairness") or {}
    limit = found.get("max_disparity")
    judged: dict[str, Holding | None] = {}
    if limit is None:
        return judged
    for part, prefix in (("selection", "fairness:"), ("realized", REALIZED)):
        stored = found.get(part)
        if not stored:
            continue
        table = FairnessTable.from_dict(stored)
        over = table.over(limit)
        rows = sum(g.rows for g in table.groups)
        for metric in table.metrics:
            if table.difference.get(metric) is None:
                continue
            on = "labelled rows" if part == "realized" else "answers"
            judged[f"{prefix}{metric}"] = (
                (
                    "warning",
                    f"{table.gap(metric)} on {rows:,} {on} in {when}, over the {limit:.2f} allowed",
                    {"metric": metric, "difference": table.difference[metric], "limit": limit},
                )
                if metric in over
                else None
            )
    return judged


def _labelled(labels: pa.Array) -> pa.Array:
    has = pc.is_valid(labels)
    if pa.types.is_floating(labels.type):
        has = pc.and_(has, pc.invert(pc.fill_null(pc.is_nan(labels), True)))
    return has


def _values(values: pa.Array) -> list[Any]:
    return list(values.to_pylist())


def _columns(groups: pa.Table) -> dict[str, list[Any]]:
    return {name: groups.column(name).to_pylist() for name in groups.column_names}
