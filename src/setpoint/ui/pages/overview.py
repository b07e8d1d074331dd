"""The front page: every endpoint, what serves it and how it is doing, in words."""

from __future__ import annotations

from typing import Any

from setpoint.errors import NotFoundError, SetpointError
from setpoint.loop.rollouts import RolloutStore
from setpoint.models.evaluation import PRIMARY
from setpoint.ui import status
from setpoint.ui.pages._page import Page, View


def gather(view: View) -> dict[str, Any]:
    ws = view.workspace
    rollouts = RolloutStore(ws.db, actor=ws.actor)
    live = dict(view.live()) if view.live is not None else None
    unresolved = [a for a in ws.monitors.alerts.list(limit=500) if a.state != "resolved"]
    rows = []
    for deployment in sorted(ws.deployments.current(), key=lambda d: d.endpoint):
        rows.append(_endpoint(view, deployment, rollouts, unresolved, live))
    waiting = [r for r in rows if r["rollout"] and r["rollout"]["state"] == "awaiting_approval"]
    return {
        "endpoints": rows,
        "waiting": waiting,
        "open_alerts": len(unresolved),
        "live_counts": live is not None,
    }


def _endpoint(
    view: View,
    deployment: Any,
    rollouts: RolloutStore,
    unresolved: list[Any],
    live: dict[str, Any] | None,
) -> dict[str, Any]:
    ws, name = view.workspace, deployment.endpoint
    config = deployment.config
    serving, task, problem = config.model, None, None
    try:
        version = ws.model(config.model)
        serving, task = version.ref, version.task
    except SetpointError as error:
        problem = error.message
    try:
        monitor = ws.monitors.get(name)
    except NotFoundError:
        monitor = None
    latest = ws.monitors.windows(name, limit=1) if monitor is not None else []
    window = latest[-1] if latest else None
    results = window.results if window is not None else None
    rollout = rollouts.active(name)
    alerts = [a.to_dict() for a in unresolved if a.endpoint == name]
    primary = PRIMARY.get(task or "", None)
    found = status.findings(
        monitored=monitor is not None,
        window=results,
        rollout=None if rollout is None else rollout.to_dict(),
        open_alerts=alerts,
        primary=primary,
        cannot_serve=problem,
    )
    performance = (results or {}).get("performance") or {}
    estimate = (performance.get("estimated") or {}).get(primary or "")
    realized = (performance.get("realized") or {}).get(primary or "")
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
        "p99_ms": ((results or {}).get("latency") or {}).get("p99_ms"),
        "refused": None if results is None else status.refused_share(results),
        "errors": None
        if not counts or not counts.get("requests")
        else counts["errors"] / counts["requests"],
        "drifted": list(((results or {}).get("drift") or {}).get("drifted_features") or []),
        "primary": primary,
        "estimate": estimate,
        "realized": realized,
        "alerts": alerts,
        "rollout": None if rollout is None else rollout.to_dict(),
        "rollout_href": None if rollout is None else view.url("rollouts", rollout.id),
    }


PAGES = [Page("/", "overview.html", gather, "Overview", live=True)]
