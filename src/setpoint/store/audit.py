"""The append-only audit log.

Each change to what setpoint knows is recorded in the same transaction as the change
itself, so there is never a change without its event nor an event without its change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from setpoint.store.schema import audit_events


@dataclass(frozen=True)
class AuditEvent:
    id: int
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity: str
    before: Any
    after: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "entity_type": self.entity_type,
            "entity": self.entity,
            "before": self.before,
            "after": self.after,
        }


def now() -> datetime:
    return datetime.now(UTC)


def record(
    conn: Connection,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity: str,
    before: Any = None,
    after: Any = None,
) -> None:
    conn.execute(
        audit_events.insert().values(
            at=now(),
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity=entity,
            before=before,
            after=after,
        )
    )


def events(
    conn: Connection,
    *,
    entity_type: str | None = None,
    entity: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    before_id: int | None = None,
    limit: int | None = 100,
) -> list[AuditEvent]:
    """Newest first; ``action`` ending in ``.`` matches every action it begins (``rollout.``),
    ``actor`` matches the start of the actor's name (``key:ab12`` finds ``key:ab12 (note)``),
    ``before_id`` pages back (events older than that one)."""
    query = sa.select(audit_events).order_by(audit_events.c.id.desc())
    if actor:
        query = query.where(audit_events.c.actor.startswith(actor, autoescape=True))
    if before_id is not None:
        query = query.where(audit_events.c.id < before_id)
    if entity_type:
        query = query.where(audit_events.c.entity_type == entity_type)
    if entity:
        query = query.where(audit_events.c.entity == entity)
    if action and action.endswith("."):
        query = query.where(audit_events.c.action.startswith(action, autoescape=True))
    elif action:
        query = query.where(audit_events.c.action == action)
    if limit:
        query = query.limit(limit)
    return [
        AuditEvent(
            id=row.id,
            at=as_utc(row.at),
            actor=row.actor,
            action=row.action,
            entity_type=row.entity_type,
            entity=row.entity,
            before=row.before,
            after=row.after,
        )
        for row in conn.execute(query)
    ]


def as_utc(value: datetime) -> datetime:
    # SQLite hands timestamps back naive; they were written in UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)
