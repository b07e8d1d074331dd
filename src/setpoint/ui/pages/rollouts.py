"""Rollouts: each candidate's way to production, its evidence in sentences, and the
approve and reject buttons for the one waiting for a person."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from setpoint.errors import ConflictError
from setpoint.loop.controller import Decisions
from setpoint.loop.rollouts import ACTIVE, STATES, Rollout, RolloutStore
from setpoint.ui.pages._page import Action, Page, View, reason

# What each state means to someone who has not read the loop's design.
MEANING = {
    "waiting": "waiting for enough labelled traffic to retrain on",
    "retraining": "training a candidate on recent data",
    "shadow": "the candidate answers live traffic unseen; callers get the champion's answers",
    "canary": "the candidate answers a share of live traffic",
    "awaiting_approval": "the candidate passed its checks and waits for a person to approve it",
    "promoted": "the candidate became the champion",
    "rejected": "the candidate was turned down; the champion stays",
    "rolled_back": "the candidate was taken off live traffic after doing worse",
    "failed": "the rollout could not go on (see the reason)",
}


def _store(view: View) -> RolloutStore:
    return RolloutStore(view.workspace.db, actor=view.actor)


def _summary(view: View, rollout: Rollout) -> dict[str, Any]:
    return {
        **rollout.to_dict(),
        "href": view.url("rollouts", rollout.id),
        "meaning": MEANING.get(rollout.state, rollout.state),
        "state_words": rollout.state.replace("_", " "),
        "active": rollout.active,
    }


def listing(view: View) -> dict[str, Any]:
    state = view.query.get("state") or None
    endpoint = view.query.get("endpoint") or None
    found = _store(view).list(
        endpoint=endpoint, state=state if state in STATES else None, limit=200
    )
    rows = [_summary(view, r) for r in found]
    return {
        "active": [r for r in rows if r["active"]],
        "past": [r for r in rows if not r["active"]],
        "states": STATES,
        "state": state or "",
        "endpoint": endpoint or "",
        "endpoints": sorted(d.endpoint for d in view.workspace.deployments.current()),
    }


def detail(view: View) -> dict[str, Any]:
    rollout = _store(view).get(view.integer("rollout"))
    events = view.workspace.audit(entity_type="rollout", entity=str(rollout.id), limit=200)
    gates = rollout.gates or {}
    checks = [
        {
            "name": c.get("name", ""),
            "passed": bool(c.get("passed")),
            "detail": c.get("detail") or c.get("name", ""),
        }
        for c in gates.get("checks") or []
    ]
    return {
        "page_title": f"Rollout {rollout.id}",
        "rollout": _summary(view, rollout),
        "checks": checks,
        "gates_passed": gates.get("passed") if gates else None,
        "gate_reasons": gates.get("reasons") or [],
        "metrics": _metric_rows(gates.get("champion") or {}, gates.get("candidate") or {}),
        "holdout": gates.get("holdout"),
        "live": _live(rollout.live),
        "history": [e.to_dict() for e in reversed(events)],
        "can_decide": view.can_act and rollout.active,
        "can_approve": view.can_act and rollout.state == "awaiting_approval",
        "endpoint_href": view.url("endpoints", rollout.endpoint),
    }


def _metric_rows(champion: Mapping[str, Any], candidate: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name in sorted(set(champion) | set(candidate)):
        a, b = champion.get(name), candidate.get(name)
        delta = b - a if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None
        rows.append({"name": name, "champion": a, "candidate": b, "delta": delta})
    return rows


def _live(live: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The live comparison (shadow or canary) as the page shows it."""
    if not live:
        return None
    champion = live.get("champion") or {}
    candidate = live.get("candidate") or {}
    return {
        "mode": live.get("mode"),
        "pairs": live.get("pairs"),
        "agreement": live.get("agreement"),
        "reasons": live.get("reasons") or [],
        "metrics": _metric_rows(champion.get("metrics") or {}, candidate.get("metrics") or {}),
        "labels": candidate.get("labels"),
        "p99": (champion.get("p99_latency_ms"), candidate.get("p99_latency_ms")),
    }


def approve(view: View, form: Mapping[str, str]) -> tuple[str, str]:
    why = reason(form, "approve it")
    store = _store(view)
    rollout = store.get(view.integer("rollout"))
    if rollout.state != "awaiting_approval":
        raise ConflictError(
            f"rollout {rollout.id} is {rollout.state.replace('_', ' ')}; only a rollout "
            "awaiting approval is approved"
        )
    done = Decisions(view.workspace, store).promote(rollout, actor=view.actor, note=why)
    return view.url("rollouts", rollout.id), f"Approved: {done.candidate} is the champion."


def reject(view: View, form: Mapping[str, str]) -> tuple[str, str]:
    why = reason(form, "reject it")
    store = _store(view)
    rollout = store.get(view.integer("rollout"))
    if rollout.state not in ACTIVE:
        raise ConflictError(f"rollout {rollout.id} is already {rollout.state.replace('_', ' ')}")
    Decisions(view.workspace, store).reject(rollout, why, actor=view.actor)
    return view.url("rollouts", rollout.id), f"Rejected rollout {rollout.id}."


PAGES = [
    Page("/rollouts", "rollouts.html", listing, "Rollouts", live=True),
    Page("/rollouts/{rollout}", "rollout.html", detail, "Rollouts", live=True),
]
ACTIONS = [
    Action("/rollouts/{rollout}/approve", approve),
    Action("/rollouts/{rollout}/reject", reject),
]
