"""The front page: every endpoint, what serves it and how it is doing, in words."""

from __future__ import annotations

from typing import Any

from setpoint.errors import NotFoundError, SetpointError
from setpoint.loop.rollouts import RolloutStore
from setpoint.monitoring.digest import digest
from setpoint.ui import charts, status
from setpoint.ui.pages._page import Page, View


def gather(view: View) -> dict[str, Any]:
    ws = view.workspace
    rollouts = RolloutStore(ws.db, actor=ws.actor)
    live = dict(view.live()) if view.live is not None else None
    unresolved = unresolved_alerts(ws)
    rows = []
    for deployment in sorted(ws.deployments.current(), key=lambda d: d.endpoint):
        rows.append(endpoint_row(view, deployment, rollouts, unresolved, live))
    waiting = [r for r in rows if r["rollout"] and r["rollout"]["state"] == "awaiting_approval"]
    return {
        "endpoints": rows,
        "waiting": waiting,
        "open_alerts": len(unresolved),
        "live_counts": live is not None,
    }


def unresolved_alerts(ws: Any, endpoint: str | None = None) -> list[Any]:
    """Every alert not resolved (of ``endpoint``), however many resolved ones there are."""
    alerts = ws.monitors.alerts
    return [
        a
        for state in ("open", "acknowledged")
        for a in alerts.list(endpoint=endpoint, state=state, limit=None)
    ]


def endpoint_row(
    view: View,
    deployment: Any,
    rollouts: RolloutStore,
    unresolved: list[Any],
    live: dict[str, Any] | None,
) -> dict[str, Any]:
    """What the overview shows of one endpoint (and the endpoint page at its top):
    what serves it, the latest window's figures, and its state in words."""
    ws, name = view.workspace, deployment.endpoint
    config = deployment.config
    serving, problem = config.model, None
    try:
        serving = ws.model(config.model).ref
    except SetpointError as error:
        problem = error.message
    try:
        monitor = ws.monitors.get(name)
    except NotFoundError:
        monitor = None
    latest = ws.monitors.windows(name, limit=1) if monitor is not None else []
    window = latest[-1] if latest else None
    results = window.results if window is not None else None
    facts = digest(results, window.n_rows) if window is not None and results is not None else {}
    trend: list[float | None] = []
    if window is not None:  # the traffic of the last 48 windows, for the sparkline
        span = window.end - window.start
        trend = [w.n_rows for w in ws.monitors.series(name, since=window.end - 48 * span)]
    rollout = rollouts.active(name)
    alerts = [a.to_dict() for a in unresolved if a.endpoint == name]
    metric = facts.get("metric")
    found = status.findings(
        monitored=monitor is not None,
        window=results,
        rollout=None if rollout is None else rollout.to_dict(),
        open_alerts=alerts,
        primary=metric,
        cannot_serve=problem,
    )
    hours = None
    if window is not None:
        hours = max((window.end - window.start).total_seconds() / 3600, 1e-9)
    counts = (live or {}).get(name)
    return {
        "name": name,
        "href": view.url("endpoints", name),
        "serving": serving,
        "model_href": view.url("models", serving.split("@")[0]),
        "challenger": config.challenger,
        "mode": config.mode,
        "findings": found,
        "level": status.worst(found),
        "headline": found[0].text,
        "window": None
        if window is None
        else {"start": window.start, "end": window.end, "rows": window.n_rows},
        "rows_per_hour": None if window is None or hours is None else window.n_rows / hours,
        "trend": charts.sparkline(
            trend, label=f"rows per window of {name}, last {len(trend)} windows"
        )
        if len(trend) > 1
        else None,
        "p99_ms": facts.get("p99_ms"),
        "refused": None if results is None else status.refused_share(results),
        "errors": None
        if not counts or not counts.get("requests")
        else counts["errors"] / counts["requests"],
        "judged": facts.get("judged"),
        "drifted": facts.get("drifted") or [],
        "primary": metric,
        "estimate": facts.get("estimated"),
        "realized": (facts.get("realized") or {}).get(metric or ""),
        "labels": facts.get("labels"),
        "alerts": alerts,
        "rollout": None if rollout is None else rollout.to_dict(),
        "rollout_href": None if rollout is None else view.url("rollouts", rollout.id),
    }


PAGES = [Page("/", "overview.html", gather, "Overview", live=True)]
