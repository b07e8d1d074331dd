"""The fairness gate: does the candidate treat the groups of the sensitive columns
unequally, or more unequally than the champion?

Both models' fairness tables (:func:`setpoint.models.fairness.fairness_table`) are
measured on the gate's labelled hold-out. Per listed metric the candidate fails when
its largest difference between judged groups exceeds ``max_disparity``, or exceeds
the champion's by more than ``margin``; the check's sentence names the metric and the
two groups. A metric with fewer than two groups large enough to judge is reported and
not judged (``min_samples`` already stops a hold-out too small for anything). The
sensitive columns come with the hold-out rows whether or not they are model inputs;
a hold-out without one fails, naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from setpoint.loop._check import Check
from setpoint.models.fairness import FairnessTable, fairness_table
from setpoint.models.spec import Fairness

__all__ = ["fairness_checks"]


def fairness_checks(
    settings: Fairness,
    *,
    task: str,
    positive: Any,
    y_true: Any,
    champion: Any,
    candidate: Any,
    sensitive: Mapping[str, Any],
) -> list[Check]:
    """The fairness checks of predictions ``candidate`` against ``champion`` on the
    rows of ``y_true``, grouped by the ``sensitive`` columns' values on those rows."""
    missing = [name for name in settings.sensitive if name not in sensitive]
    if missing:
        return [
            Check(
                "fairness",
                False,
                None,
                settings.max_disparity,
                f"the hold-out has no sensitive column(s) {', '.join(missing)}, so fairness "
                "cannot be judged; send them with the requests (they are kept in the "
                "prediction log) or remove them from fairness.sensitive",
            )
        ]
    groups = {name: sensitive[name] for name in settings.sensitive}
    metrics = settings.metrics_for(task)

    def table(predicted: Any) -> FairnessTable:
        return fairness_table(
            y_true,
            predicted,
            groups,
            task=task,
            positive=positive,
            metrics=metrics,
            min_group=settings.min_group,
        )

    mine, theirs = table(candidate), table(champion)
    return [_check(metric, mine, theirs, settings) for metric in metrics]


def _check(metric: str, mine: FairnessTable, theirs: FairnessTable, settings: Fairness) -> Check:
    name = f"fairness[{metric}]"
    limit, margin = settings.max_disparity, settings.margin
    gap, champion = mine.difference.get(metric), theirs.difference.get(metric)
    if gap is None:
        return Check(name, True, None, limit, f"{mine.gap(metric)}, so it is not judged")
    said = f"{mine.gap(metric)} for the candidate"
    if metric in mine.over(limit):
        was = "" if champion is None else f" (the champion's: {champion:.2f})"
        return Check(name, False, gap, limit, f"{said}, over the {limit:.2f} allowed{was}")
    if champion is not None and margin is not None and gap > champion + margin + 1e-12:
        return Check(
            name,
            False,
            gap,
            limit,
            f"{said}, against {champion:.2f} for the champion: wider by {gap - champion:.2f}, "
            f"more than the {margin:.2f} allowed",
        )
    allowed = [] if limit is None else [f"at most {limit:.2f} allowed"]
    if champion is not None:
        allowed.append(f"champion {champion:.2f}")
    return Check(
        name, True, gap, limit, f"{said}" + (f" ({'; '.join(allowed)})" if allowed else "")
    )
