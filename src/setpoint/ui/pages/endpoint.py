"""One endpoint over time: traffic and latency, drift by feature, estimated against
realized performance, data quality and refused rows, its deployments and the
candidates it has tried on live traffic.

The series come from the windows' digests (``monitoring/digest.py``) over the chosen
range, folded into at most :data:`MAX_POINTS` buckets of equal time, so a year of
hourly windows draws as fast as a week; only the latest window's full results are read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

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
_HEATMAP_ROWS = 20


@dataclass(frozen=True)
class Bucket:
    """Windows folded into one point: ``start`` of the first, and the windows."""

    start: datetime
    windows: list[WindowDigest]

    def total(self, key: str) -> float | None:
        found = [w.digest.get(key) for w in self.windows]
        numbers = [v for v in found if isinstance(v, (int, float))]
        return float(sum(numbers)) if numbers else None

    def highest(self, get: Callable[[dict[str, Any]], Any]) -> float | None:
        numbers = [v for v in (get(w.digest) for w in self.windows) if _number(v)]
        return float(max(numbers)) if numbers else None

    def mean(self, get: Callable[[dict[str, Any]], Any]) -> float | None:
        numbers = [float(v) for v in (get(w.digest) for w in self.windows) if _number(v)]
        return sum(numbers) / len(numbers) if numbers else None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def fold(windows: Sequence[WindowDigest], *, points: int = MAX_POINTS) -> list[Bucket]:
    """``windows`` (oldest first) in at most ``points`` buckets of equal span of time."""
    if len(windows) <= points:
        return [Bucket(w.start, [w]) for w in windows]
    first, last = windows[0].start, windows[-1].end
    span = (last - first) / points
    buckets: list[Bucket] = []
    for window in windows:
        index = min(int((window.start - first) / span), points - 1)
        start = first + span * index
        if buckets and buckets[-1].start == start:
            buckets[-1].windows.append(window)
        else:
            buckets.append(Bucket(start, [window]))
    return buckets


def gather(view: View) -> dict[str, Any]:
    ws, name = view.workspace, view.params["endpoint"]
    deployments = ws.deployments.history(name)  # NotFoundError names the fix
    rollouts = RolloutStore(ws.db, actor=view.actor)
    unresolved = [a for a in ws.monitors.alerts.list(endpoint=name) if a.state != "resolved"]
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
    if chosen not in RANGES:
        chosen = default_range(parse_duration(monitor.config.window, what="window"))
    out["range"], out["range_words"] = chosen, RANGE_WORDS[chosen]
    windows = ws.monitors.series(name, since=_since(ws, name, RANGES[chosen]))
    out["window_span"] = monitor.config.window
    out.update(_charts(fold(windows), name, RANGE_WORDS[chosen]))
    out["n_windows"] = len(windows)
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


def _charts(buckets: list[Bucket], name: str, words: str) -> dict[str, Any]:
    times = [b.start for b in buckets]
    rows = [(t, b.total("rows")) for t, b in zip(times, buckets, strict=True)]
    p99 = [(t, b.highest(lambda d: d.get("p99_ms"))) for t, b in zip(times, buckets, strict=True)]
    p50 = [(t, b.mean(lambda d: d.get("p50_ms"))) for t, b in zip(times, buckets, strict=True)]
    refused = [(t, b.total("refused")) for t, b in zip(times, buckets, strict=True)]
    share = [
        (t, b.highest(lambda d: d.get("drift_share"))) for t, b in zip(times, buckets, strict=True)
    ]
    metric = next(
        (w.digest.get("metric") for b in buckets for w in b.windows if w.digest.get("metric")), None
    )
    estimated = [
        (t, b.mean(lambda d: (d.get("estimated") or {}).get("value")))
        for t, b in zip(times, buckets, strict=True)
    ]
    band = [
        (
            b.mean(lambda d: (d.get("estimated") or {}).get("low")),
            b.mean(lambda d: (d.get("estimated") or {}).get("high")),
        )
        for b in buckets
    ]
    realized = [
        (t, b.mean(lambda d: (d.get("realized") or {}).get(metric or "")))
        for t, b in zip(times, buckets, strict=True)
    ]
    per = "window" if all(len(b.windows) == 1 for b in buckets) else "point"
    return {
        "folded": per == "point",
        "traffic_chart": charts.line_chart(
            [charts.Series(f"rows per {per}", rows)],
            title=f"Traffic: rows answered per {per}, last {words}",
            unit="rows",
            y_min=0,
            chart_id=f"traffic-{name}",
        ),
        "latency_chart": charts.line_chart(
            [charts.Series("p99", p99), charts.Series("p50", p50, dashed=True)],
            title=f"Latency, last {words}",
            unit="ms",
            y_min=0,
            chart_id=f"latency-{name}",
        ),
        "drift_chart": _heatmap(buckets, name, words),
        "drift_share_chart": charts.line_chart(
            [charts.Series("share of features drifted", share)],
            title=f"Share of features drifted, last {words}",
            y_min=0,
            y_max=1,
            chart_id=f"drift-share-{name}",
        ),
        "metric": metric,
        "performance_chart": charts.line_chart(
            [
                charts.Series(f"estimated {metric}", estimated, band=band),
                charts.Series(f"realized {metric}", realized, dashed=True),
            ],
            title=f"{metric}: estimated (with its band) and realized, last {words}",
            chart_id=f"performance-{name}",
        )
        if metric
        else None,
        "refused_chart": charts.line_chart(
            [charts.Series(f"rows refused per {per}", refused)],
            title=f"Rows the contract refused, last {words}",
            unit="rows",
            y_min=0,
            chart_id=f"refused-{name}",
        ),
        "rules_chart": _rules(buckets, name, words),
        "refused_total": sum(v for _, v in refused if v is not None),
        "rows_total": sum(v for _, v in rows if v is not None),
    }


def _heatmap(buckets: list[Bucket], name: str, words: str) -> Any:
    """Features by time, each cell the highest drift score in its bucket, flagged when
    any of its windows drifted; the features that drifted most come first."""
    scores: dict[str, list[float | None]] = {}
    flags: dict[str, list[bool]] = {}
    for i, bucket in enumerate(buckets):
        for window in bucket.windows:
            drifted = set(window.digest.get("drifted") or [])
            for feature, score in (window.digest.get("scores") or {}).items():
                row = scores.setdefault(feature, [None] * len(buckets))
                flag = flags.setdefault(feature, [False] * len(buckets))
                if _number(score) and (row[i] is None or score > row[i]):
                    row[i] = float(score)
                flag[i] = flag[i] or feature in drifted
    order = sorted(scores, key=lambda f: (-sum(flags[f]), -max((s or 0.0) for s in scores[f])))
    shown = order[:_HEATMAP_ROWS]
    return charts.heatmap(
        shown,
        [b.start for b in buckets],
        [scores[f] for f in shown],
        flagged=[flags[f] for f in shown],
        title=f"Drift by feature, last {words}"
        + (f" ({len(shown)} of {len(order)} features)" if len(order) > len(shown) else ""),
        scale_label="drift score (1 = material)",
        chart_id=f"drift-{name}",
    )


def _rules(buckets: list[Bucket], name: str, words: str) -> Any:
    counts: dict[str, float] = {}
    for bucket in buckets:
        for window in bucket.windows:
            for column, rule, n in window.digest.get("refused_by_rule") or []:
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
