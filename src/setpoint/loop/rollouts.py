"""Rollouts: one candidate's way from a trigger to promoted, rejected or rolled back.

::

    waiting ─▶ retraining ─▶ shadow | canary ─▶ awaiting_approval ─▶ promoted
       (labels)    (job)      (live comparison)     (a person)
                     └────────────┴──────────────────────┴─▶ rejected | rolled_back | failed

A rollout is keyed per endpoint by what fired it, so a trigger seen twice (two loops,
a rerun) is one rollout. Every transition is written with its audit event, in one
transaction, and carries its evidence (the gate report, the live comparison).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from setpoint.errors import ConflictError, NotFoundError, UsageError
from setpoint.store import audit
from setpoint.store.db import Database
from setpoint.store.schema import rollouts

ACTIVE = ("waiting", "retraining", "shadow", "canary", "awaiting_approval")
FINAL = ("promoted", "rejected", "rolled_back", "failed")
STATES = ACTIVE + FINAL


@dataclass(frozen=True)
class Rollout:
    id: int
    endpoint: str
    key: str
    state: str
    trigger: dict[str, Any]
    data_since: datetime | None
    data_until: datetime | None
    job_id: int | None
    champion: str | None
    candidate: str | None
    dataset: str | None
    mode: str | None
    gates: dict[str, Any] | None
    live: dict[str, Any] | None
    contract_proposal: dict[str, Any] | None
    reason: str | None
    live_since: datetime | None
    created_at: datetime
    updated_at: datetime
    decided_by: str | None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def to_dict(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "key": self.key,
            "state": self.state,
            "trigger": self.trigger,
            "data_since": when(self.data_since),
            "data_until": when(self.data_until),
            "job_id": self.job_id,
            "champion": self.champion,
            "candidate": self.candidate,
            "dataset": self.dataset,
            "mode": self.mode,
            "gates": self.gates,
            "live": self.live,
            "contract_proposal": self.contract_proposal,
            "reason": self.reason,
            "live_since": when(self.live_since),
            "created_at": when(self.created_at),
            "updated_at": when(self.updated_at),
            "decided_by": self.decided_by,
        }


class RolloutStore:
    def __init__(self, db: Database, *, actor: str) -> None:
        self._db = db
        self.actor = actor

    def open(
        self,
        endpoint: str,
        key: str,
        *,
        trigger: dict[str, Any],
        champion: str,
        mode: str | None,
        data_since: datetime | None,
        now: datetime | None = None,
    ) -> tuple[Rollout, bool]:
        """The rollout under ``key`` (and False), or a new one waiting for its data (True)."""
        at = now or audit.now()
        with self._db.write() as conn:
            found = conn.execute(
                sa.select(rollouts).where(rollouts.c.endpoint == endpoint, rollouts.c.key == key)
            ).first()
            if found is not None:
                return _rollout(found), False
            rollout_id = conn.execute(
                rollouts.insert()
                .values(
                    endpoint=endpoint,
                    key=key,
                    state="waiting",
                    trigger=trigger,
                    champion=champion,
                    mode=mode,
                    data_since=data_since,
                    created_at=at,
                    updated_at=at,
                )
                .returning(rollouts.c.id)
            ).scalar_one()
            audit.record(
                conn,
                actor=self.actor,
                action="rollout.open",
                entity_type="rollout",
                entity=str(rollout_id),
                after={"endpoint": endpoint, "trigger": trigger, "champion": champion},
            )
            return self._get(conn, rollout_id), True

    def move(
        self,
        rollout_id: int,
        state: str,
        *,
        expect: tuple[str, ...] | None = None,
        now: datetime | None = None,
        decided_by: str | None = None,
        **values: Any,
    ) -> Rollout:
        """Set ``state`` (and ``values``), audited with the evidence given; with
        ``expect``, only from one of those states (else ConflictError)."""
        if state not in STATES:
            raise UsageError(f"unknown rollout state {state!r}")
        at = now or audit.now()
        with self._db.write() as conn:
            current = self._get(conn, rollout_id, lock=True)
            if expect is not None and current.state not in expect:
                raise ConflictError(
                    f"rollout {rollout_id} is {current.state}, not {' or '.join(expect)}"
                )
            conn.execute(
                rollouts.update()
                .where(rollouts.c.id == rollout_id)
                .values(state=state, updated_at=at, decided_by=decided_by, **values)
            )
            if state != current.state or "reason" in values:
                evidence = {
                    k: v
                    for k, v in values.items()
                    if k in ("reason", "candidate", "gates", "live", "dataset", "job_id")
                }
                audit.record(
                    conn,
                    actor=decided_by or self.actor,
                    action=f"rollout.{state}",
                    entity_type="rollout",
                    entity=str(rollout_id),
                    before={"state": current.state},
                    after={"state": state, "endpoint": current.endpoint, **evidence},
                )
            return self._get(conn, rollout_id)

    def update(self, rollout_id: int, **values: Any) -> Rollout:
        """Record evidence without a change of state (the latest live comparison)."""
        with self._db.write() as conn:
            conn.execute(
                rollouts.update()
                .where(rollouts.c.id == rollout_id)
                .values(updated_at=audit.now(), **values)
            )
            return self._get(conn, rollout_id)

    def get(self, rollout_id: int) -> Rollout:
        with self._db.read() as conn:
            return self._get(conn, rollout_id)

    def list(
        self, *, endpoint: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[Rollout]:
        if state is not None and state not in STATES:
            raise UsageError(f"unknown rollout state {state!r}; one of {', '.join(STATES)}")
        query = sa.select(rollouts).order_by(rollouts.c.id.desc()).limit(limit)
        if endpoint is not None:
            query = query.where(rollouts.c.endpoint == endpoint)
        if state is not None:
            query = query.where(rollouts.c.state == state)
        with self._db.read() as conn:
            return [_rollout(r) for r in conn.execute(query)]

    def active(self, endpoint: str) -> Rollout | None:
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(rollouts)
                .where(rollouts.c.endpoint == endpoint, rollouts.c.state.in_(ACTIVE))
                .order_by(rollouts.c.id.desc())
                .limit(1)
            ).first()
        return None if row is None else _rollout(row)

    def find(self, endpoint: str, key: str) -> Rollout | None:
        """The rollout a firing under ``key`` started, if any."""
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(rollouts).where(rollouts.c.endpoint == endpoint, rollouts.c.key == key)
            ).first()
        return None if row is None else _rollout(row)

    def latest(self, endpoint: str) -> Rollout | None:
        found = self.list(endpoint=endpoint, limit=1)
        return found[0] if found else None

    def _get(self, conn: Connection, rollout_id: int, *, lock: bool = False) -> Rollout:
        query = sa.select(rollouts).where(rollouts.c.id == rollout_id)
        if lock and not self._db.is_sqlite:
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise NotFoundError(
                f"there is no rollout {rollout_id}; list them with: setpoint rollouts list"
            )
        return _rollout(row)


def _rollout(row: Row[Any]) -> Rollout:
    def when(value: datetime | None) -> datetime | None:
        return None if value is None else audit.as_utc(value)

    return Rollout(
        id=row.id,
        endpoint=row.endpoint,
        key=row.key,
        state=row.state,
        trigger=dict(row.trigger),
        data_since=when(row.data_since),
        data_until=when(row.data_until),
        job_id=row.job_id,
        champion=row.champion,
        candidate=row.candidate,
        dataset=row.dataset,
        mode=row.mode,
        gates=row.gates,
        live=row.live,
        contract_proposal=row.contract_proposal,
        reason=row.reason,
        live_since=when(row.live_since),
        created_at=audit.as_utc(row.created_at),
        updated_at=audit.as_utc(row.updated_at),
        decided_by=row.decided_by,
    )
