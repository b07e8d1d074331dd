"""One self-contained HTML report of an endpoint's monitoring results.

The report is mailed, attached to tickets and opened on machines without internet
access, so it is a single file that fetches nothing: no scripts, no web fonts, no
stylesheets from elsewhere (a Content-Security-Policy in the page enforces it), and
every plot is inline SVG drawn by matplotlib, which stays sharp when zoomed or
printed and keeps its text as text. Plots are drawn on ``matplotlib.figure.Figure``
objects directly, never through pyplot, so rendering a report neither needs a display
nor changes the backend of the process it runs in.

It is written for someone who is not an engineer: a one-sentence verdict first,
plain words with units, colours from the Okabe-Ito palette (told apart with the
common colour-vision deficiencies) and never colour alone (drifted cells are also
outlined, drifted rows also say "drifted"). The latest window's figures are also in
tables, for screen readers and for copying.

The input, :class:`ReportData`, is built with :meth:`ReportData.from_dict` from the
stored monitor results (plain JSON documents): their shape is checked once, with
messages that name the offending field, so the rendering code can trust every value.
Any section may be absent; the report then says so in words.
"""

from __future__ import annotations

import functools
import html
import io
import itertools
import math
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from setpoint.errors import InvalidDataError

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

__all__ = [
    "AlertEntry",
    "Estimate",
    "FeatureDrift",
    "Histogram",
    "Latency",
    "Multivariate",
    "Performance",
    "Quality",
    "ReportData",
    "WindowResult",
    "render_report",
    "write_report",
]

Kind = Literal["numeric", "categorical"]

# ---------------------------------------------------------------------------------
# The data: frozen, checked once.
# ---------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Quality:
    null_rates: Mapping[str, float]
    out_of_range: Mapping[str, int]
    unseen: Mapping[str, int]
    rejected: int | None  # None: not recorded
    volume: int
    expected_volume: float | None = None


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


@dataclass(frozen=True)
class Latency:
    p50_ms: float | None = None
    p99_ms: float | None = None


@dataclass(frozen=True)
class WindowResult:
    start: datetime
    end: datetime
    n_rows: int
    features: Mapping[str, FeatureDrift] = field(default_factory=dict)
    drift_share: float | None = None
    multivariate: Multivariate | None = None
    prediction: FeatureDrift | None = None
    quality: Quality | None = None
    performance: Performance | None = None
    latency: Latency | None = None


@dataclass(frozen=True)
class AlertEntry:
    """An alert as ``alerts.Alert.to_dict()`` stores it (other keys are ignored)."""

    message: str
    key: str = ""
    severity: str = "warning"
    state: str = "open"  # "open", "acknowledged" (still unresolved) or "resolved"
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    count: int = 1
    acked_by: str | None = None

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
             windows: [{start, end, n_rows, features?: {name: feature}, drift_share?,
                        multivariate?: {auc, threshold, drifted}, prediction?: feature,
                        quality?: {null_rates?: {name: x}, out_of_range?: {name: n},
                                   unseen?: {name: n | {category: n}}, rejected?,
                                   volume, expected_volume?},
                        performance?: {estimated?: {metric: {value, low, high}},
                                       realized?: {metric: x, coverage?},
                                       reference?: {metric: x}},
                        latency?: {p50_ms?, p99_ms?}}]}
            feature: {kind: "numeric" | "categorical", drifted, effect?, threshold?,
                      test?, statistic?, p_value?, null_fraction?,
                      reference_null_fraction?,
                      histogram?: {edges, reference, current}            (numeric)
                                | {categories, reference, current}}      (categorical)
            alert: {message, key?, severity?, state?: "open" | "acknowledged" |
                    "resolved", first_seen?, last_seen?, count?, acked_by?}

        A window as ``monitor.py`` stores it is read as well: features and drift
        share nested under ``drift``, the model's outputs as the ``__prediction__``
        (read as ``prediction``) and ``__score__`` (left out) columns.
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


def _fail(path: str, message: str) -> NoReturn:
    raise InvalidDataError(f"report data: {path} {message}", details={"field": path})


def _expect(path: str, expected: str, value: Any) -> NoReturn:
    shown = repr(value)
    _fail(path, f"should be {expected}; got {shown[:60]}{'...' if len(shown) > 60 else ''}")


def _get(d: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in d:
        _fail(f"{path}.{key}" if path != "report" else key, "is missing")
    return d[key]


def _mapping(v: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(v, Mapping):
        _expect(path, "an object (a dict)", v)
    return v


def _list(d: Mapping[str, Any], key: str, path: str) -> list[Any]:
    v = d.get(key)
    if v is None:
        return []
    if not isinstance(v, list | tuple):
        _expect(key if path == "report" else f"{path}.{key}", "a list", v)
    return list(v)


def _number(v: Any, path: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        _expect(path, "a finite number", v)
    return float(v)


def _fraction(v: Any, path: str) -> float:
    """A share between 0 and 1: a null rate, label coverage, drift share."""
    x = _number(v, path)
    if not 0 <= x <= 1:
        _expect(path, "a fraction between 0 and 1", v)
    return x


def _opt_fraction(v: Any, path: str) -> float | None:
    return None if v is None else _fraction(v, path)


def _opt_number(v: Any, path: str) -> float | None:
    return None if v is None else _number(v, path)


def _count(v: Any, path: str) -> int:
    n = _number(v, path)
    if n < 0 or not n.is_integer():
        _expect(path, "a whole number of at least 0", v)
    return int(n)


def _version(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, str | int):
        _expect("version", "text or a whole number", v)
    return str(v)


def _text(v: Any, path: str) -> str:
    if not isinstance(v, str):
        _expect(path, "text", v)
    return v


def _bool(v: Any, path: str) -> bool:
    if not isinstance(v, bool):
        _expect(path, "true or false", v)
    return v


def _when(v: Any, path: str) -> datetime:
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v)
        except ValueError:
            _expect(path, "an ISO 8601 time", v)
    if not isinstance(v, datetime):
        _expect(path, "an ISO 8601 time", v)
    # Stored results are in UTC; a naive time is read as UTC so windows always compare.
    return v if v.tzinfo else v.replace(tzinfo=UTC)


def _numbers(v: Any, path: str) -> tuple[float, ...]:
    if not isinstance(v, list | tuple):
        _expect(path, "a list of numbers", v)
    return tuple(_number(x, f"{path}[{i}]") for i, x in enumerate(v))


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


def _quality(v: Any, path: str) -> Quality:
    d = _mapping(v, path)
    expected = d.get("expected_volume")
    return Quality(
        null_rates=_per_feature(d.get("null_rates"), f"{path}.null_rates", _fraction),
        out_of_range=_per_feature(d.get("out_of_range"), f"{path}.out_of_range", _count),
        unseen=_per_feature(d.get("unseen"), f"{path}.unseen", _unseen),
        rejected=None if d.get("rejected") is None else _count(d["rejected"], f"{path}.rejected"),
        volume=_count(_get(d, "volume", path), f"{path}.volume"),
        expected_volume=_opt_number(expected, f"{path}.expected_volume"),
    )


# Figures a monitor stores beside the realized metrics that are not metrics themselves.
_NOT_METRICS = ("labels", "label_delay_hours")


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
    return Performance(estimated, realized, coverage, reference)


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
    # Monitors judge the model's outputs as extra columns (names from reference.py).
    pred = d.get("prediction")
    output = features.pop("__prediction__", None)
    features.pop("__score__", None)
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
        )
    if lat is not None:
        m = _mapping(lat, f"{path}.latency")
        lat = Latency(
            _opt_number(m.get("p50_ms"), f"{path}.latency.p50_ms"),
            _opt_number(m.get("p99_ms"), f"{path}.latency.p99_ms"),
        )
    quality, perf = d.get("quality"), d.get("performance")
    return WindowResult(
        start=start,
        end=end,
        n_rows=_count(_get(d, "n_rows", path), f"{path}.n_rows"),
        features=features,
        drift_share=_opt_fraction(drift.get("drift_share"), f"{path}.drift_share"),
        multivariate=mv,
        prediction=output if pred is None else _feature(pred, "prediction", f"{path}.prediction"),
        quality=None if quality is None else _quality(quality, f"{path}.quality"),
        performance=None if perf is None else _performance(perf, f"{path}.performance"),
        latency=lat,
    )


def _alert(v: Any, path: str) -> AlertEntry:
    d = _mapping(v, path)
    first, last = d.get("first_seen"), d.get("last_seen")
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
    )


# ---------------------------------------------------------------------------------
# Plots: matplotlib figures rendered to inline SVG.
# ---------------------------------------------------------------------------------

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
_BLUE, _SKY, _VERMILLION, _ORANGE = "#0072B2", "#56B4E9", "#D55E00", "#E69F00"
_GREEN, _PURPLE, _GREY = "#009E73", "#CC79A7", "#7F7F7F"
_LINES = (_BLUE, _VERMILLION, _GREEN, _PURPLE, _ORANGE, _SKY)

_STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",  # text stays text: selectable, searchable, read aloud
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica"],
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#E6E6E6",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 8,
}
_WIDTH = 10.4  # inches; 1 inch is 96 CSS pixels in the page, so this fills the column
_MAX_HEATMAP_FEATURES = 40
_MAX_DISTRIBUTIONS = 12
_MAX_CATEGORIES = 12
_PREFERRED_METRICS = ("accuracy", "roc_auc", "f1", "precision", "recall", "rmse", "mae", "r2")
_METRIC_WORDS = {
    "accuracy": "accuracy",
    "roc_auc": "ROC AUC",
    "f1": "F1 score",
    "precision": "precision",
    "recall": "recall",
    "rmse": "RMSE",
    "mae": "mean absolute error",
    "r2": "R²",
    "calibration_error": "calibration error",
}
_TAG = re.compile(r"<[^>]+>")


@contextmanager
def _figure(height: float, width: float = _WIDTH) -> Iterator[Figure]:
    with mpl.rc_context(_STYLE):
        yield Figure(figsize=(width, height), layout="constrained")


@contextmanager
def _panels(rows: int) -> Iterator[tuple[Figure, list[Axes]]]:
    """Stacked time panels with fixed margins (in inches), so every time plot in the
    report puts its windows at the same horizontal positions and the eye can run
    down the page from drift to performance to quality; legends go in the right
    margin, never over the data."""
    top, bottom, panel, gap, left, right = 0.35, 0.95, 1.45, 0.55, 0.95, 2.55
    height = top + rows * panel + (rows - 1) * gap + bottom
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(_WIDTH, height))
        fig.subplots_adjust(
            left=left / _WIDTH,
            right=1 - right / _WIDTH,
            top=1 - top / height,
            bottom=bottom / height,
            hspace=gap / panel,
        )
        yield fig, list(fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0])


def _legend(ax: Axes) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1))


def _svg(fig: Figure, name: str, label: str) -> str:
    """The figure as an ``<svg>`` element ready to inline in HTML.

    Every SVG that matplotlib writes uses the same element ids (``figure_1``,
    ``axes_1``...), so each is prefixed with the plot's name to keep ids unique in
    the page; the salt makes clip-path ids, and so the whole report, reproducible.
    """
    buf = io.StringIO()
    with mpl.rc_context(_STYLE | {"svg.hashsalt": name}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)

    def prefix(tag: re.Match[str]) -> str:
        t = re.sub(r'\bid="([^"]+)"', rf'id="{name}-\1"', tag.group(0))
        t = re.sub(r"url\(#([^)]+)\)", rf"url(#{name}-\1)", t)
        return re.sub(r'href="#([^"]+)"', rf'href="#{name}-\1"', t)

    # User text inside <text> has its < and > escaped, so only real tags are touched.
    text = _TAG.sub(prefix, text)
    attrs = f'class="plot" role="img" aria-label="{html.escape(label)}"'
    return text.replace("<svg ", f"<svg {attrs} ", 1)


def _plain(s: str, limit: int = 40) -> str:
    """Text for a plot label: shortened, and with ``$`` escaped so a name like
    ``price_$`` is shown as written instead of being parsed as mathtext."""
    s = s if len(s) <= limit else s[: limit - 1] + "…"
    return s.replace("$", r"\$")


def _time_axis(ax: Axes, labels: Sequence[str], *, widen: bool = True) -> None:
    n = len(labels)
    ticks = list(range(0, n, max(1, math.ceil(n / 10))))
    rotate = n > 4 and max(len(x) for x in labels) > 5
    ax.set_xticks(ticks, [labels[i] for i in ticks], rotation=30 if rotate else 0)
    if rotate:
        for t in ax.get_xticklabels():
            t.set_horizontalalignment("right")
    # At least four slots wide, so one window is not one bar across the whole plot.
    pad = max(0, 4 - n) / 2 if widen else 0
    ax.set_xlim(-0.6 - pad, n - 0.4 + pad)
    ax.set_xlabel("Window start (UTC)")


def _series(values: Iterable[float | None]) -> Any:
    """Values as a float array with NaN for the missing, which matplotlib leaves as gaps."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


_BUCKETS = (
    ("below half the threshold", "#F0F0F0"),
    ("below the threshold", "#BFD7EA"),
    ("1 to 2 times the threshold", _ORANGE),
    ("over twice the threshold", _VERMILLION),
)


def _drift_plot(
    windows: Sequence[WindowResult], names: Sequence[str], labels: Sequence[str]
) -> str:
    ratios = np.array(
        [
            [
                np.nan if (f := w.features.get(n)) is None or f.ratio is None else f.ratio
                for w in windows
            ]
            for n in names
        ],
        dtype=float,
    )
    cmap = ListedColormap([c for _, c in _BUCKETS]).with_extremes(bad="white")
    norm = BoundaryNorm([0, 0.5, 1, 2, 3], cmap.N)
    with _figure(1.6 + 0.27 * len(names)) as fig:
        ax = fig.add_subplot()
        ax.imshow(
            np.ma.masked_invalid(np.clip(ratios, 0, 2.999)), cmap=cmap, norm=norm, aspect="auto"
        )
        numbers = len(windows) <= 16
        for i, name in enumerate(names):
            for j, w in enumerate(windows):
                f = w.features.get(name)
                if f is not None and f.drifted:
                    ax.add_patch(
                        Rectangle((j - 0.46, i - 0.42), 0.92, 0.84, fill=False, lw=2, ec="black")
                    )
                if numbers and not np.isnan(ratios[i, j]):
                    ax.text(j, i, f"{ratios[i, j]:.1f}", ha="center", va="center", fontsize=7)
        ax.set_yticks(range(len(names)), [_plain(n, 28) for n in names])
        ax.grid(False)
        _time_axis(ax, labels, widen=False)
        ax.set_ylabel("Feature")
        ax.set_title("How far each feature moved from the reference (effect size ÷ threshold)")
        handles = [Patch(facecolor=c, edgecolor="#BBBBBB", label=label) for label, c in _BUCKETS]
        handles.append(Patch(fill=False, edgecolor="black", linewidth=2, label="drifted"))
        handles.append(Patch(facecolor="white", edgecolor="#BBBBBB", label="no figure"))
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1))
        return _svg(fig, "drift", "Heatmap of drift effect size per feature and window")


def _numeric_bins(h: Histogram, bins: int = 30) -> tuple[Any, Any, Any]:
    """Reference and current shares (%) on ``bins`` equal-width display bins.

    The stored bins are the reference's quantiles (up to 1,000, of unequal width),
    too fine to read and misleading drawn as bars. Each side's cumulative share is
    interpolated at the display edges (rows spread evenly within a stored bin), so
    no display bin gains or loses mass from how the stored edges happen to fall.
    The range covers 99% of the rows, so one far outlier does not squash the plot;
    rows beyond it are counted in the outermost bins.
    """
    edges = np.asarray(h.edges, dtype=float)
    ref, cur = (np.asarray(c, dtype=float) for c in (h.reference, h.current))
    ref, cur = (c / c.sum() if c.sum() > 0 else c for c in (ref, cur))
    cdfs = [np.concatenate([[0.0], np.cumsum(c)]) for c in (ref, cur)]
    both = (cdfs[0] + cdfs[1]) / 2
    lo, hi = np.interp([0.005, 0.995], both, edges)
    if not hi > lo:
        lo, hi = edges[0], edges[-1]
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    grid = np.linspace(lo, hi, bins + 1)
    shares = []
    for cdf in cdfs:
        at = np.interp(grid, edges, cdf)
        share = np.diff(at)
        share[0] += at[0]
        share[-1] += cdf[-1] - at[-1]
        shares.append(share * 100)
    return grid, shares[0], shares[1]


def _distribution_plot(f: FeatureDrift, h: Histogram, name: str) -> str:
    with _figure(2.5, 3.35) as fig:
        ax = fig.add_subplot()
        if h.edges is not None:
            grid, ref, cur = _numeric_bins(h)
            ax.stairs(ref, grid, fill=True, color=_SKY, alpha=0.6, label="reference")
            ax.stairs(cur, grid, color=_VERMILLION, linewidth=1.8, label="latest window")
            ax.set_xlabel("Value")
            ax.set_ylabel("Share of rows (%)")
            ax.set_ylim(bottom=0)
        else:
            cats = list(h.categories or ())
            ref_a, cur_a = (np.asarray(c, dtype=float) for c in (h.reference, h.current))
            ref_a, cur_a = (c / c.sum() * 100 if c.sum() > 0 else c for c in (ref_a, cur_a))
            order = np.argsort(-np.maximum(ref_a, cur_a), kind="stable")[:_MAX_CATEGORIES][::-1]
            y = np.arange(len(order))
            ax.barh(y + 0.2, ref_a[order], height=0.4, color=_SKY, label="reference")
            ax.barh(y - 0.2, cur_a[order], height=0.4, color=_VERMILLION, label="latest window")
            ax.set_yticks(y, [_plain(cats[i], 16) for i in order])
            ax.set_xlabel("Share of rows (%)")
            ax.set_ylabel("Category")
        ax.set_title(_plain(f.name, 36))
        ax.legend(loc="best")
        return _svg(fig, name, f"Reference and latest distribution of {f.name}")


def _metric_list(windows: Sequence[WindowResult]) -> list[str]:
    """The metrics worth a plot, most familiar first, at most three."""
    seen: dict[str, None] = {}
    for w in windows:
        p = w.performance
        if p is not None:
            seen.update(dict.fromkeys(p.estimated or {}))
            seen.update({m: None for m, v in (p.realized or {}).items() if v is not None})
    return sorted(seen, key=lambda m: (*_PREFERRED_METRICS, m).index(m))[:3]


def _estimate(w: WindowResult, metric: str) -> Estimate | None:
    return (w.performance.estimated or {}).get(metric) if w.performance else None


def _realized(w: WindowResult, metric: str) -> float | None:
    return (w.performance.realized or {}).get(metric) if w.performance else None


def _has_trained(windows: Sequence[WindowResult]) -> bool:
    return any(_trained(windows, m) is not None for m in _metric_list(windows))


def _trained(windows: Sequence[WindowResult], metric: str) -> float | None:
    """The model's figure on its hold-out data at training, from the latest window."""
    for w in reversed(windows):
        if w.performance and w.performance.reference:
            return w.performance.reference.get(metric)
    return None


def _metric_words(m: str) -> str:
    return _METRIC_WORDS.get(m, m.replace("_", " "))


def _capital(s: str) -> str:
    return s[:1].upper() + s[1:]


def _performance_plot(
    windows: Sequence[WindowResult], metrics: list[str], labels: Sequence[str]
) -> str:
    coverage = _series(w.performance.coverage if w.performance else None for w in windows)
    has_coverage = bool(np.isfinite(coverage).any())
    x = np.arange(len(windows))
    with _panels(len(metrics) + has_coverage) as (fig, axes):
        for ax, m in zip(axes, metrics, strict=False):
            est = [_estimate(w, m) for w in windows]
            value, low, high = (
                _series(None if e is None else getattr(e, k) for e in est)
                for k in ("value", "low", "high")
            )
            if np.isfinite(value).any():
                band = "likely range of the estimate"
                ax.fill_between(x, low, high, color=_BLUE, alpha=0.18, lw=0, label=band)
                # One window has no band to shade: show its range as an error bar.
                single = len(x) == 1
                ax.errorbar(x, value, yerr=[value - low, high - value] if single else None,
                            color=_BLUE, marker="o", ms=4, capsize=4,
                            label="estimated without labels")  # fmt: skip
            trained = _trained(windows, m)
            if trained is not None:
                ax.axhline(trained, color=_GREY, ls="--", lw=1.2, label="at training (hold-out)")
            real = _series(_realized(w, m) for w in windows)
            if np.isfinite(real).any():
                ax.plot(x, real, ls="none", marker="D", ms=5, color=_VERMILLION,
                        label="realized from labels")  # fmt: skip
            words = _plain(_metric_words(m), 30)
            ax.set_ylabel(words)
            ax.set_title(f"{_capital(words)}: estimated and realized")
            _legend(ax)
        if has_coverage:
            ax = axes[-1]
            ax.bar(x, coverage * 100, color=_GREY, width=0.6)
            ax.set_ylim(0, 100)
            ax.set_ylabel("Labelled (%)")
            ax.set_title("Share of predictions with a label so far")
        _time_axis(axes[-1], labels)
        return _svg(fig, "performance", "Estimated and realized performance per window")


def _quality_plot(windows: Sequence[WindowResult], labels: Sequence[str]) -> str:
    x = np.arange(len(windows))
    names = dict.fromkeys(n for w in windows if w.quality for n in w.quality.null_rates)
    nulls = {
        n: _series(w.quality.null_rates.get(n) if w.quality else None for w in windows)
        for n in names
    }
    worst = sorted(
        (n for n, s in nulls.items() if np.nanmax(s) > 0), key=lambda n: -np.nanmax(nulls[n])
    )
    with _panels(3) as (fig, (ax_null, ax_bad, ax_rej)):
        for colour, name in zip(_LINES, worst, strict=False):
            ax_null.plot(
                x, nulls[name] * 100, marker="o", ms=3, color=colour, label=_plain(name, 24)
            )
        if worst:
            _legend(ax_null)
        else:
            ax_null.text(0.5, 0.5, "No missing values", transform=ax_null.transAxes, ha="center")
        ax_null.set_ylim(bottom=0)
        ax_null.set_title("Missing values (the features with the most)")
        ax_null.set_ylabel("Missing (%)")
        out_of_range, unseen = (
            _series(sum(getattr(w.quality, k).values()) if w.quality else None for w in windows)
            for k in ("out_of_range", "unseen")
        )
        ax_bad.bar(x - 0.2, out_of_range, width=0.4, color=_ORANGE, label="value out of range")
        ax_bad.bar(x + 0.2, unseen, width=0.4, color=_PURPLE, label="category never seen")
        ax_bad.set_title("Unexpected values (all features)")
        ax_bad.set_ylabel("Rows")
        _legend(ax_bad)
        rejected = _series(w.quality.rejected if w.quality else None for w in windows)
        ax_rej.bar(x, rejected, width=0.6, color=_VERMILLION)
        ax_rej.set_title("Rows rejected by the data contract")
        ax_rej.set_ylabel("Rows")
        for ax, values in ((ax_bad, [out_of_range, unseen]), (ax_rej, [rejected])):
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            top = float(np.nanmax(np.concatenate([*values, [0.0]])))  # 0: never all NaN
            ax.set_ylim(0, max(1.0, top * 1.08))
        _time_axis(ax_rej, labels)
        return _svg(fig, "quality", "Data quality per window")


def _traffic_plot(windows: Sequence[WindowResult], labels: Sequence[str]) -> str:
    x = np.arange(len(windows))
    p50 = _series(w.latency.p50_ms if w.latency else None for w in windows)
    p99 = _series(w.latency.p99_ms if w.latency else None for w in windows)
    has_latency = bool(np.isfinite(p50).any() or np.isfinite(p99).any())
    with _panels(1 + has_latency) as (fig, axes):
        if has_latency:
            ax = axes[0]
            ax.plot(x, p50, marker="o", ms=3, color=_BLUE, label="typical request (p50)")
            ax.plot(x, p99, marker="s", ms=3, color=_VERMILLION, label="slowest 1% (p99)")
            ax.set_ylim(bottom=0)
            ax.set_title("Response time")
            ax.set_ylabel("Milliseconds")
            _legend(ax)
        ax = axes[-1]
        volume = [w.quality.volume if w.quality else w.n_rows for w in windows]
        ax.bar(x, volume, width=0.6, color=_SKY, label="received")
        expected = _series(w.quality.expected_volume if w.quality else None for w in windows)
        if np.isfinite(expected).any():
            ax.plot(x, expected, ls="none", marker="_", ms=18, mew=2.5, color="black",
                    label="expected")  # fmt: skip
        ax.set_title("Rows received per window")
        ax.set_ylabel("Rows")
        _legend(ax)
        _time_axis(ax, labels)
        return _svg(fig, "traffic", "Response time and rows received per window")


# ---------------------------------------------------------------------------------
# The page.
# ---------------------------------------------------------------------------------

_E = html.escape
_DASH = "—"


def _num(x: float | None, digits: int = 2) -> str:
    return _DASH if x is None else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    if x is None:
        return _DASH
    v = x * 100
    return f"{v:.1f}%" if 0 < abs(v) < 10 and not v.is_integer() else f"{v:.0f}%"


def _p_value(p: float | None) -> str:
    return _DASH if p is None else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def _stamp(t: datetime | None) -> str:
    return _DASH if t is None else t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _day(t: datetime) -> str:
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%d") if (t.hour, t.minute) == (0, 0) else t.strftime("%Y-%m-%d %H:%M")


def _window_labels(windows: Sequence[WindowResult]) -> list[str]:
    starts = [w.start.astimezone(UTC) for w in windows]
    if all((t.hour, t.minute) == (0, 0) for t in starts):
        return [t.strftime("%Y-%m-%d") for t in starts]
    return [t.strftime("%m-%d %H:%M") for t in starts]


def _drifted(w: WindowResult) -> list[FeatureDrift]:
    return sorted((f for f in w.features.values() if f.drifted), key=lambda f: -(f.ratio or 0))


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], caption: str) -> str:
    """Cells are HTML already (escaped by the caller); the first column is a row header."""
    th = "".join(f'<th scope="col">{h}</th>' for h in head)
    body = "".join(
        f'<tr><th scope="row">{r[0]}</th>{"".join(f"<td>{c}</td>" for c in r[1:])}</tr>'
        for r in rows
    )
    return (
        f"<table><caption>{caption}</caption>"
        f"<thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"
    )


def _figure_html(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{caption}</figcaption></figure>"


def _verdict(data: ReportData) -> str:
    """One sentence a person can act on: drift (since when the run of windows with
    drift began), the main metric now against the first window, open alerts."""
    if not data.windows:
        return "No monitoring windows have been computed yet for this endpoint."
    ws, last = data.windows, data.windows[-1]
    parts: list[str] = []
    drifted = _drifted(last)
    if drifted:
        since = len(ws) - 1
        while since > 0 and _drifted(ws[since - 1]):
            since -= 1
        parts.append(
            f"Input drift in {len(drifted)} of {len(last.features)} features "
            f"since {_day(ws[since].start)}"
        )
    elif last.multivariate is not None and last.multivariate.drifted:
        parts.append("The inputs shifted jointly (no single feature drifted)")
    elif last.features:
        parts.append(f"No input drift in {len(last.features)} features in the latest window")
    else:
        parts.append("No input drift figures in the latest window")
    m = next(iter(_metric_list(ws)), "")
    est = [(w, e) for w in ws if (e := _estimate(w, m)) is not None]
    real = [(w, r) for w in ws if (r := _realized(w, m)) is not None]
    if est:
        (w0, first), (_, now) = est[0], est[-1]
        text = f"estimated {_metric_words(m)} {now.value:.2f}"
        text += f" (likely {now.low:.2f} to {now.high:.2f})"
        # Against the model's own figure at training when known, else the first window.
        trained = _trained(ws, m)
        before, when = (trained, "at training") if trained is not None else (first.value, "")
        when = when or f"on {_day(w0.start)}"
        if trained is not None or len(est) > 1:
            gap = now.value - before
            text += (
                f", about the same as {when}"
                if abs(gap) < 0.005
                else f", {'down' if gap < 0 else 'up'} from {before:.2f} {when}"
            )
        parts.append(text)
    elif real:
        w, value = real[-1]
        cover = w.performance.coverage if w.performance else None
        labelled = f" (labels for {_pct(cover)} of predictions)" if cover is not None else ""
        parts.append(f"realized {_metric_words(m)} {value:.2f}{labelled}")
    else:
        parts.append("no performance figures yet")
    n_open = sum(a.unresolved for a in data.alerts)
    if n_open:
        parts.append(f"{n_open} open alert{'s' if n_open != 1 else ''}")
    return "; ".join(parts) + "."


def _summary(data: ReportData) -> str:
    ws, last = data.windows, data.windows[-1]
    rows = [
        ["Windows", f"{len(ws)} ({_day(ws[0].start)} to {_day(ws[-1].end)})"],
        ["Rows", f"{sum(w.n_rows for w in ws):,} in total; {last.n_rows:,} in the latest window"],
    ]
    drifted = _drifted(last)
    names = ", ".join(_E(f.name) for f in drifted[:8]) + (", …" if len(drifted) > 8 else "")
    if last.features:
        count = f"{len(drifted)} of {len(last.features)}"
        rows.append(["Drifted features now", count + (f": {names}" if drifted else "")])
    if last.multivariate is not None:
        mv = last.multivariate
        rows.append(
            [
                "Features together",
                f"{'shifted' if mv.drifted else 'no joint shift'} (a classifier tells the "
                f"window from the reference with AUC {mv.auc:.2f}, where 0.5 is chance; "
                f"the threshold is {mv.threshold:.2f})",
            ]
        )
    if last.prediction is not None:
        p = last.prediction
        rows.append(
            [
                "Predictions",
                f"{'drifted' if p.drifted else 'stable'} "
                f"(effect {_num(p.effect)}, threshold {_num(p.threshold)})",
            ]
        )
    n_open = sum(a.unresolved for a in data.alerts)
    acked = sum(a.state == "acknowledged" for a in data.alerts)
    rows.append(["Open alerts", f"{n_open}" + (f" ({acked} acknowledged)" if acked else "")])
    for m in _metric_list(ws):
        e = next((e for w in reversed(ws) if (e := _estimate(w, m)) is not None), None)
        r = next(((w, r) for w in reversed(ws) if (r := _realized(w, m)) is not None), None)
        est = (
            "no estimate"
            if e is None
            else f"estimated {e.value:.2f} (likely {e.low:.2f} to {e.high:.2f})"
        )
        rea = "no labels yet"
        if r is not None:
            cover = r[0].performance.coverage if r[0].performance else None
            rea = f"realized {r[1]:.2f}" + (
                f" from labels on {_pct(cover)} of predictions" if cover is not None else ""
            )
            rea += "" if r[0] is last else f" (window of {_day(r[0].start)})"
        rows.append([_E(_capital(_metric_words(m))), f"{est}; {rea}"])
    if last.quality is not None:
        q = last.quality
        vol = (
            f"; volume {q.volume / q.expected_volume:.0%} of expected" if q.expected_volume else ""
        )
        rejected = (
            "rejected rows not recorded" if q.rejected is None else f"{q.rejected:,} rows rejected"
        )
        rows.append(["Data quality now", rejected + vol])
    if last.latency is not None:
        rows.append(
            [
                "Response time now",
                f"median {_num(last.latency.p50_ms, 0)} ms; "
                f"slowest 1% {_num(last.latency.p99_ms, 0)} ms",
            ]
        )
    return _table(["Measure", "Latest window"], rows, "Where things stand")


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{title}</h2>{body}</section>'


def _drift_section(ws: Sequence[WindowResult], labels: Sequence[str]) -> str:
    last = ws[-1]
    names = list(dict.fromkeys(n for w in ws for n in w.features))
    if not names:
        return "<p>No feature drift figures were recorded for these windows.</p>"
    worst = {
        n: max((f.ratio or 0 for w in ws if (f := w.features.get(n))), default=0) for n in names
    }
    names.sort(key=lambda n: (not (n in last.features and last.features[n].drifted), -worst[n]))
    shown = names[:_MAX_HEATMAP_FEATURES]
    note = (
        f" Showing the {len(shown)} features that moved most; the other {len(names) - len(shown)} "
        "stayed further below their thresholds."
        if len(names) > len(shown)
        else ""
    )
    intro = (
        "<p>Each cell compares one feature in one window with the reference data. The number is "
        "the size of the change divided by the size that counts as material, so 1.0 or more "
        "(orange, red) is a material change. A feature <strong>drifted</strong> (outlined) when "
        f"the change is both material and statistically significant.{_E(note)}</p>"
    )
    fig = _figure_html(_drift_plot(ws, shown, labels), "Drift effect per feature and window.")
    rows = [
        [
            _E(f.name),
            _E(f.kind),
            _E(f.test or _DASH),
            _num(f.effect, 3),
            _num(f.threshold, 3),
            _p_value(f.p_value),
            "<strong>drifted</strong>" if f.drifted else "stable",
        ]
        for f in sorted(last.features.values(), key=lambda f: (not f.drifted, -(f.ratio or 0)))
    ]
    head = ["Feature", "Kind", "Test", "Effect size", "Threshold", "p-value", "Verdict"]
    table = _table(head, rows, f"Every feature in the latest window ({_E(_day(last.start))})")
    return intro + fig + table


def _distribution_section(ws: Sequence[WindowResult]) -> str:
    drifted = _drifted(ws[-1])
    if not drifted:
        return "<p>No feature drifted in the latest window.</p>"
    figures = [
        _figure_html(
            _distribution_plot(f, f.histogram, f"dist{i}"),
            f"Effect {_num(f.effect)} (threshold {_num(f.threshold)}); "
            f"{_E(f.test or 'test')} p-value {_p_value(f.p_value)}.",
        )
        for i, f in enumerate(drifted[:_MAX_DISTRIBUTIONS])
        if f.histogram is not None
    ]
    missing = [f.name for f in drifted if f.histogram is None]
    notes = []
    if len(drifted) > _MAX_DISTRIBUTIONS:
        notes.append(
            f"Showing the {_MAX_DISTRIBUTIONS} features that moved most of {len(drifted)}."
        )
    if missing:
        notes.append(f"No distribution was stored for: {', '.join(missing)}.")
    intro = (
        "<p>The features that drifted in the latest window: the reference (blue, filled) against "
        "the latest window (red line or bars), as the share of rows per range of values or per "
        f"category.</p>{''.join(f'<p>{_E(n)}</p>' for n in notes)}"
    )
    return intro + f'<div class="grid">{"".join(figures)}</div>'


def _performance_section(ws: Sequence[WindowResult], labels: Sequence[str]) -> str:
    metrics = _metric_list(ws)
    if not any(w.performance for w in ws):
        return "<p>No performance figures were recorded for these windows.</p>"
    if any(w.performance and w.performance.estimated for w in ws):
        words = (
            "<p>The estimate (blue) is computed from the model's own confidence and needs no "
            "labels; the shaded band is where the true figure most likely lies. Realized "
            "figures (red) come from labels as they arrive, over the labelled share shown "
            "below them."
            + (" The dashed line is the model's figure at training." if _has_trained(ws) else "")
            + "</p>"
        )
    else:
        words = (
            "<p>There is no estimate of performance without labels for this model: estimates "
            "are made for classifiers only, from how confident their predictions are. Until "
            "labels arrive, the drift above is the early warning. Realized figures (red) come "
            "from labels, over the labelled share shown below them.</p>"
        )
    if not metrics:
        return words + "<p>No labels have arrived yet, so there are no realized figures.</p>"
    return words + _figure_html(_performance_plot(ws, metrics, labels), "Performance per window.")


def _quality_section(ws: Sequence[WindowResult], labels: Sequence[str]) -> str:
    if not any(w.quality for w in ws):
        return "<p>No data quality figures were recorded for these windows.</p>"
    fig = _figure_html(_quality_plot(ws, labels), "Data quality per window.")
    last = ws[-1]
    q = last.quality
    if q is None:
        return fig + "<p>The latest window has no data quality figures.</p>"
    names = sorted(set(q.null_rates) | set(q.out_of_range) | set(q.unseen))
    rows = [
        [
            _E(n),
            _pct(q.null_rates.get(n, f.null_fraction if (f := last.features.get(n)) else None)),
            _pct(last.features[n].reference_null_fraction if n in last.features else None),
            f"{q.out_of_range.get(n, 0):,}",
            f"{q.unseen.get(n, 0):,}",
        ]
        for n in names
        if q.null_rates.get(n) or q.out_of_range.get(n) or q.unseen.get(n)
    ]
    if not rows:
        return fig + "<p>In the latest window no feature has missing or unexpected values.</p>"
    head = [
        "Feature",
        "Missing now",
        "Missing in reference",
        "Out of range (rows)",
        "Unseen category (rows)",
    ]
    return fig + _table(
        head, rows, "Features with missing or unexpected values in the latest window"
    )


def _alerts_section(alerts: Sequence[AlertEntry]) -> str:
    if not alerts:
        return "<p>No alerts.</p>"
    rank = {"critical": 0, "error": 1, "warning": 2, "info": 3}
    ordered = sorted(
        alerts,
        key=lambda a: (
            not a.unresolved,
            rank.get(a.severity, 2),
            -(a.last_seen or a.first_seen or datetime.min.replace(tzinfo=UTC)).timestamp(),
        ),
    )
    rows = [
        [
            _E(a.state + (f" by {a.acked_by}" if a.state == "acknowledged" and a.acked_by else "")),
            f'<span class="sev sev-{a.severity if a.severity in rank else "other"}">'
            f"{_E(a.severity)}</span>",
            _E(a.message),
            _stamp(a.first_seen),
            _stamp(a.last_seen),
            f"{a.count:,}",
        ]
        for a in ordered
    ]
    head = ["Status", "Severity", "What happened", "First seen", "Last seen", "Times"]
    return _table(head, rows, "Alerts, open first")


# Nothing may load from elsewhere or run: a safety net under the escaping.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


@functools.cache
def _page() -> string.Template:
    """The page around the sections, with its stylesheet (a file of its own so the
    layout and the CSS read as HTML and CSS)."""
    text = resources.files("setpoint.monitoring").joinpath("report.html.tmpl")
    return string.Template(text.read_text(encoding="utf-8"))


def render_report(data: ReportData) -> str:
    """The whole report as one HTML document (no external references, no scripts)."""
    ws = data.windows
    labels = _window_labels(ws)
    period = f"{_stamp(ws[0].start)} to {_stamp(ws[-1].end)}" if ws else "no windows yet"
    meta = [
        ("Model", f"{data.model}, version {data.version}"),
        ("Reference data", data.reference or _DASH),
        ("Period", period),
        ("Generated", _stamp(data.generated_at)),
    ]
    meta_html = "".join(f"<dt>{_E(k)}</dt><dd>{_E(v)}</dd>" for k, v in meta)
    if ws:
        sections = [
            _section("summary", "Summary", _summary(data)),
            _section("drift", "Input drift over time", _drift_section(ws, labels)),
            _section(
                "distributions", "What changed in the drifted features", _distribution_section(ws)
            ),
            _section("performance", "Model performance", _performance_section(ws, labels)),
            _section("quality", "Data quality", _quality_section(ws, labels)),
            _section(
                "traffic",
                "Traffic and response time",
                _figure_html(_traffic_plot(ws, labels), "Traffic per window."),
            ),
        ]
    else:
        sections = [
            _section("summary", "Summary", "<p>Nothing to show until the monitor has run.</p>")
        ]
    sections.append(_section("alerts", "Alerts", _alerts_section(data.alerts)))
    return _page().substitute(
        csp=_CSP,
        endpoint=_E(data.endpoint),
        verdict=_E(_verdict(data)),
        meta=meta_html,
        sections="".join(sections),
    )


def write_report(path: str | Path, data: ReportData) -> Path:
    """Render and write the report; written to a temporary file and renamed, so a
    reader never sees half a report."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(render_report(data), encoding="utf-8")
    tmp.replace(target)
    return target
