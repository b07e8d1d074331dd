"""The audit log: every change, who made it and when, filtered by actor, object and action."""

from __future__ import annotations

from typing import Any

from setpoint.ui.pages._page import Page, View

PAGE_SIZE = 100


def listing(view: View) -> dict[str, Any]:
    q = view.query
    filters = {
        "actor": q.get("actor", "").strip(),
        "entity_type": q.get("type", "").strip(),
        "entity": q.get("entity", "").strip(),
        "action": q.get("action", "").strip(),
    }
    before = q.get("before", "")
    events = view.workspace.audit(
        **{k: v or None for k, v in filters.items()},
        before_id=int(before) if before.isdigit() else None,
        limit=PAGE_SIZE + 1,
    )
    more = len(events) > PAGE_SIZE
    events = events[:PAGE_SIZE]
    older = (
        view.url(
            "audit",
            actor=filters["actor"],
            type=filters["entity_type"],
            entity=filters["entity"],
            action=filters["action"],
            before=events[-1].id,
        )
        if more
        else None
    )
    return {
        "events": [e.to_dict() for e in events],
        "filters": filters,
        "filtered": any(filters.values()),
        "older": older,
    }


PAGES = [Page("/audit", "audit.html", listing, "Audit")]
