"""One endpoint over time: traffic and latency, drift by feature, estimated against
realized performance, data quality and refused rows, its deployments and the
candidates it has tried on live traffic.

The series come from the windows' digests (``monitoring/digest.py``) over the chosen
range, folded into at most :data:`MAX_POINTS` buckets of equal time, so a year of
hourly windows draws as fast as a week; only the latest window's full results are read.
Ranges longer than :data:`DAILY_AFTER` of windows shorter than a day read the daily
rollups instead (``monitoring/rollups.py``): 365 merged digests for a year of hourly
windows rather than 8,760, each then folded like a window.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from setpoint._durations import parse_duration
from setpoint.errors import NotFoundError
from setpoint.loop.rollouts import RolloutStore
from setpoint.monitoring.series import WindowDigest
from setpoint.ui import charts
from setpoint.ui.pages import overview
from setpoint.ui.pages._page import Page, View

MAX_POINTS = 168
RANGES: dict[str, timedelta] = {
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "365d": timedelta(days=365),
}
RANGE_WORDS = {"1d": "day", "7d": "week", "30d": "30 days", "90d": "90 days", "365d": "year"}
DEFAULT_RANGE = "7d"
# Longer ranges of windows shorter than a day are read a day a point: 168 points over
# 90 days are already half a day each, so a day loses little of the chart.
DAILY_AFTER = timedelta(days=30)
_HEATMAP_ROWS = 20


class Folded:
    """Windows (oldest first) folded into at most ``points`` buckets of equal span of
    time, each figure read once per window into an array and reduced per bucket with
    numpy: a year of hourly windows folds in milliseconds, where a loop over windows
    and buckets took a third of the page's time (bench/ui.py)."""

    def __init__(self, windows: Sequence[WindowDigest], *, points: int = MAX_POINTS) -> None:
        self.digests = [w.digest for w in windows]
        if len(windows) <= points:
            self.starts = [w.start for w in windows]
            self.bounds = np.arange(len(windows))
        else:
            first, span = windows[0].start, (windows[-1].end - windows[0].start) / points
            index = [min(int((w.start - first) / span), points - 1) for w in windows]
            self.bounds = np.flatnonzero(np.diff(index, prepend=-1))
            self.starts = [first + span * index[i] for i in self.bounds]
        self.sizes = np.diff(np.append(self.bounds, len(windows)))

    def __len__(self) -> int:
        return len(self.starts)

    def column(self, get: Callable[[dict[str, Any]], Any]) -> np.ndarray:
        """One figure of every window; NaN where a window lacks it. A digest holds only
        finite numbers or None (``monitoring/digest.py``), which becomes NaN here."""
        return _floats([get(d) for d in self.digests])

    def matrix(self, names: Sequence[str], get: Callable[[dict[str, Any]], Any]) -> np.ndarray:
        """Per name, the figure ``get`` maps it to in each window (NaN where missing),
        read in one pass over the windows."""
        rows: dict[str, list[Any]] = {name: [None] * len(self.digests) for name in names}
        for j, digest in enumerate(self.digests):
            for name, value in (get(digest) or {}).items():
                found = rows.get(name)
                if found is not None:
                    found[j] = value
        # Sized explicitly: with no names (digests without scores) -1 cannot be inferred.
        shape = (len(names), len(self.digests))
        return np.array([_floats(rows[name]) for name in names]).reshape(shape)

    def total(self, values: np.ndarray) -> list[float | None]:
        """The sum of each bucket's known values; None where it has none."""
        known = np.add.reduceat(~np.isnan(values), self.bounds) if len(self) else values
        sums = np.add.reduceat(np.nan_to_num(values), self.bounds) if len(self) else values
        return _listed(np.where(known > 0, sums, math.nan))

    def highest(self, values: np.ndarray) -> list[float | None]:
        """The largest known value of each bucket (along the last axis); None if none."""
        if not len(self):
            return []
        return _listed(np.fmax.reduceat(values, self.bounds, axis=-1))

    def mean(self, values: np.ndarray) -> list[float | None]:
        """The mean of each bucket's known values; None where it has none."""
        if not len(self):
            return []
        known = np.add.reduceat(~np.isnan(values), self.bounds)
        sums = np.add.reduceat(np.nan_to_num(values), self.bounds)
        with np.errstate(invalid="ignore", divide="ignore"):
            return _listed(np.where(known > 0, sums / np.maximum(known, 1), math.nan))

    def flags(self, rows: Sequence[str], get: Callable[[dict[str, Any]], Any]) -> list[list[bool]]:
        """Per name of ``rows``, whether any window of each bucket lists it in ``get``."""
        where = {name: i for i, name in enumerate(rows)}
        marks = np.zeros((len(rows), len(self.digests)), dtype=np.uint8)
        for j, digest in enumerate(self.digests):
            for name in get(digest) or ():
                if name in where:
                    marks[where[name], j] = 1
        if not len(self):
            return [[] for _ in rows]
        return (np.maximum.reduceat(marks, self.bounds, axis=1) > 0).tolist()  # type: ignore[no-any-return]


def figures(digests: Sequence[dict[str, Any]], metric: str | None) -> dict[str, np.ndarray]:
    """The figures the charts draw, of every window, read in one pass (NaN if missing)."""
    names = ("rows", "refused", "p50_ms", "p99_ms", "drift_share", "cost", "measured")
    read: dict[str, list[Any]] = {n: [] for n in (*names, "value", "low", "high", "realized")}
    flat = [read[n].append for n in names]
    value, low, high = read["value"].append, read["low"].append, read["high"].append
    realized = read["realized"].append
    for digest in digests:
        for name, add in zip(names, flat, strict=True):
            add(digest.get(name))
        estimate = digest.get("estimated") or _NOTHING
        value(estimate.get("value"))
        low(estimate.get("low"))
        high(estimate.get("high"))
        realized((digest.get("realized") or _NOTHING).get(metric or ""))
    return {name: _floats(values) for name, values in read.items()}


_NOTHING: dict[str, Any] = {}


def _listed(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in values.tolist()]


def _floats(values: list[Any]) -> np.ndarray:
    """Numbers and None (as NaN) to a float array, in C."""
    return np.array(values, dtype=object).astype(float)


def fold(windows: Sequence[WindowDigest], *, points: int = MAX_POINTS) -> Folded:
    """``windows`` (oldest first) in at most ``points`` buckets of equal span of time."""
    return Folded(windows, points=points)


def gather(view: View) -> dict[str, Any]:
    ws, name = view.workspace, view.params["endpoint"]
    deployments = ws.deployments.history(name)  # NotFoundError names the fix
    rollouts = RolloutStore(ws.db, actor=view.actor)
    unresolved = overview.unresolved_alerts(ws, name)
    live = dict(view.live()) if view.live is not None else None
    row = overview.endpoint_row(view, deployments[-1], rollouts, unresolved, live)
    chosen = view.query.get("range", "")
    out: dict[str, Any] = {
        "page_title": f"Endpoint {name}",
        "endpoint": row,
        "ranges": [
            {"key": k, "words": RANGE_WORDS[k], "href": view.url("endpoints", name, range=k)}
            for k in RANGES
        ],
        "deployments": [_deployment(d) for d in reversed(deployments)],
        "trials": _trials(view, rollouts.list(endpoint=name, limit=50)),
        "alerts": [a.to_dict() for a in unresolved],
        "monitored": True,
    }
    try:
        monitor = ws.monitors.get(name)
    except NotFoundError:
        return {**out, "range": DEFAULT_RANGE, "monitored": False}
    span = parse_duration(monitor.config.window, what="window")
    if chosen not in RANGES:
        chosen = default_range(span)
    out["range"], out["range_words"] = chosen, RANGE_WORDS[chosen]
    daily = span < timedelta(days=1) and RANGES[chosen] > DAILY_AFTER
    windows = ws.monitors.series(name, since=_since(ws, name, RANGES[chosen]), daily=daily)
    out["window_span"] = monitor.config.window
    out.update(_charts(fold(windows), name, RANGE_WORDS[chosen], each="day" if daily else "window"))
    out["daily"] = daily
    # A day's rollup counts the windows it merged (a window's own digest has no count).
    out["n_windows"] = (
        sum(int(w.digest.get("windows") or 1) for w in windows) if daily else len(windows)
    )
    out["n_days"] = len(windows) if daily else None
    return out


def default_range(window: timedelta) -> str:
    """The shortest range that shows at least 48 of the monitor's windows (a week of
    hourly ones, 90 days of daily ones, a year of weekly ones), else a year."""
    for key, span in RANGES.items():
        if span / window >= 48:
            return key
    return "365d"


def _since(ws: Any, name: str, span: timedelta) -> datetime | None:
    """The start of the range: ``span`` before the endpoint's newest window ends (so an
    endpoint whose traffic stopped still shows its last weeks)."""
    latest = ws.monitors.windows(name, limit=1)
    return None if not latest else latest[-1].end - span


def _charts(folded: Folded, name: str, words: str, *, each: str = "window") -> dict[str, Any]:
    """The page's charts; ``each``: what one digest of ``folded`` holds (a window, or a
    day of them)."""
    times = folded.starts

    def paired(values: list[float | None]) -> list[tuple[datetime, float | None]]:
        return list(zip(times, values, strict=True))

    metric = next((d["metric"] for d in reversed(folded.digests) if d.get("metric")), None)
    figure = figures(folded.digests, metric)
    rows, refused = folded.total(figure["rows"]), folded.total(figure["refused"])
    per = "point" if folded.sizes.max(initial=1) > 1 else each
    performance = None
    if metric is not None:
        band = list(zip(folded.mean(figure["low"]), folded.mean(figure["high"]), strict=True))
        performance = charts.line_chart(
            [
                charts.Series(
                    f"estimated {metric}", paired(folded.mean(figure["value"])), band=band
                ),
                charts.Series(
                    f"realized {metric}", paired(folded.mean(figure["realized"])), dashed=True
                ),
            ],
            title=f"{metric}: estimated (with its band) and realized, last {words}",
            chart_id=f"performance-{name}",
        )
    return {
        "folded": per == "point",
        "traffic_chart": charts.line_chart(
            [charts.Series(f"rows per {per}", paired(rows))],
            title=f"Traffic: rows answered per {per}, last {words}",
            unit="rows",
            y_min=0,
            chart_id=f"traffic-{name}",
        ),
        "latency_chart": charts.line_chart(
            [
                charts.Series("p99", paired(folded.highest(figure["p99_ms"]))),
                charts.Series("p50", paired(folded.mean(figure["p50_ms"])), dashed=True),
            ],
            title=f"Latency, last {words}",
            unit="ms",
            y_min=0,
            chart_id=f"latency-{name}",
        ),
        "drift_chart": _heatmap(folded, name, words),
        "drift_share_chart": charts.line_chart(
            [
                charts.Series(
                    "share of features drifted", paired(folded.highest(figure["drift_share"]))
                )
            ],
            title=f"Share of features drifted, last {words}",
            y_min=0,
            y_max=1,
            chart_id=f"drift-share-{name}",
        ),
        "metric": metric,
        "performance_chart": performance,
        "refused_chart": charts.line_chart(
            [charts.Series(f"rows refused per {per}", paired(refused))],
            title=f"Rows the contract refused, last {words}",
            unit="rows",
            y_min=0,
            chart_id=f"refused-{name}",
        ),
        "rules_chart": _rules(folded, name, words),
        "cost_chart": _cost_chart(folded, figure, paired, name, words),
        "refused_total": int(sum(v for v in refused if v is not None)),
        "rows_total": int(sum(v for v in rows if v is not None)),
    }


def _cost_chart(
    folded: Folded,
    figure: dict[str, np.ndarray],
    paired: Callable[[list[float | None]], list[tuple[datetime, float | None]]],
    name: str,
    words: str,
) -> Any:
    """What 1,000 predictions cost in each bucket (its cost over its measured rows);
    None when no window was measured."""
    cost, measured = folded.total(figure["cost"]), folded.total(figure["measured"])
    per_1000 = [
        None if c is None or not m else c / m * 1000 for c, m in zip(cost, measured, strict=True)
    ]
    if all(v is None for v in per_1000):
        return None
    return charts.line_chart(
        [charts.Series("cost per 1,000 predictions", paired(per_1000))],
        title=f"Cost per 1,000 predictions, last {words}",
        y_min=0,
        chart_id=f"cost-{name}",
    )


def _heatmap(folded: Folded, name: str, words: str) -> Any:
    """Features by time, each cell the highest drift score in its bucket, flagged when
    any of its windows drifted; the features that drifted most come first."""
    features: dict[str, None] = {}
    for digest in folded.digests:
        features.update(dict.fromkeys(digest.get("scores") or ()))
    names = list(features)
    matrix = folded.matrix(names, lambda d: d.get("scores"))
    scores = {f: folded.highest(matrix[i]) for i, f in enumerate(names)}
    flags = dict(zip(names, folded.flags(names, lambda d: d.get("drifted")), strict=True))
    order = sorted(names, key=lambda f: (-sum(flags[f]), -max((s or 0.0) for s in scores[f])))
    shown = order[:_HEATMAP_ROWS]
    return charts.heatmap(
        shown,
        folded.starts,
        [scores[f] for f in shown],
        flagged=[flags[f] for f in shown],
        title=f"Drift by feature, last {words}"
        + (f" ({len(shown)} of {len(order)} features)" if len(order) > len(shown) else ""),
        scale_label="drift score (1 = material)",
        chart_id=f"drift-{name}",
    )


def _rules(folded: Folded, name: str, words: str) -> Any:
    counts: dict[str, float] = {}
    for digest in folded.digests:
        for column, rule, n in digest.get("refused_by_rule") or ():
            label = f"{column}: {rule}"
            counts[label] = counts.get(label, 0.0) + float(n)
    if not counts:
        return None
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:12]
    return charts.bar_chart(
        top, title=f"Refused rows by rule, last {words}", unit="rows", chart_id=f"rules-{name}"
    )


def _deployment(d: Any) -> dict[str, Any]:
    config = d.config
    return {
        "revision": d.revision,
        "model": config.model,
        "challenger": config.challenger,
        "mode": config.mode,
        "share": config.share,
        "note": d.note,
        "by": d.created_by,
        "at": d.created_at,
    }


def _trials(view: View, rollouts: list[Any]) -> list[dict[str, Any]]:
    """The rollouts that put a candidate on live traffic, with what it showed."""
    out = []
    for r in rollouts:
        if not r.live and r.mode not in ("shadow", "canary"):
            continue
        live = r.live or {}
        champion = (live.get("champion") or {}).get("metrics") or {}
        candidate = (live.get("candidate") or {}).get("metrics") or {}
        shared = [
            m for m in ("roc_auc", "accuracy", "rmse", "mae") if m in champion and m in candidate
        ]
        out.append(
            {
                "id": r.id,
                "href": view.url("rollouts", r.id),
                "mode": live.get("mode") or r.mode,
                "state": r.state.replace("_", " "),
                "candidate": r.candidate,
                "champion": r.champion,
                "pairs": live.get("pairs"),
                "agreement": live.get("agreement"),
                "metric": shared[0] if shared else None,
                "pair": (champion.get(shared[0]), candidate.get(shared[0])) if shared else None,
            }
        )
    return out


PAGES = [Page("/endpoints/{endpoint}", "endpoint.html", gather, "Overview", live=True)]
