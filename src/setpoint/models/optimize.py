"""Cheaper candidates of a registered model, each measured against it on its hold-out.

``optimize(ws, "credit-risk@3")`` builds, from a LightGBM version trained by setpoint:

- ``compiled``: the trees compiled to native code (treelite + tl2cgen, the system C
  compiler), flavor ``compiled``;
- ``onnx``: the model exported to ONNX and run by ONNX Runtime, flavor ``onnx``;
- ``pruned``: the first trees only, as many as score best on the hold-out (or a
  budget of ``trees``), flavor ``lightgbm``;
- ``distilled``: a smaller LightGBM (a quarter of the trees, at most 15 leaves each)
  fitted to the original's outputs on its training rows, flavor ``lightgbm``;

and from a scikit-learn version:

- ``onnx``: the whole pipeline exported to ONNX, flavor ``onnx-pipeline``;
- ``quantized``: that graph's dense weights in int8 (ONNX Runtime's dynamic
  quantization), when it has any (a network; a linear model has none).

Each is measured on the original's hold-out (the rows its training run held out, same
split and seed) next to the original: how often it answers the same label, the
largest difference in probability (or value), the hold-out metric and its change,
one-row latency and cost (:func:`setpoint.loop.gates.measure_cost`, at the workspace's
``cpu_hour_price``), batch throughput and artifact size. Unless ``register=False``
each becomes a new version of the same model whose lineage names the original
(``optimized_from``), so it can be promoted, served and monitored like any other.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from setpoint.cost import Prices
from setpoint.errors import UsageError
from setpoint.models import _candidates, background
from setpoint.models import _training_data as training_data
from setpoint.models.evaluation import FALLBACK, METRICS, PRIMARY, evaluate
from setpoint.models.predictor import Predictor
from setpoint.models.registry import ModelVersion
from setpoint.models.spec import TrainSpec

if TYPE_CHECKING:
    from setpoint.workspace import Workspace

__all__ = ["CANDIDATES", "Measured", "OptimizeReport", "optimize"]

CANDIDATES = ("compiled", "onnx", "quantized", "pruned", "distilled")
# The candidates each flavor can have, all built by default.
_FOR_FLAVOR = {
    "lightgbm": ("compiled", "onnx", "pruned", "distilled"),
    "sklearn": ("onnx", "quantized"),
}
# Why a candidate does not apply to a flavor.
_NEEDS = {
    "compiled": "it compiles a LightGBM model's trees",
    "pruned": "it drops a LightGBM model's trees",
    "distilled": "its student learns a LightGBM model's outputs on the same float matrix",
    "quantized": "trees have no dense weights to quantize (it applies to linear models "
    "and networks)",
}
ORIGINAL = "original"
Progress = Callable[[str, float], None]
# One-row predictions timed per candidate, and hold-out rows they cycle through.
CALLS = 500
_SAMPLE_ROWS = 200
# Batch throughput: the best of this many passes over the hold-out.
_PASSES = 3
_NO_QUANTIZATION = (
    "no int8 quantization: trees have no dense weights to quantize (it applies to "
    "linear models and networks)"
)


@dataclass(frozen=True)
class Measured:
    """One candidate (or the original) on the original's hold-out."""

    candidate: str
    flavor: str
    ref: str | None  # the version registered, None when measured only
    same_labels: float | None  # share of hold-out rows with the original's label
    max_difference: float  # the largest |probability (or value) - the original's|
    metric: str | None
    value: float | None
    delta: float | None  # value - the original's value
    p50_ms: float
    p99_ms: float
    rows_per_second: float
    size_bytes: int
    cost_per_1000: float
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class OptimizeReport:
    original: str
    holdout_rows: int
    cpu_hour_price: float
    calls: int
    rows: list[Measured]  # the original first
    notes: list[str] = field(default_factory=list)
    # Each row's model, by candidate name (the original's as "original"), to use or
    # time further (bench/optimize.py); not part of the report's data.
    predictors: dict[str, Predictor] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "original": self.original,
            "holdout_rows": self.holdout_rows,
            "cpu_hour_price": self.cpu_hour_price,
            "calls": self.calls,
            "candidates": [row.to_dict() for row in self.rows],
            "notes": list(self.notes),
        }


def pareto_svg(report: OptimizeReport) -> str | None:
    """The candidates' hold-out metric against their cost per 1,000 predictions, the
    line through those no other beats: an SVG document (None without a known metric)."""
    from setpoint.ui.charts import pareto_chart

    metric = report.rows[0].metric
    if metric is None or metric not in METRICS:
        return None
    points = [(row.candidate, row.cost_per_1000, row.value) for row in report.rows]
    svg = pareto_chart(
        [(name, cost, value) for name, cost, value in points if value is not None],
        title=f"{report.original} and its candidates: {metric} against what they cost",
        x_unit=f"cost per 1,000 predictions (one row a call, at {report.cpu_hour_price}/CPU-hour)",
        y_unit=metric,
        higher_is_better=METRICS[metric].higher_is_better,
    )
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + str(svg) + "\n"


def optimize(
    ws: Workspace,
    ref: str,
    *,
    only: Sequence[str] | None = None,
    trees: int | None = None,
    register: bool = True,
    calls: int = CALLS,
    progress: Progress | None = None,
) -> OptimizeReport:
    """Build the ``only`` candidates (all of :data:`CANDIDATES` by default) of version
    ``ref``, measure each against it, and register each as a new version unless
    ``register`` is False. ``trees``: the pruned candidate keeps the first ``trees``
    trees instead of the best number on the hold-out."""
    version = ws.model(ref)
    chosen = _chosen(only, version)
    if trees is not None and (isinstance(trees, bool) or trees < 1):
        raise UsageError(f"trees must be a whole number of 1 or more, not {trees!r}")
    report = progress or (lambda _step, _fraction: None)
    original = ws.load_model(version.ref)
    booster = getattr(original, "booster", None) if version.flavor == "lightgbm" else None
    report("loading the training data", 0.0)
    dataset, spec = _training_source(ws, version)
    table = ws.load_dataset(dataset.ref)
    (train, _), (holdout, truth) = training_data.split(spec, table, version.task)  # type: ignore[arg-type]
    if holdout.num_rows == 0:
        raise UsageError(f"{version.ref} has no hold-out rows to measure candidates on")
    metric = _metric(version)
    price = Prices.of(ws.settings).cpu_hour  # the price every cost figure uses
    bench = _Bench(original, holdout, truth, metric, price, calls)
    steps = len(chosen) + 1
    report(f"measuring {version.ref}", 0.05)
    rows = [bench.measure(ORIGINAL, original, None, "the version optimised")]
    predictors = {ORIGINAL: original}
    notes: list[str] = []
    for k, name in enumerate(chosen, start=1):
        report(f"building {name}", 0.05 + 0.95 * (k - 0.5) / steps)
        candidate, note = _candidates.build(
            name, original, booster, train, bench.best_iteration, spec, trees
        )
        if candidate is None:
            notes.append(f"{name}: not built; {note}")
            continue
        report(f"measuring {name}", 0.05 + 0.95 * (k - 0.2) / steps)
        measured = bench.measure(name, candidate, None, note)
        if register:
            registered = _register(
                ws, version, dataset, name, candidate, measured, train, spec, bench
            )
            measured = _with_ref(measured, registered.ref)
        rows.append(measured)
        predictors[name] = candidate
    report("done", 1.0)
    if "onnx" in chosen and version.flavor == "lightgbm":
        notes.append(f"onnx: {_NO_QUANTIZATION}")
    if "pruned" in chosen and trees is None:
        notes.append(
            "pruned: the number of trees was chosen on the hold-out it is measured on, so "
            "its figure there is optimistic; judge it on fresh data before promoting it"
        )
    return OptimizeReport(version.ref, holdout.num_rows, price, calls, rows, notes, predictors)


def _chosen(only: Sequence[str] | None, version: ModelVersion) -> list[str]:
    if version.flavor not in _FOR_FLAVOR:
        raise UsageError(
            f"{version.ref} is a {version.flavor} model; optimize builds candidates of "
            f"{' and '.join(_FOR_FLAVOR)} models"
        )
    applicable = _FOR_FLAVOR[version.flavor]
    if only is None:
        return list(applicable)
    unknown = [name for name in only if name not in CANDIDATES]
    if unknown or not only:
        raise UsageError(
            f"unknown candidate(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(CANDIDATES)}"
        )
    wrong = [name for name in only if name not in applicable]
    if wrong:
        raise UsageError(
            f"{wrong[0]} does not apply to {version.ref}, a {version.flavor} model: "
            f"{_NEEDS[wrong[0]]}; its candidates are {', '.join(applicable)}"
        )
    return [name for name in CANDIDATES if name in only]


def _training_source(ws: Workspace, version: ModelVersion) -> tuple[Any, TrainSpec]:
    """The dataset version it was trained on, and its spec (the split, the seed)."""
    dataset = version.training_dataset
    if version.spec is None or dataset is None:
        raise UsageError(
            f"{version.ref} was not trained by setpoint (no spec and training dataset in "
            "its lineage), so it has no hold-out to measure candidates on; train it with "
            "setpoint train SPEC.yaml"
        )
    return ws.dataset(dataset), TrainSpec.from_dict(version.spec)


def _metric(version: ModelVersion) -> str | None:
    headline = version.headline_metric
    if headline is not None and headline[1] in METRICS:
        return headline[1]
    return PRIMARY.get(version.task) or FALLBACK.get(version.task)


# -- measuring -----------------------------------------------------------------------


class _Bench:
    """The original's answers on the hold-out, and how a candidate is measured."""

    def __init__(
        self,
        original: Predictor,
        holdout: pa.Table,
        truth: npt.NDArray[Any],
        metric: str | None,
        price: float,
        calls: int,
    ) -> None:
        self.holdout, self.truth, self.metric = holdout, truth, metric
        self.price, self.calls = price, calls
        self.task, self.classes = original.task, original.classes
        self.sample = holdout.slice(0, _SAMPLE_ROWS).to_pandas()
        self.original = original
        self.answers = self._answers(original)
        self.baseline = self.score(*self.answers)

    def _answers(self, predictor: Predictor) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        if self.task == "regression":
            values = np.asarray(predictor.predict(self.holdout), dtype=np.float64)
            return values, values
        proba = predictor.predict_proba(self.holdout)
        assert proba is not None
        return np.asarray(predictor.predict(self.holdout)), proba

    def score(self, labels: npt.NDArray[Any], outputs: npt.NDArray[Any]) -> float | None:
        if self.metric is None:
            return None
        proba = None if self.task == "regression" else outputs
        return evaluate(
            self.truth,
            labels,
            proba,
            task=self.task,
            classes=self.classes,
            metrics=[self.metric],
        ).get(self.metric)

    def best_iteration(self, booster: Any, total: int) -> int:
        """The fewest first trees that score best on the hold-out."""
        if self.metric is None:
            return total
        matrix = self.original.encoder(self.holdout)  # type: ignore[attr-defined]
        better = 1.0 if METRICS[self.metric].higher_is_better else -1.0
        best, keep = -np.inf, total
        for k in range(1, total + 1):
            outputs = np.asarray(booster.predict(matrix, num_iteration=k), dtype=np.float64)
            if self.task == "regression":
                labels = outputs
            else:
                if outputs.ndim == 1:
                    outputs = np.column_stack([1.0 - outputs, outputs])
                labels = np.asarray(self.classes)[np.argmax(outputs, axis=1)]
            value = self.score(labels, outputs)
            if value is not None and better * value > best:
                best, keep = better * value, k
        return keep

    def metrics(self, predictor: Predictor) -> dict[str, float | None]:
        """Every metric of the task on the hold-out, as training reports them."""
        labels, outputs = self._answers(predictor)
        proba = None if self.task == "regression" else outputs
        return evaluate(self.truth, labels, proba, task=self.task, classes=self.classes)

    def measure(self, name: str, predictor: Predictor, ref: str | None, note: str) -> Measured:
        from setpoint.loop.gates import measure_cost  # the gate's own measurement

        labels, outputs = self._answers(predictor)
        value = self.score(labels, outputs)
        base_labels, base_outputs = self.answers
        same = None if self.task == "regression" else float(np.mean(labels == base_labels))
        cost = measure_cost(predictor, self.sample, calls=self.calls, cpu_hour_cost=self.price)
        seconds = min(self._timed(predictor) for _ in range(_PASSES))
        return Measured(
            candidate=name,
            flavor=predictor.flavor,
            ref=ref,
            same_labels=same,
            max_difference=float(np.max(np.abs(outputs - base_outputs))),
            metric=self.metric,
            value=value,
            delta=None if value is None or self.baseline is None else value - self.baseline,
            p50_ms=cost["p50_latency_ms"],
            p99_ms=cost["p99_latency_ms"],
            rows_per_second=self.holdout.num_rows / seconds if seconds > 0 else float("inf"),
            size_bytes=sum(len(data) for data in predictor.save().values()),
            cost_per_1000=cost["cost_per_1000"],
            note=note,
        )

    def _timed(self, predictor: Predictor) -> float:
        start = time.perf_counter()
        if self.task == "regression":
            predictor.predict(self.holdout)
        else:
            predictor.predict_proba(self.holdout)
        return time.perf_counter() - start


def _with_ref(measured: Measured, ref: str) -> Measured:
    return Measured(**{**asdict(measured), "ref": ref})


def _register(
    ws: Workspace,
    version: ModelVersion,
    dataset: Any,
    name: str,
    candidate: Predictor,
    measured: Measured,
    train: pa.Table,
    spec: TrainSpec,
    bench: _Bench,
) -> ModelVersion:
    from setpoint import __version__

    sample = None
    if background.needs_background(candidate):
        contract = ws.datasets.contract(dataset)[0]
        personal = {column for column, rule in contract.columns.items() if rule.pii}
        sample = background.sample(train, candidate.features, seed=spec.seed, personal=personal)
    return ws.registry.register(
        version.name,
        candidate,
        contract=version.contract,
        evaluation={
            "metrics": {"validation": bench.metrics(candidate)},
            "n_validation": bench.holdout.num_rows,
            "optimization": measured.to_dict(),
            "notes": [f"{name} candidate optimised from {version.ref}: {measured.note}"],
        },
        lineage={
            "optimized_from": version.ref,
            "optimization": name,
            "datasets": version.lineage.get("datasets", []),
            "packages": {
                **(version.lineage.get("packages") or {}),
                **{k: v for k, v in candidate.metadata()["libraries"].items() if v},
            },
            "setpoint": __version__,
            "host": platform.node(),
        },
        datasets_used=[(dataset, "train")],
        spec=version.spec,
        description=f"{name} candidate optimised from {version.ref} ({measured.note})",
        background=sample,
    )
