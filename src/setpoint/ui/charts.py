"""Charts the dashboard draws on the server as inline SVG: a time series with bands, bars,
a drift heatmap, a lineage graph and sparklines.

matplotlib takes tens of milliseconds a figure; these take about a millisecond, so a
page of five charts renders well inside its budget. The pages are served under a
Content-Security-Policy without ``'unsafe-inline'``, so nothing here writes a ``style``
attribute or element: looks come from SVG presentation attributes, which the
stylesheet may override through these class names:

``chart`` (every ``<svg>``, with ``chart-line``, ``chart-bars``, ``chart-heatmap``,
``chart-lineage`` or ``chart-sparkline``), ``chart-title``, ``chart-text`` (all other
text), ``chart-axis``, ``chart-grid``, ``chart-legend``, ``chart-series``,
``chart-band``, ``chart-threshold``, ``chart-bar``, ``chart-cell``, ``chart-nodata``,
``chart-flag``, ``chart-node`` (with ``chart-node-dataset``, ``-model``,
``-deployment``, ``-traffic`` or ``-other``), ``chart-note``, ``chart-edge``,
``chart-empty``.

The readers are not engineers: every chart has a ``<title>`` and a ``<desc>`` saying
the data in words (named by ``aria-labelledby``), colour is never the only cue (dashes
and labels for series, outline and dot for drifted cells, headers for lineage columns),
and colours come from the Okabe-Ito palette (its yellow is left out of lines: too pale
on white). Text is sized for the chart's own width (12 units, 11 for notes); a chart
drawn much narrower than its ``width`` shrinks its text with it. Non-finite numbers
are gaps, like ``None``. Times are shown in the zone of the datetimes given. User text
is escaped everywhere.
"""

from __future__ import annotations

import hashlib
import math
import re
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from markupsafe import Markup, escape

__all__ = [
    "Node",
    "Series",
    "bar_chart",
    "heatmap",
    "line_chart",
    "lineage_graph",
    "pareto_chart",
    "pareto_front",
    "sparkline",
    "time_ticks",
]

_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")
_KINDS = ("dataset", "model", "deployment", "traffic")
_KIND_HEADERS = ("Datasets", "Models", "Deployments", "Traffic", "Other")
_KIND_NOUNS = ("dataset version", "model version", "deployment", "traffic source", "other item")
_KIND_COLOURS = ("#56B4E9", "#0072B2", "#009E73", "#E69F00", "#CC79A7")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_CHAR_W = 6.6  # mean advance of a 12-unit sans-serif character, to fit labels
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class Series:
    """One line: points in time order (``None`` is a window without data), or in the
    order of a number on the x axis (``line_chart(x_unit=...)``), an optional low/high
    band per point drawn shaded, and dashed or solid."""

    name: str
    points: Sequence[tuple[datetime, float | None]] | Sequence[tuple[float, float | None]]
    band: Sequence[tuple[float | None, float | None]] | None = None
    dashed: bool = False


@dataclass(frozen=True)
class Node:
    """A box in the lineage graph; ``kind`` picks its column, ``href`` makes it a link."""

    id: str
    label: str
    kind: str
    href: str | None = None
    note: str = ""


# -- formatting ---------------------------------------------------------------------------


def _t(text: str) -> str:
    """Escaped text, without the characters XML forbids."""
    return str(escape(_NOT_XML.sub("", text)))


def _c(v: float) -> str:
    """A coordinate, rounded to a tenth."""
    s = f"{v:.1f}"
    if s.endswith(".0"):
        s = s[:-2]
    return "0" if s == "-0" else s


def _trim(s: str) -> str:
    return s.rstrip("0").rstrip(".") if "." in s and "e" not in s else s


def _num(v: float) -> str:
    """A number as a person reads it: 1,234 / 12.5 / 0.23 / 3.4 million."""
    a = abs(v)
    if a >= 1e12:
        return f"{v:.2g}"
    if a >= 1e9:
        return f"{_trim(f'{v / 1e9:.2f}')} billion"
    if a >= 1e6:
        return f"{_trim(f'{v / 1e6:.2f}')} million"
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return _trim(f"{v:.1f}")
    if a >= 0.01:
        return _trim(f"{v:.2f}")
    return "0" if a == 0 else f"{v:.2g}"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _with_unit(v: float, unit: str) -> str:
    if not unit:
        return _num(v)
    return f"{_num(v)}{unit}" if unit == "%" else f"{_num(v)} {unit}"


def _date(d: datetime, *, time: bool = False, year: bool = False) -> str:
    s = f"{d.day} {_MONTHS[d.month - 1]}"
    if year:
        s += f" {d.year}"
    return f"{s} {d:%H:%M}" if time else s


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def _fit(text: str, room: float) -> str:
    """``text`` cut with an ellipsis to about ``room`` units."""
    n = max(1, int(room / _CHAR_W))
    return text if len(text) <= n else text[: n - 1] + "…"


def _chart_id(chart_id: str | None, title: str) -> str:
    if chart_id:
        cid = re.sub(r"[^A-Za-z0-9_-]", "-", chart_id)
        return cid if cid[0].isalpha() else "c-" + cid
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:24]
    digest = hashlib.sha1(title.encode("utf-8", "surrogatepass")).hexdigest()[:6]
    return f"chart-{slug}-{digest}" if slug else f"chart-{digest}"


def _open(
    cid: str, kind: str, width: float, height: float, title: str, desc: str, role: str = "img"
) -> list[str]:
    # A chart holding links is a group, not an image: an image's children are hidden
    # from assistive technology, so its links could not be reached (axe: nested-interactive).
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {kind}" '
        f'viewBox="0 0 {_c(width)} {_c(height)}" width="100%" role="{role}" '
        f'aria-labelledby="{cid}-title {cid}-desc" font-family="system-ui, sans-serif" '
        f'font-size="12"><title id="{cid}-title">{_t(title)}</title>'
        f'<desc id="{cid}-desc">{_t(desc)}</desc>',
        f'<text class="chart-title" x="0" y="14" font-size="13" font-weight="600" '
        f'fill="#000">{_t(_fit(title, width * 1.1))}</text>',
    ]


def _text(
    x: float, y: float, text: str, *, anchor: str = "start", cls: str = "chart-text", size: int = 12
) -> str:
    a = "" if anchor == "start" else f' text-anchor="{anchor}"'
    s = "" if size == 12 else f' font-size="{size}"'
    return f'<text class="{cls}" x="{_c(x)}" y="{_c(y)}"{a}{s} fill="#000">{_t(text)}</text>'


def _empty(cid: str, kind: str, title: str, width: int, height: int) -> Markup:
    parts = _open(cid, kind, width, height, title, "No data in this range.")
    parts.append(
        _text(
            width / 2,
            height / 2 + 4,
            "No data in this range",
            anchor="middle",
            cls="chart-text chart-empty",
        )
    )
    return Markup("".join(parts) + "</svg>")


class _Scale:
    """Maps ``[lo, hi]`` onto ``[a, b]``, clamped; safe for values near the float limits."""

    def __init__(self, lo: float, hi: float, a: float, b: float) -> None:
        self.lo, self.hi, self.a = lo, hi, a
        self.s = max(abs(lo), abs(hi), 1e-300)
        self.lo_s = lo / self.s
        span = hi / self.s - self.lo_s
        self.k = (b - a) / span if span > 0 else 0.0
        self.mid = (a + b) / 2

    def __call__(self, v: float) -> float:
        if self.k == 0.0:
            return self.mid
        v = self.lo if v < self.lo else self.hi if v > self.hi else v
        return self.a + (v / self.s - self.lo_s) * self.k

    def many(self, vs: Iterable[float | None]) -> list[float | None]:
        """Positions of many values at once (the hot loop), ``None`` for a non-finite one."""
        lo, hi, s, lo_s, k, a = self.lo, self.hi, self.s, self.lo_s, self.k, self.a
        if k == 0.0:
            return [self.mid if v is not None and v - v == 0 else None for v in vs]
        # v - v == 0 is false for inf and nan
        return [
            a + ((lo if v < lo else hi if v > hi else v) / s - lo_s) * k
            if v is not None and v - v == 0
            else None
            for v in vs
        ]


def _nice(
    lo: float, hi: float, *, fixed_lo: bool, fixed_hi: bool
) -> tuple[float, float, list[float]]:
    """Widen ``[lo, hi]`` to round numbers (unless fixed) and pick 3-6 ticks in it."""
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = (lo if fixed_lo else lo - pad), (hi if fixed_hi else hi + pad)
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
            return lo, hi, [lo]
    raw = (hi - lo) / 4
    if not math.isfinite(raw) or raw <= 0:
        return lo, hi, [lo, hi]
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    nlo = lo if fixed_lo else math.floor(lo / step) * step
    nhi = hi if fixed_hi else math.ceil(hi / step) * step
    if not (math.isfinite(nlo) and math.isfinite(nhi)):
        return lo, hi, [lo, hi]
    first = math.ceil(nlo / step)
    ticks = [i * step for i in range(first, first + 8) if i * step <= nhi * (1 + 1e-12) + 1e-300]
    return nlo, nhi, ticks or [nlo, nhi]


# -- time ticks ---------------------------------------------------------------------------

_DAY = 86400
# (approximate seconds, unit, count): seconds steps divide a day, or are whole days/weeks
_STEPS = (
    *((n, "s", n) for n in (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)),
    *((n * _DAY, "s", n * _DAY) for n in (1, 2, 7, 14)),
    *((n * 30.44 * _DAY, "m", n) for n in (1, 2, 3, 6)),
    *((n * 365.25 * _DAY, "y", n) for n in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)),
)


def _add_months(d: datetime, n: int) -> datetime:
    m = d.month - 1 + n
    return d.replace(year=d.year + m // 12, month=m % 12 + 1)


def _aligned(start: datetime, end: datetime, unit: str, n: int) -> list[datetime]:
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "s":
        if n >= 7 * _DAY:
            day -= timedelta(days=day.weekday())  # weeks start on Monday
        step = timedelta(seconds=n)
        t = day + step * max(0, math.ceil((start - day).total_seconds() / n))
        out = []
        while t <= end:
            out.append(t)
            t += step
        return out
    if unit == "m":
        t = day.replace(day=1, month=day.month - (day.month - 1) % n)
    else:
        t = day.replace(day=1, month=1, year=max(1, day.year - day.year % n))
    out = []
    while t <= end:
        if t >= start:
            out.append(t)
        try:
            t = _add_months(t, n) if unit == "m" else t.replace(year=t.year + n)
        except ValueError:  # past year 9999
            break
    return out


def time_ticks(start: datetime, end: datetime, *, max_ticks: int = 8) -> list[tuple[datetime, str]]:
    """At most ``max_ticks`` round moments in ``[start, end]`` with their labels: hours
    ("14:00", a midnight as "3 Mar") for a day, days ("3 Mar") for a week or month,
    months ("Mar", with the year on the first and on January) for a year, then years."""
    if end < start:
        start, end = end, start
    span = (end - start).total_seconds()
    max_ticks = max(1, max_ticks)
    for approx, unit, n in _STEPS:
        if span / approx > max_ticks:
            continue
        ticks = _aligned(start, end, unit, int(n))
        if not 0 < len(ticks) <= max_ticks:
            continue
        if unit == "s" and n < _DAY:
            return [(t, _date(t) if t.hour == t.minute == 0 else f"{t:%H:%M}") for t in ticks]
        if unit == "s":
            return [(t, _date(t)) for t in ticks]
        if unit == "m":
            return [
                (t, _MONTHS[t.month - 1] + (f" {t.year}" if i == 0 or t.month == 1 else ""))
                for i, t in enumerate(ticks)
            ]
        return [(t, str(t.year)) for t in ticks]
    return [(start, _date(start, time=span < 2 * _DAY))]


# -- line chart ---------------------------------------------------------------------------


def _polylines(
    px: Sequence[float | None], py: Sequence[float | None], attrs: str, dot: str
) -> list[str]:
    """One polyline per run of points between gaps; a lone point becomes a dot."""
    out: list[str] = []
    run: list[str] = []
    for x, y in zip([*px, None], [*py, None], strict=True):
        if x is not None and y is not None:
            run.append(f"{x:.1f},{y:.1f}")
            continue
        if len(run) == 1:
            cx, cy = run[0].split(",")
            out.append(f'<circle cx="{cx}" cy="{cy}" r="2" {attrs} fill="{dot}"/>')
        elif run:
            out.append(f'<polyline points="{" ".join(run)}" fill="none" {attrs}/>')
        run = []
    return out


def _describe_series(
    s: Series, vals: list[float], unit: str, long: bool, short: bool, x_unit: str | None = None
) -> str:
    if not vals:
        return f"{s.name}: no data"
    first, last = s.points[0][0], s.points[-1][0]
    gaps = len(s.points) - len(vals)
    if isinstance(first, datetime) and isinstance(last, datetime):
        span = f"{_date(first, time=short, year=long)} to {_date(last, time=short, year=long)}"
    else:
        ends = [_with_unit(x, x_unit or "") for x in (first, last) if isinstance(x, float | int)]
        span = " to ".join(ends)
    text = (
        f"{s.name} from {span}: lowest {_with_unit(min(vals), unit)}, "
        f"highest {_with_unit(max(vals), unit)}, latest {_with_unit(vals[-1], unit)}"
    )
    return text + (f", {gaps} without data" if gaps else "")


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    unit: str = "",
    y_min: float | None = None,
    y_max: float | None = None,
    threshold: float | None = None,
    threshold_label: str = "",
    width: int = 720,
    height: int = 200,
    chart_id: str | None = None,
    x_unit: str | None = None,
) -> Markup:
    """Series over time on one axis, with their bands, a legend and an optional labelled
    horizontal threshold; "No data in this range" when no series has a number. With
    ``x_unit`` the x values are numbers in that unit (latency against offered
    requests a second), not times."""
    cid = _chart_id(chart_id, title)
    vals = [[v for _, v in s.points if v is not None and v - v == 0] for s in series]
    if not any(vals):
        return _empty(cid, "chart-line", title, width, height)
    numeric = x_unit is not None

    def x_of(t: datetime | float) -> float:
        return t.timestamp() if isinstance(t, datetime) else float(t)

    times: list[Any] = [t for s in series for t, _ in s.points]
    t0, t1 = min(times), max(times)
    threshold = _finite(threshold)
    threshold_label = threshold_label or "threshold"
    # the legend wraps onto as many lines as it needs
    legend, lx, ly, right = [], 0.0, 32.0, width - 28
    for i, s in enumerate(series):
        label = s.name + (" (shaded: range)" if s.band else "") + (" (dashed)" if s.dashed else "")
        item_w = 26 + len(label) * _CHAR_W
        if lx and lx + item_w > right:
            lx, ly = 0.0, ly + 16
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        legend.append(
            f'<line x1="{_c(lx)}" y1="{_c(ly - 4)}" x2="{_c(lx + 20)}" y2="{_c(ly - 4)}" '
            f'stroke="{_PALETTE[i % 7]}" stroke-width="2"{dash}/>'
        )
        legend.append(_text(lx + 24, ly, _fit(label, right - lx - 24)))
        lx += item_w + 14
    top, left, bottom = ly + (26 if unit else 14), 52.0, height - 22.0
    bands = [_finite(b) for s in series for lo_hi in (s.band or ()) for b in lo_hi]
    extra = [b for b in bands if b is not None] + ([threshold] if threshold is not None else [])
    data = [v for vs in vals for v in vs] + extra
    lo = y_min if y_min is not None and math.isfinite(y_min) else min(data)
    hi = y_max if y_max is not None and math.isfinite(y_max) else max(data)
    lo, hi, ticks = _nice(lo, hi, fixed_lo=y_min is not None, fixed_hi=y_max is not None)
    ys = _Scale(lo, hi, bottom, top)
    if numeric:
        x_lo, x_hi, x_ticks = _nice(x_of(t0), x_of(t1), fixed_lo=False, fixed_hi=False)
        short = long = False
    else:
        x_lo, x_hi = x_of(t0), x_of(t1)
        span = (t1 - t0).total_seconds()
        short, long = span < 2 * _DAY, t0.year != t1.year
    xs = _Scale(x_lo, x_hi, left, right)
    words = [
        _describe_series(s, v, unit, long, short, x_unit) for s, v in zip(series, vals, strict=True)
    ]
    if threshold is not None:
        words.append(f"{threshold_label} at {_with_unit(threshold, unit)}")
    parts = _open(cid, "chart-line", width, height, title, "; ".join(words) + ".")
    parts.append('<g class="chart-legend">' + "".join(legend) + "</g>")
    parts.append('<g class="chart-axis">')
    for v in ticks:
        y = ys(v)
        parts.append(
            f'<line class="chart-grid" x1="{_c(left)}" y1="{_c(y)}" x2="{_c(right)}" '
            f'y2="{_c(y)}" stroke="#ddd"/>'
        )
        parts.append(_text(left - 4, y + 4, _num(v), anchor="end"))
    if unit:
        parts.append(_text(left - 4, top - 12, unit, anchor="end", size=11))
    marks: list[tuple[float, str]] = (
        [(v, _num(v)) for v in x_ticks]
        if numeric
        else [
            (t.timestamp(), label)
            for t, label in time_ticks(t0, t1, max_ticks=max(2, int((right - left) // 80)))
        ]
    )
    if numeric and x_unit:
        parts.append(_text(right, bottom - 4, x_unit, anchor="end", size=11))
    for tx, label in marks:
        x = xs(tx)
        parts.append(
            f'<line x1="{_c(x)}" y1="{_c(bottom)}" x2="{_c(x)}" y2="{_c(bottom + 4)}" '
            f'stroke="#555"/>'
        )
        parts.append(_text(x, height - 6, label, anchor="middle"))
    parts.append(
        f'<line x1="{_c(left)}" y1="{_c(bottom)}" x2="{_c(right)}" y2="{_c(bottom)}" '
        f'stroke="#555"/></g>'
    )

    for i, s in enumerate(series):
        colour = _PALETTE[i % 7]
        px = xs.many([x_of(t) for t, _ in s.points])
        if s.band:
            runs: list[list[tuple[float, float, float]]] = [[]]
            his, los = ys.many(h for _, h in s.band), ys.many(lw for lw, _ in s.band)
            for bx, h, lw in zip(px, his, los, strict=False):
                if bx is None or h is None or lw is None:
                    runs.append([])
                else:
                    runs[-1].append((bx, h, lw))
            for run in runs:
                if len(run) < 2:
                    continue
                pts = [f"{x:.1f},{h:.1f}" for x, h, _ in run]
                pts += [f"{x:.1f},{lw:.1f}" for x, _, lw in reversed(run)]
                parts.append(
                    f'<polygon class="chart-band" points="{" ".join(pts)}" '
                    f'fill="{colour}" opacity="0.2"/>'
                )
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        attrs = f'class="chart-series" stroke="{colour}" stroke-width="2"{dash}'
        parts.extend(_polylines(px, ys.many(v for _, v in s.points), attrs, colour))
    if threshold is not None:
        y = ys(threshold)
        parts.append(
            f'<g class="chart-threshold"><line x1="{_c(left)}" y1="{_c(y)}" '
            f'x2="{_c(right)}" y2="{_c(y)}" stroke="#000" stroke-width="1.5" '
            f'stroke-dasharray="2 3"/>'
        )
        label = f"{threshold_label}: {_with_unit(threshold, unit)}"
        parts.append(_text(right, y - 4 if y - 16 > top else y + 13, label, anchor="end", size=11))
        parts.append("</g>")
    return Markup("".join(parts) + "</svg>")


# -- bars ---------------------------------------------------------------------------------


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    title: str,
    unit: str = "",
    width: int = 480,
    chart_id: str | None = None,
) -> Markup:
    """Horizontal bars in the given order, label on the left and the value on the right
    (refused rows by rule, feature importance); negative values grow left of zero."""
    cid = _chart_id(chart_id, title)
    if not bars:
        return _empty(cid, "chart-bars", title, width, 80)
    pitch, top = 22, 26
    height = top + pitch * len(bars) + 6
    label_w = min(width * 0.4, max(len(label) for label, _ in bars) * _CHAR_W + 8)
    value_w = 84.0
    finite = [v for _, v in bars if math.isfinite(v)]
    lo, hi = min([0.0, *finite]), max([0.0, *finite])
    xs = _Scale(lo, hi if hi > lo else 1.0, label_w, width - value_w)
    zero = xs(0.0)
    ranked = sorted(((v, label) for label, v in bars if math.isfinite(v)), reverse=True)
    said = [f"{label} {_with_unit(v, unit)}" for v, label in ranked[:8]]
    more = len(ranked) - len(said)
    desc = (
        f"{_count(len(bars), 'bar')}, largest first: "
        + ", ".join(said)
        + (f" and {more} more" if more else "")
    )
    if len(ranked) < len(bars):
        desc += f"; {len(bars) - len(ranked)} without a value"
    parts = _open(cid, "chart-bars", width, height, title, desc + ".")
    for i, (label, v) in enumerate(bars):
        y = top + i * pitch
        shown = _with_unit(v, unit) if math.isfinite(v) else "no value"
        parts.append(f"<g><title>{_t(label)}: {_t(shown)}</title>")
        parts.append(_text(label_w - 6, y + 15, _fit(label, label_w - 8), anchor="end"))
        if math.isfinite(v):
            x = xs(v)
            parts.append(
                f'<rect class="chart-bar" x="{_c(min(x, zero))}" y="{y + 3}" '
                f'width="{_c(max(abs(x - zero), 0.5))}" height="16" fill="#0072B2"/>'
            )
        parts.append(_text(width - 2, y + 15, shown, anchor="end") + "</g>")
    parts.append(
        f'<line class="chart-axis" x1="{_c(zero)}" y1="{top}" x2="{_c(zero)}" '
        f'y2="{height - 6}" stroke="#555"/>'
    )
    return Markup("".join(parts) + "</svg>")


# -- heatmap ------------------------------------------------------------------------------


def _ramp(n: int) -> list[str]:
    """``n`` colours from near-white through the palette's blue to a dark blue."""
    stops = ((0.0, (0xF2, 0xF7, 0xFB)), (0.65, (0x00, 0x72, 0xB2)), (1.0, (0x00, 0x2A, 0x4A)))
    out = []
    for i in range(n):
        f = i / (n - 1)
        (f0, c0), (f1, c1) = next((a, b) for a, b in pairwise(stops) if f <= b[0])
        w = (f - f0) / (f1 - f0)
        out.append(
            "#" + "".join(f"{round(a + (b - a) * w):02X}" for a, b in zip(c0, c1, strict=True))
        )
    return out


_HEAT = _ramp(10)
_CELL_TITLES_UP_TO = 600  # cells; beyond it only drifted cells and row labels get a <title>


def heatmap(
    rows: Sequence[str],
    columns: Sequence[datetime],
    values: Sequence[Sequence[float | None]],
    *,
    flagged: Sequence[Sequence[bool]] | None = None,
    title: str,
    scale_label: str = "drift score",
    width: int = 720,
    chart_id: str | None = None,
) -> Markup:
    """Features (rows) by windows (columns, in time order), coloured by score from 0 to
    the larger of 1 and the highest score (negatives count as 0); windows without data
    hatched; flagged (drifted) cells outlined in black with a dot, and counted per row."""
    cid = _chart_id(chart_id, title)
    if not rows or not columns:
        return _empty(cid, "chart-heatmap", title, width, 80)
    nr, nc = len(rows), len(columns)
    grid = [
        [
            v if v is not None and v - v == 0 else None
            for v in [*row[:nc], *[None] * (nc - len(row))]
        ]
        for row in (values[i] if i < len(values) else () for i in range(nr))
    ]
    flags = [
        [bool(row[j]) if j < len(row) else False for j in range(nc)]
        for row in ((flagged[i] if flagged and i < len(flagged) else ()) for i in range(nr))
    ]
    row_max = [max([v for v in row if v is not None], default=None) for row in grid]
    seen = [v for v in row_max if v is not None]
    vmax = max([1.0, *seen])
    short = (columns[-1] - columns[0]).total_seconds() < 2 * _DAY or nc == 1
    any_flag = any(any(r) for r in flags)

    label_w = min(160.0, max(len(r) for r in rows) * _CHAR_W + 8)
    count_w = 78.0 if any_flag else 6.0
    left, right, top, pitch = label_w, width - count_w, 24.0, 16
    cw = (right - left) / nc
    bottom = top + nr * pitch
    height = bottom + 92  # the axis, the scale, then what hatch and outline mean

    n_flag = sum(map(sum, flags))
    drifted_rows = [rows[i] for i in range(nr) if any(flags[i])]
    desc = (
        f"{scale_label.capitalize()} for {_count(nr, 'row')} over {_count(nc, 'window')} from "
        f"{_date(columns[0], time=short)} to {_date(columns[-1], time=short)}"
    )
    if seen:
        top_v = max(seen)
        i = row_max.index(top_v)
        j = grid[i].index(top_v)
        desc += f"; highest {_num(top_v)} ({rows[i]}, {_date(columns[j], time=short)})"
    if flagged is not None:
        desc += f"; {_count(n_flag, 'cell')} drifted"
        desc += f" in {', '.join(drifted_rows)}" if n_flag else ""
    parts = _open(cid, "chart-heatmap", width, height, title, desc + ".")
    parts.append(
        f'<defs><pattern id="{cid}-nodata" width="4" height="4" '
        f'patternUnits="userSpaceOnUse"><rect width="4" height="4" fill="#e6e6e6"/>'
        f'<path d="M0 4L4 0" stroke="#888" stroke-width="0.8"/></pattern></defs>'
    )

    runs: dict[int, list[str]] = {}
    xs = [_c(left + j * cw) for j in range(nc + 1)]
    cells, marks = [], []
    k = 10 / vmax
    every_cell = nc * nr <= _CELL_TITLES_UP_TO
    when = [_date(c, time=short) for c in columns]
    label, cwc, r = _t(scale_label), _c(cw), _c(min(4.0, max(1.5, min(cw, 15) * 0.3)))
    for i, row in enumerate(grid):
        y = top + i * pitch
        yc = _c(y)
        bins = [-1 if v is None else 0 if v <= 0 else 9 if v >= vmax else int(v * k) for v in row]
        start = 0
        for j in range(1, nc + 1):
            if j == nc or bins[j] != bins[start]:
                runs.setdefault(bins[start], []).append(
                    f"M{xs[start]} {yc}H{xs[j]}v15H{xs[start]}z"
                )
                start = j
        name = _t(rows[i])
        for j in range(nc) if every_cell else [j for j, f in enumerate(flags[i]) if f]:
            v = row[j]
            # the parts are escaped already: this loop may run thousands of times
            tip = f"{name}, {when[j]}: " + (f"{label} {_num(v)}" if v is not None else "no data")
            box = f'x="{xs[j]}" y="{yc}" width="{cwc}" height="15"'
            if flags[i][j]:
                marks.append(
                    f'<g class="chart-flag"><title>{tip} (drifted)</title><rect {box}/>'
                    f'<circle cx="{_c(left + (j + 0.5) * cw)}" cy="{_c(y + 7.5)}" r="{r}" '
                    f'fill="#fff"/></g>'
                )
            else:
                cells.append(f"<rect {box}><title>{tip}</title></rect>")
        row_vals = [v for v in row if v is not None]
        said = (
            f"{rows[i]}: highest {_num(max(row_vals))}, latest "
            + (_num(row[-1]) if row[-1] is not None else "no data")
            if row_vals
            else f"{rows[i]}: no data"
        )
        count = sum(flags[i])
        if flagged is not None:
            said += f", {count} drifted"
        parts.append(
            f"<g><title>{_t(said)}</title>"
            + _text(left - 6, y + 12, _fit(rows[i], label_w - 8), anchor="end")
            + "</g>"
        )
        if count:
            parts.append(_text(right + 6, y + 12, f"{count} drifted", size=11))
    for b, ds in sorted(runs.items()):
        fill = f"url(#{cid}-nodata)" if b < 0 else _HEAT[b]
        cls = "chart-nodata" if b < 0 else "chart-cell"
        parts.append(f'<path class="{cls}" fill="{fill}" d="{"".join(ds)}"/>')
    # shared attributes on the group keep thousands of cells small
    if cells:
        parts.append('<g fill="#000" fill-opacity="0">' + "".join(cells) + "</g>")
    if marks:
        parts.append('<g fill="none" stroke="#000" stroke-width="1.5">' + "".join(marks) + "</g>")

    col_ts = [c.timestamp() for c in columns]
    for t, label in time_ticks(
        columns[0], columns[-1], max_ticks=max(2, int((right - left) // 80))
    ):
        j = min(nc - 1, bisect_left(col_ts, t.timestamp()))
        x = left + (j + 0.5) * cw
        parts.append(
            f'<line class="chart-axis" x1="{_c(x)}" y1="{_c(bottom)}" x2="{_c(x)}" '
            f'y2="{_c(bottom + 4)}" stroke="#555"/>'
        )
        parts.append(_text(x, bottom + 16, label, anchor="middle"))
    # the legend: the scale as ten swatches with their ends, then what hatch and outline mean
    ly = bottom + 34
    parts.append('<g class="chart-legend">')
    parts.extend(
        f'<rect x="{_c(i * 14)}" y="{_c(ly)}" width="14" height="12" fill="{c}"/>'
        for i, c in enumerate(_HEAT)
    )
    parts.append(_text(0, ly + 25, "0", size=11))
    parts.append(_text(140, ly + 25, _num(vmax), anchor="end", size=11))
    lx = 148.0
    scale_text = f"{scale_label} from 0 (lightest) to {_num(vmax)} (darkest)"
    parts.append(_text(lx, ly + 10, scale_text, size=11))
    # a line of its own: beside a long scale label it ran off the chart's right edge
    lx, ly = 0.0, ly + 36
    parts.append(
        f'<rect x="{_c(lx)}" y="{_c(ly)}" width="14" height="12" fill="url(#{cid}-nodata)"/>'
    )
    parts.append(_text(lx + 18, ly + 10, "no data", size=11))
    if flagged is not None:
        lx += 70
        parts.append(
            f'<rect x="{_c(lx)}" y="{_c(ly)}" width="14" height="12" fill="#fff" '
            f'stroke="#000" stroke-width="1.5"/><circle cx="{_c(lx + 7)}" cy="{_c(ly + 6)}" '
            f'r="3" fill="#fff" stroke="#000"/>'
        )
        parts.append(_text(lx + 18, ly + 10, "drifted (outlined, dot)", size=11))
    parts.append("</g>")
    return Markup("".join(parts) + "</svg>")


# -- lineage ------------------------------------------------------------------------------


def _safe_href(href: str | None) -> str | None:
    """Relative links and http(s) only: a ``javascript:`` link is dropped."""
    if not href:
        return None
    scheme = re.match(r"\s*([A-Za-z][A-Za-z0-9+.-]*):", href)
    return href if scheme is None or scheme.group(1).lower() in ("http", "https") else None


def lineage_graph(
    nodes: Sequence[Node],
    edges: Sequence[tuple[str, str]],
    *,
    title: str,
    width: int = 720,
    chart_id: str | None = None,
) -> Markup:
    """Dataset versions, model versions, deployments and traffic in columns left to right
    (other kinds last), linked by arrows; each column ordered by the mean position of
    the parents to keep crossings few."""
    cid = _chart_id(chart_id, title)
    by_id: dict[str, Node] = {}
    for n in nodes:
        by_id.setdefault(n.id, n)
    if not by_id:
        return _empty(cid, "chart-lineage", title, width, 80)
    links = list(dict.fromkeys((a, b) for a, b in edges if a in by_id and b in by_id and a != b))
    column = {k: (_KINDS.index(n.kind) if n.kind in _KINDS else 4) for k, n in by_id.items()}
    parents: dict[str, list[str]] = {}
    for a, b in links:
        parents.setdefault(b, []).append(a)
    order = list(by_id)
    slot: dict[str, int] = {}
    columns: list[list[str]] = []
    for c in sorted(set(column.values())):
        members = [k for k in order if column[k] == c]

        def pull(k: str) -> float:
            ps = [slot[p] for p in parents.get(k, ()) if p in slot]
            return sum(ps) / len(ps) if ps else math.inf

        members.sort(key=pull)  # stable: ties keep the given order
        slot.update((k, i) for i, k in enumerate(members))
        columns.append(members)

    box_h, gap, top = 38.0, 14.0, 44.0
    pitch = (width - 8) / len(columns)
    box_w = min(180.0, pitch - 40)
    tallest = max(map(len, columns))
    height = top + tallest * (box_h + gap) + 4
    where: dict[str, tuple[float, float]] = {}
    for ci, members in enumerate(columns):
        shift = (tallest - len(members)) * (box_h + gap) / 2
        for k in members:
            where[k] = (4 + ci * pitch, top + shift + slot[k] * (box_h + gap))

    counts = [_count(len(m), _KIND_NOUNS[column[m[0]]]) for m in columns]
    said = [f"{by_id[a].label} to {by_id[b].label}" for a, b in links[:20]]
    desc = "Lineage of " + ", ".join(counts)
    if said:
        desc += (
            ". Links: "
            + "; ".join(said)
            + (f" and {len(links) - 20} more" if len(links) > 20 else "")
        )
    linked = any(_safe_href(n.href) for n in by_id.values())
    parts = _open(
        cid, "chart-lineage", width, height, title, desc + ".", "group" if linked else "img"
    )
    parts.append(
        f'<defs><marker id="{cid}-arrow" viewBox="0 0 8 8" refX="8" refY="4" '
        f'markerWidth="8" markerHeight="8" markerUnits="userSpaceOnUse" orient="auto">'
        f'<path d="M0 0L8 4L0 8z" fill="#555"/></marker></defs>'
    )
    for ci, members in enumerate(columns):
        parts.append(_text(4 + ci * pitch, top - 8, _KIND_HEADERS[column[members[0]]], size=11))
    for a, b in links:
        (ax, ay), (bx, by) = where[a], where[b]
        x1, y1, x2, y2 = ax + box_w, ay + box_h / 2, bx, by + box_h / 2
        mx = (x1 + x2) / 2
        parts.append(
            f'<path class="chart-edge" d="M{_c(x1)} {_c(y1)}C{_c(mx)} {_c(y1)} {_c(mx)} '
            f'{_c(y2)} {_c(x2)} {_c(y2)}" fill="none" stroke="#555" stroke-width="1.5" '
            f'marker-end="url(#{cid}-arrow)"/>'
        )
    for k, n in by_id.items():
        x, y = where[k]
        c = column[k]
        kind = _KINDS[c] if c < 4 else "other"
        tip = f"{n.label} ({n.kind})" + (f": {n.note}" if n.note else "")
        box = (
            f'<g class="chart-node chart-node-{kind}"><title>{_t(tip)}</title>'
            f'<rect x="{_c(x)}" y="{_c(y)}" width="{_c(box_w)}" height="{_c(box_h)}" rx="6" '
            f'fill="#fff" stroke="{_KIND_COLOURS[c]}" stroke-width="2"/>'
            + _text(x + 8, y + (16 if n.note else 23), _fit(n.label, box_w - 14))
            + (
                _text(x + 8, y + 31, _fit(n.note, box_w - 14), cls="chart-text chart-note", size=11)
                if n.note
                else ""
            )
            + "</g>"
        )
        href = _safe_href(n.href)
        parts.append(f'<a href="{_t(href)}">{box}</a>' if href else box)
    return Markup("".join(parts) + "</svg>")


# -- pareto -------------------------------------------------------------------------------


def pareto_front(points: Sequence[tuple[float, float]], *, higher_is_better: bool) -> list[int]:
    """The indices of the points no other beats: none is at most as costly (x) and at
    least as good (y) while better on one of the two. Cheapest first."""
    sign = 1.0 if higher_is_better else -1.0
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -sign * points[i][1]))
    front: list[int] = []
    best = -math.inf
    for i in order:
        x, y = points[i]
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        if sign * y > best:
            front.append(i)
            best = sign * y
    return front


def _tick(v: float, ticks: Sequence[float]) -> str:
    """A tick's label with the digits its neighbours' spacing needs (0.9985, 0.999...)."""
    step = min((b - a for a, b in pairwise(ticks)), default=0.0)
    if step <= 0 or not math.isfinite(step) or abs(v) >= 10 or step >= 0.01:
        return _num(v)
    if abs(v) < 0.01:
        return "0" if v == 0 else f"{v:.2g}"
    digits = min(12, max(2, -math.floor(math.log10(step)) + 1))
    return _trim(f"{v:.{digits}f}")


def pareto_chart(
    points: Sequence[tuple[str, float, float]],
    *,
    title: str,
    x_unit: str,
    y_unit: str,
    higher_is_better: bool,
    width: int = 720,
    height: int = 340,
    chart_id: str | None = None,
) -> Markup:
    """Labelled points, ``(label, x, y)``, with x a cost and y a quality; those no other
    beats (``pareto_front``) in their own colour, joined by a line: what each choice
    costs and gives."""
    cid = _chart_id(chart_id, title)
    finite = [(n, x, y) for n, x, y in points if math.isfinite(x) and math.isfinite(y)]
    if not finite:
        return _empty(cid, "chart-pareto", title, width, height)
    on_front = pareto_front([(x, y) for _, x, y in finite], higher_is_better=higher_is_better)
    front = [finite[i] for i in on_front]
    better = "higher" if higher_is_better else "lower"
    desc = (
        f"{_count(len(finite), 'point')}, {x_unit} across, {y_unit} up ({better} is "
        f"better); not beaten by another: " + ", ".join(n for n, _, _ in front)
    )
    top, left, bottom, right = 50.0, 64.0, height - 40.0, width - 24.0
    x_lo, x_hi, x_ticks = _nice(
        min(x for _, x, _ in finite), max(x for _, x, _ in finite), fixed_lo=False, fixed_hi=False
    )
    y_lo, y_hi, y_ticks = _nice(
        min(y for _, _, y in finite), max(y for _, _, y in finite), fixed_lo=False, fixed_hi=False
    )
    xs, ys = _Scale(x_lo, x_hi, left, right), _Scale(y_lo, y_hi, bottom, top)
    parts = _open(cid, "chart-pareto", width, height, title, desc + ".")
    parts.append(f'<circle cx="{_c(left + 6)}" cy="28" r="4" fill="{_PALETTE[1]}"/>')
    parts.append(_text(left + 16, 32, f"not beaten by another ({better} {y_unit} is better)"))
    parts.append(_text(0, top - 14, y_unit))
    for v in y_ticks:
        y = ys(v)
        parts.append(
            f'<line class="chart-grid" x1="{_c(left)}" y1="{_c(y)}" x2="{_c(right)}" '
            f'y2="{_c(y)}" stroke="#ddd"/>'
        )
        parts.append(_text(left - 6, y + 4, _tick(v, y_ticks), anchor="end"))
    for v in x_ticks:
        parts.append(_text(xs(v), bottom + 16, _tick(v, x_ticks), anchor="middle"))
    parts.append(_text((left + right) / 2, height - 6, x_unit, anchor="middle"))
    if len(front) > 1:
        line = " ".join(f"{_c(xs(x))},{_c(ys(y))}" for _, x, y in front)
        parts.append(
            f'<polyline class="chart-series" fill="none" stroke="{_PALETTE[1]}" '
            f'stroke-width="2" points="{line}"/>'
        )
    placed: list[tuple[float, float, float]] = []  # labels drawn: left, right, baseline
    for i, (name, x, y) in enumerate(finite):
        px, py = xs(x), ys(y)
        label = _fit(name, (right - left) / 3)
        span = len(label) * _CHAR_W
        anchor = "end" if px > (left + right) / 2 else "start"
        x0 = px - 7 - span if anchor == "end" else px + 7
        ty = py - 6
        while any(a < x0 + span and x0 < b and abs(ty - base) < 13 for a, b, base in placed):
            ty += 14  # below a label already there
        placed.append((x0, x0 + span, ty))
        colour = _PALETTE[1] if i in on_front else _PALETTE[0]
        shown = f"{_tick(x, x_ticks)} {x_unit}, {_tick(y, y_ticks)} {y_unit}"
        parts.append(f"<g><title>{_t(name)}: {_t(shown)}</title>")
        parts.append(f'<circle cx="{_c(px)}" cy="{_c(py)}" r="4" fill="{colour}"/>')
        parts.append(_text(px + (-7 if anchor == "end" else 7), ty, label, anchor=anchor) + "</g>")
    return Markup("".join(parts) + "</svg>")


# -- sparkline ----------------------------------------------------------------------------


def sparkline(
    values: Sequence[float | None], *, label: str, width: int = 120, height: int = 28
) -> Markup:
    """A tiny trend for a table cell, evenly spaced, its latest value dotted; read out by
    ``label``, which should say what the trend shows."""
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-sparkline" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{_t(label)}"><title>{_t(label)}</title>'
    )
    clean = [_finite(v) for v in values]
    seen = [v for v in clean if v is not None]
    if not seen:
        return Markup(
            head
            + _text(
                width / 2,
                height / 2 + 4,
                "no data",
                anchor="middle",
                cls="chart-text chart-empty",
                size=11,
            )
            + "</svg>"
        )
    xs = _Scale(0, max(1, len(clean) - 1), 2, width - 4)
    ys = _Scale(min(seen), max(seen), height - 3, 3)
    px, py = xs.many(range(len(clean))), ys.many(clean)
    lines = _polylines(
        px, py, 'class="chart-series" stroke="#0072B2" stroke-width="1.5"', "#0072B2"
    )
    x, y = next((x, y) for x, y in zip(reversed(px), reversed(py), strict=True) if y is not None)
    dot = f'<circle cx="{_c(x or 0)}" cy="{_c(y)}" r="2.5" fill="#000"/>'
    return Markup(head + "".join(lines) + dot + "</svg>")
