"""The report's input: frozen dataclasses, checked once.

:class:`ReportData` is built with :meth:`ReportData.from_dict` from the stored
monitor results (plain JSON documents): their shape is checked once, with messages
that name the offending field, so the rendering code can trust every value. Any
section may be absent; the report then says so in words.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from setpoint.monitoring.report._checks import (
    _bool,
    _count,
    _expect,
    _fail,
    _fraction,
    _get,
    _list,
    _mapping,
    _number,
    _numbers,
    _opt_fraction,
    _opt_number,
    _text,
    _version,
    _when,
)
from setpoint.monitoring.report._fairness import WindowFairness, read_fairness

Kind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class Histogram:
    """Reference and current counts on the same bins. Numeric features have bin
    ``edges`` (one more than the counts); categorical ones have ``categories``."""

    reference: tuple[float, ...]
    current: tuple[float, ...]
    edges: tuple[float, ...] | None = None
    categories: tuple[str, ...] | None = None


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's (or the prediction's) drift decision in one window."""

    name: str
    kind: Kind
    drifted: bool
    effect: float | None = None
    threshold: float | None = None
    test: str | None = None
    statistic: float | None = None
    p_value: float | None = None
    null_fraction: float | None = None
    reference_null_fraction: float | None = None
    histogram: Histogram | None = None

    @property
    def ratio(self) -> float | None:
        """Effect size over its threshold: 1 is "material" whatever the feature's
        scale or test, which is what lets one colour scale serve every feature."""
        if self.effect is None or not self.threshold:
            return None
        return self.effect / self.threshold


@dataclass(frozen=True)
class Multivariate:
    """The domain classifier: how well it tells the window from the reference."""

    auc: float
    threshold: float
    drifted: bool
    auc_se: float | None = None  # its standard error (absent in older windows)


@dataclass(frozen=True)
class ContractRule:
    """Rows of a window that broke one rule of one column: answered with a warning
    (``scored``), or refused."""

    column: str
    rule: str
    scored: int
    refused: int


@dataclass(frozen=True)
class ContractCounts:
    """A window's rows outside the data contract: answered with a warning (soft rules)
    or refused (hard or enforced rules), and by column and rule."""

    scored: int
    refused: int
    rules: tuple[ContractRule, ...] = ()


@dataclass(frozen=True)
class Quality:
    null_rates: Mapping[str, float]
    out_of_range: Mapping[str, int]
    unseen: Mapping[str, int]
    rejected: int | None  # None: not recorded
    volume: int
    expected_volume: float | None = None
    contract: ContractCounts | None = None  # None: not recorded


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Performance:
    """Estimated metrics (classifiers only) and realized ones (once labels arrive);
    ``coverage`` is the share of the window's predictions that have a label, and
    ``reference`` the model's figures on its hold-out data, when known."""

    estimated: Mapping[str, Estimate] | None = None
    realized: Mapping[str, float | None] | None = None
    coverage: float | None = None
    reference: Mapping[str, float | None] | None = None  # the model's figures at training
    # Metrics whose realized figure fell outside the estimate's band (evidence that
    # the relation between inputs and outcome changed, which the estimate cannot see).
    concept_drift: tuple[str, ...] = ()


@dataclass(frozen=True)
class Latency:
    p50_ms: float | None = None
    p99_ms: float | None = None


@dataclass(frozen=True)
class Attribution:
    """A feature's share of the model's explanation, on the reference and in a window."""

    name: str
    reference: float
    window: float
    drifted: bool

    @property
    def change(self) -> float:
        return self.window - self.reference


@dataclass(frozen=True)
class WindowResult:
    start: datetime
    end: datetime
    n_rows: int
    judged: bool = True  # False: too few rows to judge drift; no verdict either way
    reference: str | None = None  # the model the window was measured against
    features: Mapping[str, FeatureDrift] = field(default_factory=dict)
    drift_share: float | None = None
    multivariate: Multivariate | None = None
    prediction: FeatureDrift | None = None
    quality: Quality | None = None
    performance: Performance | None = None
    latency: Latency | None = None
    label: str | None = None  # how the window is named, when not by its start (2024-03)
    # Per feature, its share of the model's explanation (attribution drift), when the
    # model was explained in the window.
    attribution: Mapping[str, Attribution] = field(default_factory=dict)
    fairness: WindowFairness | None = None  # the gaps between groups (report/_fairness.py)
    # What the window's predictions cost, as ``monitoring/cost.py`` measured it.
    cost: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class AlertEntry:
    """An alert as ``alerts.Alert.to_dict()`` stores it (other keys are ignored)."""

    message: str
    key: str = ""
    severity: str = "warning"
    state: str = "open"  # "open", "acknowledged" (still unresolved) or "resolved"
    first_seen: datetime | None = None  # the data's time
    last_seen: datetime | None = None
    count: int = 1
    acked_by: str | None = None
    noticed_at: datetime | None = None  # the clock's time when it opened

    @property
    def unresolved(self) -> bool:
        return self.state != "resolved"


@dataclass(frozen=True)
class ReportData:
    """Everything one endpoint's report shows; windows are in time order."""

    endpoint: str
    model: str
    version: str
    reference: str
    generated_at: datetime
    windows: tuple[WindowResult, ...] = ()
    alerts: tuple[AlertEntry, ...] = ()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReportData:
        """Build from plain dicts; raises InvalidDataError naming the first field that
        is missing or of the wrong type. The shape (``?`` marks what may be absent or
        None)::

            {endpoint, model, version, reference?, generated_at?, alerts?: [alert],
             windows: [{start, end, n_rows, label?, judged?, reference?,
                        features?: {name: feature}, drift_share?,
                        multivariate?: {auc, auc_se?, threshold, drifted}, prediction?: feature,
                        quality?: {null_rates?: {name: x}, out_of_range?: {name: n},
                                   unseen?: {name: n | {category: n}}, rejected?,
                                   volume, expected_volume?,
                                   contract?: {scored, refused, rules?: [{column,
                                               rule, scored, refused}]}},
                        performance?: {estimated?: {metric: {value, low, high}},
                                       realized?: {metric: x, coverage?},
                                       reference?: {metric: x},
                                       concept_drift?: {metrics: {metric: ...}}},
                        latency?: {p50_ms?, p99_ms?}, cost?: {...} (monitoring/cost.py),
                        fairness?: {max_disparity?, selection?: table, realized?: table}}]}
            feature: {kind: "numeric" | "categorical", drifted, effect?, threshold?,
                      test?, statistic?, p_value?, null_fraction?,
                      reference_null_fraction?,
                      histogram?: {edges, reference, current}            (numeric)
                                | {categories, reference, current}}      (categorical)
            table: {groups: [{values, rows, too_small, metric: x}], difference: {metric: x}}
            alert: {message, key?, severity?, state?: "open" | "acknowledged" |
                    "resolved", first_seen?, last_seen?, count?, acked_by?,
                    noticed_at?}

        A window as ``monitor.py`` stores it is read as well: features and drift
        share nested under ``drift``, the model's outputs under ``drift.prediction``
        (``__prediction__`` is read as ``prediction``, ``__score__`` left out).
        """
        d = _mapping(d, "report")
        windows = [_window(w, f"windows[{i}]") for i, w in enumerate(_list(d, "windows", "report"))]
        generated = d.get("generated_at")
        return cls(
            endpoint=_text(_get(d, "endpoint", "report"), "endpoint"),
            model=_text(_get(d, "model", "report"), "model"),
            version=_version(_get(d, "version", "report")),
            reference=_text(d.get("reference", ""), "reference"),
            generated_at=datetime.now(UTC)
            if generated is None
            else _when(generated, "generated_at"),
            windows=tuple(sorted(windows, key=lambda w: w.start)),
            alerts=tuple(
                _alert(a, f"alerts[{i}]") for i, a in enumerate(_list(d, "alerts", "report"))
            ),
        )


def _histogram(v: Any, kind: Kind, path: str) -> Histogram:
    d = _mapping(v, path)
    ref = _numbers(_get(d, "reference", path), f"{path}.reference")
    cur = _numbers(_get(d, "current", path), f"{path}.current")
    if len(ref) != len(cur):
        _fail(path, f"has {len(ref)} reference counts but {len(cur)} current ones")
    if any(x < 0 for x in ref + cur):
        _fail(path, "has a negative count")
    if kind == "numeric":
        edges = _numbers(_get(d, "edges", path), f"{path}.edges")
        if len(edges) != len(ref) + 1:
            _fail(f"{path}.edges", f"should hold one more value than the counts ({len(ref) + 1})")
        if any(b < a for a, b in itertools.pairwise(edges)):
            _fail(f"{path}.edges", "should be in increasing order")
        return Histogram(ref, cur, edges=edges)
    names = _get(d, "categories", path)
    if not isinstance(names, list | tuple) or len(names) != len(ref):
        _expect(f"{path}.categories", f"a list of {len(ref)} category names", names)
    return Histogram(ref, cur, categories=tuple(str(c) for c in names))


def _feature(v: Any, name: str, path: str) -> FeatureDrift:
    d = _mapping(v, path)
    kind = _get(d, "kind", path)
    if kind not in ("numeric", "categorical"):
        _expect(f"{path}.kind", '"numeric" or "categorical"', kind)
    test = d.get("test")
    hist = d.get("histogram")
    return FeatureDrift(
        name=name,
        kind=kind,
        drifted=_bool(_get(d, "drifted", path), f"{path}.drifted"),
        effect=_opt_number(d.get("effect"), f"{path}.effect"),
        threshold=_opt_number(d.get("threshold"), f"{path}.threshold"),
        test=None if test is None else _text(test, f"{path}.test"),
        statistic=_opt_number(d.get("statistic"), f"{path}.statistic"),
        p_value=_opt_number(d.get("p_value"), f"{path}.p_value"),
        null_fraction=_opt_fraction(d.get("null_fraction"), f"{path}.null_fraction"),
        reference_null_fraction=_opt_fraction(
            d.get("reference_null_fraction"), f"{path}.reference_null_fraction"
        ),
        histogram=_histogram(hist, kind, f"{path}.histogram") if hist else None,
    )


def _per_feature(v: Any, path: str, read: Callable[[Any, str], Any]) -> dict[str, Any]:
    return {str(k): read(x, f"{path}[{k!r}]") for k, x in _mapping(v or {}, path).items()}


def _unseen(v: Any, path: str) -> int:
    """Rows with an unseen category: a count, or counts by category (as monitors store)."""
    if isinstance(v, Mapping):
        return sum(_count(n, f"{path}[{c!r}]") for c, n in v.items())
    return _count(v, path)


def _contract(v: Any, path: str) -> ContractCounts:
    d = _mapping(v, path)
    rules = []
    for i, r in enumerate(_list(d, "rules", path)):
        p = f"{path}.rules[{i}]"
        r = _mapping(r, p)
        rules.append(
            ContractRule(
                column=_text(_get(r, "column", p), f"{p}.column"),
                rule=_text(_get(r, "rule", p), f"{p}.rule"),
                scored=_count(_get(r, "scored", p), f"{p}.scored"),
                refused=_count(_get(r, "refused", p), f"{p}.refused"),
            )
        )
    return ContractCounts(
        scored=_count(_get(d, "scored", path), f"{path}.scored"),
        refused=_count(_get(d, "refused", path), f"{path}.refused"),
        rules=tuple(rules),
    )


def _quality(v: Any, path: str) -> Quality:
    d = _mapping(v, path)
    expected = d.get("expected_volume")
    contract = d.get("contract")
    return Quality(
        null_rates=_per_feature(d.get("null_rates"), f"{path}.null_rates", _fraction),
        out_of_range=_per_feature(d.get("out_of_range"), f"{path}.out_of_range", _count),
        unseen=_per_feature(d.get("unseen"), f"{path}.unseen", _unseen),
        rejected=None if d.get("rejected") is None else _count(d["rejected"], f"{path}.rejected"),
        volume=_count(_get(d, "volume", path), f"{path}.volume"),
        expected_volume=_opt_number(expected, f"{path}.expected_volume"),
        contract=None if contract is None else _contract(contract, f"{path}.contract"),
    )


# Figures a monitor stores beside the realized metrics that are not metrics themselves.
_NOT_METRICS = ("labels", "label_delay_hours", "problem")


def _performance(v: Any, path: str) -> Performance:
    d = _mapping(v, path)
    estimated: dict[str, Estimate] | None = None
    if d.get("estimated") is not None:
        estimated = {}
        for metric, e in _mapping(d["estimated"], f"{path}.estimated").items():
            p = f"{path}.estimated.{metric}"
            e = _mapping(e, p)
            value, low, high = (
                _number(_get(e, k, p), f"{p}.{k}") for k in ("value", "low", "high")
            )
            if not low <= value <= high:
                _fail(p, f"should have low <= value <= high; got {low}, {value}, {high}")
            estimated[str(metric)] = Estimate(value, low, high)
    realized: dict[str, float | None] | None = None
    coverage = None
    if d.get("realized") is not None:
        r = dict(_mapping(d["realized"], f"{path}.realized"))
        coverage = _opt_fraction(r.pop("coverage", None), f"{path}.realized.coverage")
        for key in _NOT_METRICS:
            r.pop(key, None)
        realized = {str(k): _opt_number(x, f"{path}.realized.{k}") for k, x in r.items()}
    reference = None
    if d.get("reference") is not None:
        ref = _mapping(d["reference"], f"{path}.reference")
        reference = {str(k): _opt_number(x, f"{path}.reference.{k}") for k, x in ref.items()}
    concept: tuple[str, ...] = ()
    if d.get("concept_drift") is not None:
        found = _mapping(d["concept_drift"], f"{path}.concept_drift")
        concept = tuple(
            str(m) for m in _mapping(found.get("metrics") or {}, f"{path}.concept_drift.metrics")
        )
    return Performance(estimated, realized, coverage, reference, concept)


def _window(v: Any, path: str) -> WindowResult:
    d = _mapping(v, path)
    start, end = (
        _when(_get(d, "start", path), f"{path}.start"),
        _when(_get(d, "end", path), f"{path}.end"),
    )
    if end < start:
        _fail(f"{path}.end", "is before its start")
    drift = d
    if "features" not in d and d.get("drift") is not None:  # as monitors store a window
        drift = _mapping(d["drift"], f"{path}.drift")
    where = f"{path}.features" if drift is d else f"{path}.drift.features"
    features = {
        str(k): _feature(x, str(k), f"{where}[{k!r}]")
        for k, x in _mapping(drift.get("features") or {}, where).items()
    }
    # Monitors judge the model's outputs as extra columns (names from reference.py),
    # apart from the features (windows stored before that kept them among the features).
    pred = d.get("prediction")
    outputs = _mapping(drift.get("prediction") or {}, f"{path}.drift.prediction")
    output = features.pop("__prediction__", None)
    features.pop("__score__", None)
    if "__prediction__" in outputs:
        output = _feature(
            outputs["__prediction__"], "prediction", f"{path}.drift.prediction['__prediction__']"
        )
    mv, lat = d.get("multivariate"), d.get("latency")
    if mv is not None:
        m = _mapping(mv, f"{path}.multivariate")
        mv = Multivariate(
            auc=_number(_get(m, "auc", f"{path}.multivariate"), f"{path}.multivariate.auc"),
            threshold=_number(
                _get(m, "threshold", f"{path}.multivariate"), f"{path}.multivariate.threshold"
            ),
            drifted=_bool(
                _get(m, "drifted", f"{path}.multivariate"), f"{path}.multivariate.drifted"
            ),
            auc_se=_opt_number(m.get("auc_se"), f"{path}.multivariate.auc_se"),
        )
    if lat is not None:
        m = _mapping(lat, f"{path}.latency")
        lat = Latency(
            _opt_number(m.get("p50_ms"), f"{path}.latency.p50_ms"),
            _opt_number(m.get("p99_ms"), f"{path}.latency.p99_ms"),
        )
    quality, perf, label = d.get("quality"), d.get("performance"), d.get("label")
    judged = d.get("judged", drift.get("judged", True))
    reference = d.get("reference")
    return WindowResult(
        start=start,
        end=end,
        n_rows=_count(_get(d, "n_rows", path), f"{path}.n_rows"),
        judged=_bool(judged, f"{path}.judged"),
        reference=None if reference is None else _text(reference, f"{path}.reference"),
        features=features,
        drift_share=_opt_fraction(drift.get("drift_share"), f"{path}.drift_share"),
        multivariate=mv,
        prediction=output if pred is None else _feature(pred, "prediction", f"{path}.prediction"),
        quality=None if quality is None else _quality(quality, f"{path}.quality"),
        performance=None if perf is None else _performance(perf, f"{path}.performance"),
        latency=lat,
        label=None if label is None else _text(label, f"{path}.label"),
        attribution=_attribution(d.get("attribution"), f"{path}.attribution"),
        fairness=None
        if d.get("fairness") is None
        else read_fairness(d["fairness"], f"{path}.fairness"),
        cost=None if d.get("cost") is None else _mapping(d["cost"], f"{path}.cost"),
    )


def _attribution(v: Any, path: str) -> dict[str, Attribution]:
    if v is None:
        return {}
    where = f"{path}.features"
    features = _mapping(_get(_mapping(v, path), "features", path), where)
    out = {}
    for name, x in features.items():
        at = f"{where}[{name!r}]"
        f = _mapping(x, at)
        out[str(name)] = Attribution(
            str(name),
            _number(_get(f, "reference", at), f"{at}.reference"),
            _number(_get(f, "window", at), f"{at}.window"),
            _bool(_get(f, "drifted", at), f"{at}.drifted"),
        )
    return out


def _alert(v: Any, path: str) -> AlertEntry:
    d = _mapping(v, path)
    first, last, noticed = d.get("first_seen"), d.get("last_seen"), d.get("noticed_at")
    state, acked_by = d.get("state", "open"), d.get("acked_by")
    if state not in ("open", "acknowledged", "resolved"):
        _expect(f"{path}.state", '"open", "acknowledged" or "resolved"', state)
    return AlertEntry(
        message=_text(_get(d, "message", path), f"{path}.message"),
        key=_text(d.get("key", ""), f"{path}.key"),
        severity=_text(d.get("severity", "warning"), f"{path}.severity"),
        first_seen=None if first is None else _when(first, f"{path}.first_seen"),
        last_seen=None if last is None else _when(last, f"{path}.last_seen"),
        count=_count(d.get("count", 1), f"{path}.count"),
        state=state,
        acked_by=None if acked_by is None else _text(acked_by, f"{path}.acked_by"),
        noticed_at=None if noticed is None else _when(noticed, f"{path}.noticed_at"),
    )
