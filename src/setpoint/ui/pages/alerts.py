"""Alerts: the open ones first, the past ones below, and acknowledge (someone is on it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from setpoint.monitoring.alerts import STATES
from setpoint.ui.pages._page import Action, Page, View

_SHOWN = 300


def listing(view: View) -> dict[str, Any]:
    state = view.query.get("state") or ""
    endpoint = view.query.get("endpoint") or None
    store = view.workspace.monitors.alerts
    found = store.list(endpoint=endpoint, state=state if state in STATES else None, limit=_SHOWN)
    rows = [
        {
            **a.to_dict(),
            "endpoint_href": view.url("endpoints", a.endpoint),
            "can_ack": view.can_act and a.state == "open",
        }
        for a in found
    ]
    return {
        "open": [r for r in rows if r["state"] != "resolved"],
        "past": [r for r in rows if r["state"] == "resolved"],
        "states": STATES,
        "state": state,
        "endpoint": endpoint or "",
        "endpoints": sorted(d.endpoint for d in view.workspace.deployments.current()),
        "limit": _SHOWN,
        "full": len(found) >= _SHOWN,
    }


def acknowledge(view: View, form: Mapping[str, str]) -> tuple[str, str]:
    note = (form.get("note") or "").strip()[:2000]
    alert = view.workspace.monitors.alerts.acknowledge(view.integer("alert"), view.actor, note)
    return view.url("alerts"), f"Alert {alert.id} acknowledged: {alert.endpoint}: {alert.key}."


PAGES = [Page("/alerts", "alerts.html", listing, "Alerts", live=True)]
ACTIONS = [Action("/alerts/{alert}/acknowledge", acknowledge)]
