"""Plots: matplotlib figures rendered to inline SVG.

Inline SVG stays sharp when zoomed or printed and keeps its text as text. Plots are
drawn on ``matplotlib.figure.Figure`` objects directly, never through pyplot, so
rendering a report neither needs a display nor changes the backend of the process it
runs in. Colours come from the Okabe-Ito palette, told apart with the common
colour-vision deficiencies.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from setpoint.monitoring.report._data import FeatureDrift, Histogram, WindowResult
from setpoint.monitoring.report._format import _capital
from setpoint.monitoring.report._metrics import _estimate, _metric_words, _realized, _trained

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

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
_MAX_CATEGORIES = 12
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


def _mark_references(axes: Sequence[Axes], windows: Sequence[WindowResult]) -> None:
    """A dotted line before each window measured against another model than the one
    before it (a promotion rebased the monitor), named in the first panel's legend
    (in the right margin, so it never covers the data or a title)."""
    names = []
    for i in range(1, len(windows)):
        before, now = windows[i - 1].reference, windows[i].reference
        if not before or not now or before == now:
            continue
        for ax in axes:
            ax.axvline(i - 0.5, color="black", ls=":", lw=1.4, zorder=5)
        names.append(now)
    if not names:
        return
    ax = axes[0]
    legend = ax.get_legend()
    handles: list[Artist] = []
    labels: list[str] = []
    if legend is not None:
        for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True):
            if handle is not None:
                handles.append(handle)
                labels.append(text.get_text())
    handles.append(Line2D([], [], color="black", ls=":", lw=1.4))
    labels.append(_plain(f"reference now {names[-1]}", 32))
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1))


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
                np.nan
                if not w.judged or (f := w.features.get(n)) is None or f.ratio is None
                else f.ratio
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
        handles.append(
            Patch(facecolor="white", edgecolor="#BBBBBB", label="not judged (too few rows)")
        )
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1))
        _mark_references([ax], windows)
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
        _mark_references(axes, windows)
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
        # Refused rows (hard or enforced rules), and rows answered outside the soft ones.
        rejected = _series(
            (w.quality.contract.refused if w.quality.contract else w.quality.rejected)
            if w.quality
            else None
            for w in windows
        )
        scored = _series(
            w.quality.contract.scored if w.quality and w.quality.contract else None for w in windows
        )
        ax_rej.bar(x - 0.2, rejected, width=0.4, color=_VERMILLION, label="refused")
        ax_rej.bar(x + 0.2, scored, width=0.4, color=_ORANGE, label="answered, marked")
        ax_rej.set_title("Rows outside the data contract")
        ax_rej.set_ylabel("Rows")
        if np.nansum(rejected) + np.nansum(scored) > 0:
            _legend(ax_rej)
        elif np.isfinite(rejected).any() or np.isfinite(scored).any():
            ax_rej.text(0.5, 0.5, "Every row within the contract", transform=ax_rej.transAxes,
                        ha="center")  # fmt: skip
        else:
            ax_rej.text(0.5, 0.5, "Not recorded", transform=ax_rej.transAxes, ha="center")
        for ax, values in ((ax_bad, [out_of_range, unseen]), (ax_rej, [rejected, scored])):
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            top = float(np.nanmax(np.concatenate([*values, [0.0]])))  # 0: never all NaN
            ax.set_ylim(0, max(1.0, top * 1.08))
        _mark_references([ax_null, ax_bad, ax_rej], windows)
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
        _mark_references(axes, windows)
        _time_axis(ax, labels)
        return _svg(fig, "traffic", "Response time and rows received per window")
