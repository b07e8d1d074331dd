"""Gates: may a candidate replace the champion?

Both models answer the same labelled hold-out (the newest rows of the retraining
window, which the candidate did not train on) and every check must pass:

- per gated metric, the candidate beats the champion by at least a margin in the
  metric's better direction (absolute, or a fraction of the champion's value; a
  negative margin allows a small loss). The metrics are those of the registry in
  :mod:`setpoint.models.evaluation`; none is configured means the task's primary one;
- the difference is not noise: a paired bootstrap over the hold-out rows (the same
  resampled rows for both models) gives a two-sided confidence interval of the
  difference, whose lower bound must reach the margin too;
- enough labelled rows (``min_samples``);
- no segment (a value of a column such as ``channel``, with enough rows) where the
  candidate is worse than the champion by more than ``max_segment_drop``: a model
  that is better on average but collapses for one group of customers does not pass;
- p99 latency and cost per 1,000 predictions, measured by :func:`measure_cost`,
  within their budgets;
- the candidate takes the inputs the endpoint's callers send: its input contract
  names the champion's features with the same kinds;
- with ``fairness`` settings, no listed metric differs between groups of the
  sensitive columns by more than ``max_disparity``, or by more than the champion's
  difference plus ``margin`` (:mod:`setpoint.loop.fairness_gate`).

A metric that is undefined for either model (ROC AUC without probabilities or with
one class) fails its check: a gate that cannot judge does not promote. The
:class:`GateReport` says, for each check, what was measured against what, in a
sentence a person reads; it is stored with the rollout.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from setpoint._display import count, html_summary, listing, number, short_repr
from setpoint.errors import UsageError
from setpoint.loop._check import Check
from setpoint.loop._check import float_or_none as _float_or_none
from setpoint.loop.bootstrap import Answers, paired_differences
from setpoint.loop.fairness_gate import fairness_checks
from setpoint.loop.gate_config import GateConfig, MetricGate
from setpoint.models.evaluation import METRICS, PRIMARY, evaluate, primary_metric, segment_metrics
from setpoint.models.predictor import ARGMAX_FLAVORS, Predictor
from setpoint.models.spec import Fairness

__all__ = [
    "Check",
    "GateConfig",
    "GateReport",
    "MetricGate",
    "evaluate_gates",
    "measure_cost",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
Array = npt.NDArray[Any]

TASKS = ("classification", "regression")
# The share of bootstrap resamples on which a metric must be defined for its interval
# to mean anything (ROC AUC is undefined on a resample without one of the classes).
MIN_DEFINED_SHARE = 0.9


# --- the report ---------------------------------------------------------------------


@dataclass(frozen=True)
class GateReport:
    """The gate's decision: ``passed`` when every check passed. ``champion`` and
    ``candidate`` are every metric of the task on the ``n_samples`` hold-out rows."""

    passed: bool
    checks: list[Check]
    n_samples: int
    champion: dict[str, float | None] = field(default_factory=dict)
    candidate: dict[str, float | None] = field(default_factory=dict)

    @property
    def reasons(self) -> list[str]:
        """Why the candidate did not pass: the detail of every failed check."""
        return [check.detail for check in self.checks if not check.passed]

    @property
    def failed(self) -> list[str]:
        """The names of the checks that failed."""
        return [check.name for check in self.checks if not check.passed]

    def _headline(self) -> str:
        """The first metric both models have: candidate against champion."""
        for name, value in self.candidate.items():
            if value is not None and self.champion.get(name) is not None:
                return f"{name} {number(value)} vs champion {number(self.champion[name])}"
        return ""

    def __repr__(self) -> str:
        verdict = "passed" if self.passed else f"failed {listing(self.failed)}"
        facts = [
            self._headline(),
            f"{len(self.checks)} checks on {count(self.n_samples)} rows",
        ]
        return short_repr("GateReport", verdict, facts)

    def _repr_html_(self) -> str:
        rows: list[tuple[str, object]] = [
            ("decision", "passed" if self.passed else "failed"),
            ("hold-out rows", count(self.n_samples)),
        ]
        for name in dict.fromkeys([*self.candidate, *self.champion]):
            figures = (self.candidate.get(name), self.champion.get(name))
            rows.append((name, f"candidate {number(figures[0])} vs champion {number(figures[1])}"))
        for check in self.checks:
            rows.append((check.name, f"{'passed' if check.passed else 'FAILED'}: {check.detail}"))
        return html_summary("GateReport", "passed" if self.passed else "failed", rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "n_samples": self.n_samples,
            "reasons": self.reasons,
            "checks": [check.to_dict() for check in self.checks],
            "champion": dict(self.champion),
            "candidate": dict(self.candidate),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateReport:
        return cls(
            passed=bool(data["passed"]),
            checks=[Check.from_dict(c) for c in data.get("checks", [])],
            n_samples=int(data.get("n_samples", 0)),
            champion={str(k): _float_or_none(v) for k, v in data.get("champion", {}).items()},
            candidate={str(k): _float_or_none(v) for k, v in data.get("candidate", {}).items()},
        )


# --- measuring latency and cost -----------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _require_int(name: str, value: Any, least: int, what: str) -> None:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < least:
        raise UsageError(
            f"{name} must be a whole number of {least} or more ({what}), not {value!r}"
        )


def _require_float(name: str, value: Any, what: str, *, positive: bool = False) -> None:
    ok = _is_number(value) and math.isfinite(value) and (value > 0 if positive else value >= 0)
    if not ok:
        raise UsageError(f"{name} must be a number of {what}, not {value!r}")


def measure_cost(
    predictor: Predictor,
    sample: pd.DataFrame,
    *,
    calls: int = 200,
    cpu_hour_cost: float,
) -> dict[str, float]:
    """Latency and CPU cost of one-row predictions by ``predictor``.

    ``calls`` predictions of one row each, cycling through the rows of ``sample``
    (each row passed as one record, as a JSON request brings it), answered the way
    serving answers: ``predict_proba`` for a classifier (with ``predict`` as well for
    flavors whose label is not the argmax of the probabilities), ``predict`` for a
    regressor. One untimed call first warms the model up.

    This is a measurement on this machine, single-threaded and in-process: it
    excludes HTTP, parsing, batching and queueing, and varies with the hardware and
    whatever else the machine is doing. Use it to compare models measured the same
    way and to catch a candidate that is many times slower or costlier, not as a
    service-level figure. CPU time is the process's (``time.process_time``), so
    threads a model starts count, and so would other busy threads of this process.

    Returns ``calls``, ``p50_latency_ms``, ``p99_latency_ms``, ``mean_latency_ms``
    (wall-clock per call), ``cpu_seconds_per_1000`` (CPU seconds per 1,000
    predictions), ``cpu_hour_cost`` and ``cost_per_1000`` =
    ``cpu_seconds_per_1000 / 3600 * cpu_hour_cost``.
    """
    _require_int("calls", calls, 1, "predictions to time")
    _require_float("cpu_hour_cost", cpu_hour_cost, "0 or more: the price of one CPU-hour")
    if len(sample) == 0:
        raise UsageError("measuring latency and cost needs a sample with at least one row")
    records = sample.iloc[: min(len(sample), calls)].to_dict(orient="records")
    answer = _serving_call(predictor)
    answer(records[0])
    latencies = np.empty(calls, dtype=np.float64)
    clock, cpu = time.perf_counter, time.process_time
    cpu_start = cpu()
    for k in range(calls):
        record = records[k % len(records)]
        start = clock()
        answer(record)
        latencies[k] = clock() - start
    cpu_seconds = cpu() - cpu_start
    cpu_per_1000 = cpu_seconds / calls * 1000
    return {
        "calls": calls,
        "p50_latency_ms": float(np.percentile(latencies, 50) * 1000),
        "p99_latency_ms": float(np.percentile(latencies, 99) * 1000),
        "mean_latency_ms": float(latencies.mean() * 1000),
        "cpu_seconds_per_1000": cpu_per_1000,
        "cpu_hour_cost": float(cpu_hour_cost),
        "cost_per_1000": cpu_per_1000 / 3600 * cpu_hour_cost,
    }


def _serving_call(predictor: Predictor) -> Callable[[Any], object]:
    if predictor.task != "classification":
        return predictor.predict
    if predictor.flavor in ARGMAX_FLAVORS:
        return predictor.predict_proba

    def both(record: Any) -> object:
        return predictor.predict_proba(record), predictor.predict(record)

    return both


# --- evaluating the gates -----------------------------------------------------------


def evaluate_gates(
    config: GateConfig,
    *,
    task: str,
    classes: Sequence[Any] | None,
    y_true: Any,
    champion: tuple[Any, Any],
    candidate: tuple[Any, Any],
    segments: Mapping[str, Any] | None = None,
    candidate_cost: Mapping[str, Any] | None = None,
    contract_problems: Sequence[str] | None = None,
    fairness: Fairness | None = None,
    sensitive: Mapping[str, Any] | None = None,
) -> GateReport:
    """Judge ``candidate`` against ``champion`` on the same labelled hold-out rows.

    ``champion`` and ``candidate`` are ``(predictions, probabilities)`` on the rows of
    ``y_true`` (probabilities: one column per class in ``classes`` order, or None).
    ``segments`` maps a segment column to its values on those rows; the columns
    checked are ``config.segments`` (all given ones when that is empty), and a named
    column that is not given fails its check. ``candidate_cost`` is what
    :func:`measure_cost` returned for the candidate; the cost is recomputed from its
    CPU seconds at ``config.cpu_hour_cost`` (when set; else at the price it was
    measured at), so the budget and the price agree. A
    budget without a measurement fails. ``contract_problems``, when given, are what
    would break the endpoint's callers (a feature added, dropped or of another kind):
    any fails the ``contract`` check. ``fairness`` (``config.fairness`` when not
    given) judges both models' treatment of the groups of the ``sensitive`` columns'
    values on those rows; a classifier's rates count the last of ``classes`` as the
    positive class.
    """
    if task not in TASKS:
        raise UsageError(f"task must be 'classification' or 'regression', not {task!r}")
    labels = None if classes is None else list(classes)
    y = np.asarray(y_true)
    n = len(y)
    champ = _answers("champion", champion, n, task, labels)
    cand = _answers("candidate", candidate, n, task, labels)
    champ_all = evaluate(y, champ[0], champ[1], task=task, classes=labels)
    cand_all = evaluate(y, cand[0], cand[1], task=task, classes=labels)

    checks = [_min_samples_check(n, config.min_samples)]
    gates = _gated(config, task, champ_all, cand_all)
    if not gates:
        checks.append(
            Check(
                PRIMARY[task],
                False,
                None,
                None,
                f"no metric is defined for both models on the {n} hold-out rows, so the "
                "candidate cannot be compared with the champion",
            )
        )
    defined = [
        g
        for g in gates
        if champ_all.get(g.metric) is not None and cand_all.get(g.metric) is not None
    ]
    differences = (
        paired_differences(
            [g.metric for g in defined],
            y,
            champ,
            cand,
            task,
            labels,
            resamples=config.bootstrap,
            seed=config.seed,
        )
        if config.confidence is not None and defined
        else {}
    )
    for gate in gates:
        checks.append(
            _metric_check(
                gate,
                config,
                champ_all.get(gate.metric),
                cand_all.get(gate.metric),
                differences.get(gate.metric),
                champ,
                cand,
            )
        )
    checks += _segment_checks(
        config, segments, [g.metric for g in gates], y, champ, cand, task, labels
    )
    checks += _budget_checks(config, candidate_cost)
    if config.min_agreement is not None:
        checks.append(_agreement_check(config.min_agreement, champ[0], cand[0], task))
    if contract_problems is not None:
        checks.append(_contract_check(list(contract_problems)))
    fairness = fairness or config.fairness
    if fairness is not None:
        checks += fairness_checks(
            fairness,
            task=task,
            positive=labels[-1] if labels else None,
            y_true=y,
            champion=champ[0],
            candidate=cand[0],
            sensitive=sensitive or {},
        )
    return GateReport(
        passed=all(check.passed for check in checks),
        checks=checks,
        n_samples=n,
        champion=champ_all,
        candidate=cand_all,
    )


def _answers(
    who: str, answers: tuple[Any, Any], n: int, task: str, classes: list[Any] | None
) -> Answers:
    try:
        predictions, proba = answers
    except (TypeError, ValueError):
        raise UsageError(
            f"the {who}'s answers must be a pair (predictions, probabilities or None)"
        ) from None
    pred = np.asarray(predictions)
    if pred.ndim != 1 or len(pred) != n:
        raise UsageError(
            f"the {who} has {len(pred) if pred.ndim else 'no'} prediction(s) for {n} labelled "
            "rows; pass one prediction per hold-out row"
        )
    if proba is None or task == "regression":
        return pred, None
    probabilities = np.asarray(proba, dtype=np.float64)
    columns = None if classes is None else len(classes)
    if (
        probabilities.ndim != 2
        or len(probabilities) != n
        or (columns is not None and probabilities.shape[1] != columns)
    ):
        raise UsageError(
            f"the {who}'s probabilities have shape {probabilities.shape}, but the hold-out "
            f"has {n} rows"
            + (f" and {columns} classes" if columns is not None else "")
            + "; pass one row per hold-out row and one column per class"
        )
    return pred, probabilities


def _gated(
    config: GateConfig,
    task: str,
    champion: Mapping[str, float | None],
    candidate: Mapping[str, float | None],
) -> list[MetricGate]:
    for gate in config.metrics:
        if METRICS[gate.metric].task != task:
            usable = ", ".join(m.name for m in METRICS.values() if m.task == task)
            raise UsageError(
                f"{gate.metric} is a {METRICS[gate.metric].task} metric but the models do "
                f"{task}; gate one of {usable}"
            )
    if config.metrics:
        return list(config.metrics)
    primary = primary_metric(task, champion, candidate)
    return [] if primary is None else [MetricGate(metric=primary)]


def _min_samples_check(n: int, least: int) -> Check:
    if n < least:
        detail = f"too few samples: {n} < {least} labelled hold-out rows"
    else:
        detail = f"{n} labelled hold-out rows, needs >= {least}"
    return Check("min_samples", n >= least, float(n), float(least), detail)


def _metric_check(
    gate: MetricGate,
    config: GateConfig,
    champion: float | None,
    candidate: float | None,
    differences: FloatArray | None,
    champ: Answers,
    cand: Answers,
) -> Check:
    name = gate.metric
    metric = METRICS[name]
    label = name if metric.higher_is_better else f"{name} (lower is better)"
    if champion is None or candidate is None:
        which = [
            who
            for who, value, answers in (
                ("champion", champion, champ),
                ("candidate", candidate, cand),
            )
            if value is None
        ]
        missing_proba = [
            who
            for who, value, answers in (
                ("champion", champion, champ),
                ("candidate", candidate, cand),
            )
            if value is None and metric.needs_proba and answers[1] is None
        ]
        why = (
            f"the {' and the '.join(missing_proba)} gave no probabilities"
            if missing_proba
            else "it cannot be computed on these rows (one class only, or a true zero)"
        )
        return Check(
            name,
            False,
            None,
            None,
            f"{name} is undefined for the {' and the '.join(which)} on the hold-out: {why}; "
            "the gate cannot compare the models on it",
        )
    improvement = _improvement(name, champion, candidate)
    margin = gate.min_delta * abs(champion) if gate.relative else gate.min_delta
    needs = f"needs >= {_num(margin, signed=True)}"
    if gate.relative:
        needs += f" ({gate.min_delta * 100:g}% of the champion's {_num(champion)})"
    head = (
        f"{label} {_num(candidate)} vs champion {_num(champion)}: {_num(improvement, signed=True)}"
    )
    point_ok = _at_least(improvement, margin)
    if config.confidence is None or differences is None:
        detail = f"{head}, {needs}" + ("" if point_ok else "; not enough")
        return Check(name, point_ok, _finite(improvement), _finite(margin), detail)
    level = f"{config.confidence * 100:g}% CI"
    defined = differences[np.isfinite(differences)]
    if len(defined) < MIN_DEFINED_SHARE * len(differences):
        detail = (
            f"{head}, {needs}; but {name} is undefined on {len(differences) - len(defined)} of "
            f"{len(differences)} bootstrap resamples (too few rows of a class?), so its "
            "confidence interval cannot be trusted; collect more labelled rows"
        )
        return Check(name, False, _finite(improvement), _finite(margin), detail)
    tail = (1 - config.confidence) / 2
    low, high = (float(q) for q in np.quantile(defined, [tail, 1 - tail]))
    passed = point_ok and _at_least(low, margin)
    detail = f"{head} ({level} {_num(low, signed=True)} to {_num(high, signed=True)}), {needs}"
    if not point_ok:
        detail += "; not enough"
    elif not passed:
        detail += "; the interval reaches below that, so the difference may be noise"
    return Check(name, passed, _finite(improvement), _finite(margin), detail, (low, high))


def _improvement(metric: str, champion: float, candidate: float) -> float:
    """How much better the candidate is, positive whichever way the metric points."""
    return candidate - champion if METRICS[metric].higher_is_better else champion - candidate


def _at_least(value: float, threshold: float) -> bool:
    """``value >= threshold``, forgiving the last bits of float arithmetic (an accuracy
    of 0.75 against 0.74 is an improvement of 0.01 whatever the rounding says)."""
    return value >= threshold or math.isclose(value, threshold, rel_tol=1e-9, abs_tol=0.0)


def _segment_checks(
    config: GateConfig,
    segments: Mapping[str, Any] | None,
    metrics: list[str],
    y: Array,
    champ: Answers,
    cand: Answers,
    task: str,
    classes: list[Any] | None,
) -> list[Check]:
    given = dict(segments or {})
    names = list(config.segments) or list(given)
    checks: list[Check] = []
    for column in names:
        if column not in given:
            checks.append(
                Check(
                    f"segments[{column}]",
                    False,
                    None,
                    None,
                    f"the hold-out has no segment column {column!r}, so the candidate cannot "
                    "be checked per segment; add the column or remove it from the gates",
                )
            )
            continue
        values = np.asarray(given[column], dtype=object)
        if values.ndim != 1 or len(values) != len(y):
            raise UsageError(
                f"segment column {column!r} has {values.size} values for {len(y)} hold-out "
                "rows; pass one value per row"
            )
        kwargs: dict[str, Any] = {
            "task": task,
            "classes": classes,
            "metrics": metrics,
            "min_rows": config.min_segment_samples,
        }
        champ_seg = segment_metrics(y, champ[0], champ[1], values, **kwargs)
        cand_seg = segment_metrics(y, cand[0], cand[1], values, **kwargs)
        for value, row in champ_seg.items():
            n_rows = int(row["n"])
            if n_rows < config.min_segment_samples:
                continue
            for name in metrics:
                checks.append(
                    _segment_check(
                        f"{name}[{column}={value}]",
                        name,
                        row.get(name),
                        cand_seg[value].get(name),
                        n_rows,
                        config.max_segment_drop,
                    )
                )
    return checks


def _segment_check(
    check: str,
    name: str,
    champion: float | None,
    candidate: float | None,
    n_rows: int,
    max_drop: float,
) -> Check:
    allowed = f"allows a drop of at most {_num(max_drop)}"
    if champion is None or candidate is None:
        return Check(
            check,
            True,
            None,
            -max_drop,
            f"{check}: {name} is undefined on these {n_rows} rows for the "
            f"{'champion' if champion is None else 'candidate'}, so this segment is not judged",
        )
    improvement = _improvement(name, champion, candidate)
    passed = _at_least(improvement, -max_drop)
    label = check if METRICS[name].higher_is_better else f"{check} (lower is better)"
    detail = (
        f"{label} {_num(candidate)} vs champion {_num(champion)}: "
        f"{_num(improvement, signed=True)} on {n_rows} rows, {allowed}"
    )
    if not passed:
        detail += "; the candidate is much worse here"
    return Check(check, passed, _finite(improvement), -max_drop, detail)


def _budget_checks(config: GateConfig, cost: Mapping[str, Any] | None) -> list[Check]:
    checks: list[Check] = []
    how = "; measure it with measure_cost(candidate, sample) and pass candidate_cost"
    if config.max_p99_latency_ms is not None:
        budget = config.max_p99_latency_ms
        p99 = None if cost is None else _float_or_none(cost.get("p99_latency_ms"))
        if p99 is None:
            checks.append(
                Check("p99_latency_ms", False, None, budget, f"p99 latency was not measured{how}")
            )
        else:
            passed = p99 <= budget
            checks.append(
                Check(
                    "p99_latency_ms",
                    passed,
                    p99,
                    budget,
                    f"p99 latency {_num(p99)} ms per one-row prediction (measured in-process), "
                    f"budget {_num(budget)} ms" + ("" if passed else "; over budget"),
                )
            )
    if config.max_cost_per_1000 is not None:
        budget = config.max_cost_per_1000
        per_1000: float | None = None
        price = config.cpu_hour_cost
        if price is None and cost is not None:
            price = _float_or_none(cost.get("cpu_hour_cost"))
        if cost is not None and cost.get("cpu_seconds_per_1000") is not None and price is not None:
            per_1000 = float(cost["cpu_seconds_per_1000"]) / 3600 * price
        elif cost is not None:
            per_1000 = _float_or_none(cost.get("cost_per_1000"))
        if per_1000 is None:
            checks.append(
                Check("cost_per_1000", False, None, budget, f"the cost was not measured{how}")
            )
        else:
            passed = per_1000 <= budget
            checks.append(
                Check(
                    "cost_per_1000",
                    passed,
                    per_1000,
                    budget,
                    f"cost {per_1000:.3g} per 1,000 predictions (CPU time at "
                    f"{price or 0:g} per CPU-hour), budget {budget:.3g}"
                    + ("" if passed else "; over budget"),
                )
            )
    return checks


def _agreement_check(least: float, champion: Any, candidate: Any, task: str) -> Check:
    """The share of rows on which the candidate answers the champion's label."""
    if task != "classification":
        return Check(
            "agreement",
            False,
            None,
            least,
            "min_agreement compares labels, which a regressor does not give; remove it "
            "from the gates",
        )
    same = float(np.mean(np.asarray(champion) == np.asarray(candidate)))
    passed = same >= least
    return Check(
        "agreement",
        passed,
        same,
        least,
        f"the candidate gives the champion's label on {same:.2%} of the hold-out rows, "
        f"at least {least:.2%} needed" + ("" if passed else "; too different"),
    )


def _contract_check(problems: list[str]) -> Check:
    if not problems:
        return Check(
            "contract", True, 0.0, 0.0, "the candidate takes the same inputs as the champion"
        )
    shown = "; ".join(problems[:5]) + (
        f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
    )
    return Check(
        "contract",
        False,
        float(len(problems)),
        0.0,
        f"{len(problems)} input contract problem(s): {shown}",
    )


def _num(value: float, *, signed: bool = False) -> str:
    """Three decimals for the usual metric scale, four significant digits otherwise."""
    sign = "+" if signed else ""
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:{sign}.3f}"
    return f"{value:{sign}.4g}"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
