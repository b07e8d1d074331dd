"""Alerts: one per condition while it lasts, and their outbox of notifications.

A monitor raises an alert each window a condition holds (``drift:feature:income``).
Raising a key whose alert is not resolved updates that alert (count, last seen,
evidence) instead of adding one, and asks for a notification only when the cooldown
since the last one has passed, so a condition that lasts a day notifies a few times,
not once per window. Acknowledging an alert silences those reminders; a rise in
severity notifies at once and reopens it. ``resolve`` closes it when the condition
clears, and the next raise of the key starts a new alert.

Notifications go through an outbox (``alert_deliveries``): the rows are written in the
same transaction as the alert change, so a notification is never lost between the
two. Sending them, claiming each for an attempt and recording its outcome, is
:mod:`setpoint.monitoring.webhooks`' job.

Two clocks, kept apart. ``first_seen`` and ``last_seen`` are the *data's* time (``seen``:
the end of the window that showed the condition), so an alert about last March says
March even when a backfill computes it today. ``noticed_at`` (when the alert opened)
and the cooldown run on the caller's clock (``now``: the wall clock unless a test or
the demo sets one). Both are stored in UTC.
"""

from __future__ import annotations

import builtins
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Row

from setpoint._names import check_name
from setpoint.errors import ConflictError, NotFoundError, UsageError
from setpoint.store import audit
from setpoint.store.db import Database
from setpoint.store.schema import alert_deliveries, alerts

log = logging.getLogger(__name__)

SEVERITIES: tuple[str, ...] = ("warning", "critical")  # in rising order
STATES: tuple[str, ...] = ("open", "acknowledged", "resolved")
DEFAULT_COOLDOWN = timedelta(hours=1)


@dataclass(frozen=True)
class Alert:
    id: int
    endpoint: str
    key: str
    severity: str
    message: str
    evidence: Any
    state: str
    first_seen: datetime  # the data's time (see the module)
    last_seen: datetime
    count: int
    noticed_at: datetime | None  # the clock's time when it opened
    notified_at: datetime | None
    acked_by: str | None
    acked_at: datetime | None
    note: str | None
    resolved_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """The alert as webhooks and ``--json`` output send it."""
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "key": self.key,
            "severity": self.severity,
            "message": self.message,
            "evidence": self.evidence,
            "state": self.state,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "noticed_at": _iso(self.noticed_at),
            "count": self.count,
            "acked_by": self.acked_by,
            "acked_at": _iso(self.acked_at),
            "note": self.note,
            "resolved_at": _iso(self.resolved_at),
        }

    def summary(self) -> str:
        """One line a person reads in a chat channel."""
        seen = "once" if self.count == 1 else f"{self.count} times"
        return (
            f"[{self.severity.upper()}] {self.endpoint}: {self.key}: {self.message} "
            f"(alert {self.id}, {self.state}, seen {seen} since "
            f"{self.first_seen:%Y-%m-%d %H:%M} UTC)"
        )


@dataclass(frozen=True)
class Delivery:
    id: int
    alert_id: int
    url: str
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None
    created_at: datetime

    @property
    def status(self) -> str:
        """``delivered``, ``pending`` (not tried yet), ``retrying``, or ``failed`` (given up)."""
        if self.delivered_at is not None:
            return "delivered"
        if self.next_attempt_at is None:
            return "failed"
        return "retrying" if self.attempts and self.last_error else "pending"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "alert_id": self.alert_id,
            "url": self.url,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": _iso(self.next_attempt_at),
            "delivered_at": _iso(self.delivered_at),
            "last_error": self.last_error,
            "created_at": self.created_at.isoformat(),
        }


class AlertStore:
    """Alerts and their outbox in the metadata store; each change is one transaction."""

    def __init__(self, db: Database, *, actor: str = "setpoint") -> None:
        self._db = db
        self._actor = actor

    @property
    def db(self) -> Database:
        """The metadata store, for :class:`~setpoint.monitoring.webhooks.Outbox`."""
        return self._db

    def raise_alert(
        self,
        endpoint: str,
        key: str,
        severity: str,
        message: str,
        evidence: Any = None,
        *,
        now: datetime | None = None,
        seen: datetime | None = None,
        cooldown: timedelta = DEFAULT_COOLDOWN,
        notify: Sequence[str] = (),
    ) -> Alert | None:
        """Record that ``key`` holds on ``endpoint`` in data of time ``seen`` (default:
        ``now``); the alert when a notification is due.

        A notification is due for a new alert, when ``cooldown`` has passed since the
        alert last notified (unless it is acknowledged), and when its severity rises.
        Then one delivery per URL in ``notify`` is queued in the same transaction; each
        sends the alert as it is when the delivery goes out.
        """
        check_name("endpoint", endpoint)
        if not key or len(key) > 300:
            raise UsageError(f"alert key {key!r}: give 1 to 300 characters")
        if severity not in SEVERITIES:
            raise UsageError(f"alert severity {severity!r}: use one of {', '.join(SEVERITIES)}")
        at = utc(now)
        seen_at = at if seen is None else utc(seen)
        evidence = _json_document({} if evidence is None else evidence)
        with self._db.write() as conn:
            row = self._unresolved(conn, endpoint, key)
            if row is None:
                alert_id = self._insert(
                    conn, endpoint, key, severity, message, evidence, at, seen_at
                )
                if alert_id is not None:
                    self._enqueue(conn, alert_id, notify, at)
                    audit.record(
                        conn,
                        actor=self._actor,
                        action="alert.open",
                        entity_type="alert",
                        entity=f"{endpoint}:{key}",
                        after={"id": alert_id, "severity": severity, "message": message},
                    )
                    return self._get(conn, alert_id)
                # A concurrent writer created it between our read and insert.
                row = self._unresolved(conn, endpoint, key)
                assert row is not None
            escalated = SEVERITIES.index(severity) > SEVERITIES.index(row.severity)
            if row.state == "acknowledged":
                due = escalated
            else:
                notified = _maybe_utc(row.notified_at)
                due = escalated or notified is None or at - notified >= cooldown
            values: dict[str, Any] = {
                "severity": severity,
                "message": message,
                "evidence": evidence,
                # Late labels can show a condition held earlier than first seen.
                "first_seen": min(audit.as_utc(row.first_seen), seen_at),
                "last_seen": max(audit.as_utc(row.last_seen), seen_at),
                "count": alerts.c.count + 1,
            }
            if due:
                values["notified_at"] = at
            if escalated and row.state == "acknowledged":
                values.update(state="open", acked_by=None, acked_at=None, note=None)
            conn.execute(alerts.update().where(alerts.c.id == row.id).values(**values))
            if escalated:
                audit.record(
                    conn,
                    actor=self._actor,
                    action="alert.escalate",
                    entity_type="alert",
                    entity=f"{endpoint}:{key}",
                    before={"id": row.id, "severity": row.severity, "state": row.state},
                    after={"id": row.id, "severity": severity, "state": "open"},
                )
            if not due:
                return None
            self._enqueue(conn, row.id, notify, at)
            return self._get(conn, row.id)

    def resolve(self, endpoint: str, key: str, *, now: datetime | None = None) -> Alert | None:
        """Close the alert of ``key`` because its condition cleared; None if none was open."""
        at = utc(now)
        with self._db.write() as conn:
            row = self._unresolved(conn, check_name("endpoint", endpoint), key)
            if row is None:
                return None
            conn.execute(
                alerts.update()
                .where(alerts.c.id == row.id)
                .values(state="resolved", resolved_at=at)
            )
            audit.record(
                conn,
                actor=self._actor,
                action="alert.resolve",
                entity_type="alert",
                entity=f"{endpoint}:{key}",
                before={"id": row.id, "state": row.state, "count": row._mapping["count"]},
                after={"id": row.id, "state": "resolved"},
            )
            return self._get(conn, row.id)

    def acknowledge(
        self, alert_id: int, actor: str, note: str = "", *, now: datetime | None = None
    ) -> Alert:
        """Someone is on it: no more cooldown reminders until the severity rises."""
        at = utc(now)
        with self._db.write() as conn:
            before = self._get(conn, alert_id, lock=True)
            if before.state == "resolved":
                raise ConflictError(
                    f"alert {alert_id} ({before.endpoint}: {before.key}) is already resolved; "
                    "there is nothing to acknowledge"
                )
            conn.execute(
                alerts.update()
                .where(alerts.c.id == alert_id)
                .values(state="acknowledged", acked_by=actor, acked_at=at, note=note)
            )
            audit.record(
                conn,
                actor=actor,
                action="alert.acknowledge",
                entity_type="alert",
                entity=f"{before.endpoint}:{before.key}",
                before={"id": alert_id, "state": before.state},
                after={"id": alert_id, "state": "acknowledged", "note": note},
            )
            return self._get(conn, alert_id)

    def get(self, alert_id: int) -> Alert:
        with self._db.read() as conn:
            return self._get(conn, alert_id)

    def unresolved_keys(self, endpoint: str) -> set[str]:
        """The keys of ``endpoint``'s alerts that are open or acknowledged."""
        query = sa.select(alerts.c.key).where(
            alerts.c.endpoint == endpoint, alerts.c.state != "resolved"
        )
        with self._db.read() as conn:
            return set(conn.execute(query).scalars())

    def list(
        self, endpoint: str | None = None, state: str | None = None, limit: int | None = 100
    ) -> builtins.list[Alert]:
        """Most recently seen first."""
        if state is not None and state not in STATES:
            raise UsageError(f"alert state {state!r}: use one of {', '.join(STATES)}")
        query = sa.select(alerts).order_by(alerts.c.last_seen.desc(), alerts.c.id.desc())
        if endpoint is not None:
            query = query.where(alerts.c.endpoint == endpoint)
        if state is not None:
            query = query.where(alerts.c.state == state)
        if limit:
            query = query.limit(limit)
        with self._db.read() as conn:
            return [alert_from_row(row) for row in conn.execute(query)]

    def list_deliveries(
        self, alert_id: int | None = None, *, undelivered: bool = False, limit: int | None = 100
    ) -> builtins.list[Delivery]:
        """Newest first; ``undelivered`` keeps those pending, retrying or given up."""
        query = sa.select(alert_deliveries).order_by(alert_deliveries.c.id.desc())
        if alert_id is not None:
            query = query.where(alert_deliveries.c.alert_id == alert_id)
        if undelivered:
            query = query.where(alert_deliveries.c.delivered_at.is_(None))
        if limit:
            query = query.limit(limit)
        with self._db.read() as conn:
            return [delivery_from_row(row) for row in conn.execute(query)]

    # -- helpers -----------------------------------------------------------------------

    def _unresolved(self, conn: Connection, endpoint: str, key: str) -> Row[Any] | None:
        query = sa.select(alerts).where(
            alerts.c.endpoint == endpoint, alerts.c.key == key, alerts.c.state != "resolved"
        )
        if not self._db.is_sqlite:
            query = query.with_for_update()
        return conn.execute(query).first()

    def _insert(
        self,
        conn: Connection,
        endpoint: str,
        key: str,
        severity: str,
        message: str,
        evidence: Any,
        at: datetime,
        seen: datetime,
    ) -> int | None:
        """The new alert's id, or None when an unresolved one exists after all."""
        insert = sqlite_insert if self._db.is_sqlite else postgresql_insert
        statement = (
            insert(alerts)
            .values(
                endpoint=endpoint,
                key=key,
                severity=severity,
                message=message,
                evidence=evidence,
                state="open",
                first_seen=seen,
                last_seen=seen,
                noticed_at=at,
                count=1,
                notified_at=at,
            )
            .on_conflict_do_nothing(
                # The index's own predicate, as literal SQL: with a bound parameter,
                # PostgreSQL cannot match the partial index once psycopg prepares the
                # statement (from its fifth execution on a connection).
                index_elements=["endpoint", "key"],
                index_where=sa.text("state != 'resolved'"),
            )
            .returning(alerts.c.id)
        )
        found = conn.execute(statement).scalar()
        return None if found is None else int(found)

    def _enqueue(self, conn: Connection, alert_id: int, urls: Sequence[str], at: datetime) -> None:
        # One row per notification, never merged into a waiting one: that one may be in
        # flight with the older state already in its body.
        rows = [
            {
                "alert_id": alert_id,
                "url": url,
                "attempts": 0,
                "next_attempt_at": at,
                "created_at": at,
            }
            for url in dict.fromkeys(urls)
        ]
        if rows:
            conn.execute(alert_deliveries.insert(), rows)

    def _get(self, conn: Connection, alert_id: int, *, lock: bool = False) -> Alert:
        query = sa.select(alerts).where(alerts.c.id == alert_id)
        if lock and not self._db.is_sqlite:
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise NotFoundError(
                f"there is no alert {alert_id}; list the alerts to find the id you want",
                details={"alert_id": alert_id},
            )
        return alert_from_row(row)


def alert_from_row(row: Row[Any]) -> Alert:
    """An ``alerts`` row as an :class:`Alert`, its times in UTC."""
    m = row._mapping
    return Alert(
        id=m["id"],
        endpoint=m["endpoint"],
        key=m["key"],
        severity=m["severity"],
        message=m["message"],
        evidence=m["evidence"],
        state=m["state"],
        first_seen=audit.as_utc(m["first_seen"]),
        last_seen=audit.as_utc(m["last_seen"]),
        count=m["count"],
        noticed_at=_maybe_utc(m["noticed_at"]),
        notified_at=_maybe_utc(m["notified_at"]),
        acked_by=m["acked_by"],
        acked_at=_maybe_utc(m["acked_at"]),
        note=m["note"],
        resolved_at=_maybe_utc(m["resolved_at"]),
    )


def delivery_from_row(row: Row[Any]) -> Delivery:
    """An ``alert_deliveries`` row as a :class:`Delivery`, its times in UTC."""
    m = row._mapping
    return Delivery(
        id=m["id"],
        alert_id=m["alert_id"],
        url=m["url"],
        attempts=m["attempts"],
        next_attempt_at=_maybe_utc(m["next_attempt_at"]),
        delivered_at=_maybe_utc(m["delivered_at"]),
        last_error=m["last_error"],
        created_at=audit.as_utc(m["created_at"]),
    )


def _json_document(value: Any) -> Any:
    """``value`` as plain JSON that both backends store alike.

    Statistics arrive as numpy scalars and may be NaN or infinite, which PostgreSQL's
    JSON type refuses (SQLite would keep them): those become None.
    """
    if isinstance(value, dict):
        return {str(k): _json_document(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_document(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def utc(now: datetime | None) -> datetime:
    """``now`` in UTC (a naive time taken as UTC), or the current time if None."""
    # SQLite keeps timestamps without their offset: store every one in UTC.
    if now is None:
        return audit.now()
    return now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)


def _maybe_utc(value: datetime | None) -> datetime | None:
    return None if value is None else audit.as_utc(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
