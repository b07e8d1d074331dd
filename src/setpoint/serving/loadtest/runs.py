"""Load tests as records (the ``load_tests`` table): which endpoint and model version
sustained what, with the steps that showed it, so capacity can be compared from
version to version (``setpoint loadtest --history ENDPOINT``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from setpoint._display import short_repr
from setpoint.errors import NotFoundError
from setpoint.serving.loadtest.schedule import StepResult
from setpoint.store import audit
from setpoint.store.db import Database
from setpoint.store.schema import load_tests


@dataclass(frozen=True)
class LoadTest:
    id: int
    endpoint: str
    model: str
    version: int
    url: str
    settings: dict[str, Any]
    steps: list[StepResult]
    sustainable_rps: float | None
    plan: dict[str, Any]
    created_by: str
    started_at: datetime
    finished_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"

    def __repr__(self) -> str:
        held = "none" if self.sustainable_rps is None else f"{self.sustainable_rps:g} req/s"
        facts = [self.endpoint, self.ref, f"sustained {held}", f"{self.started_at:%Y-%m-%d}"]
        return short_repr("LoadTest", str(self.id), facts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "model": self.ref,
            "url": self.url,
            "settings": self.settings,
            "steps": [s.to_dict() for s in self.steps],
            "sustainable_rps": self.sustainable_rps,
            "plan": self.plan,
            "created_by": self.created_by,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
        }


class LoadTests:
    """The ``load_tests`` table: record a finished run, list them."""

    def __init__(self, db: Database, *, actor: str) -> None:
        self._db = db
        self._actor = actor

    def record(
        self,
        *,
        endpoint: str,
        model: str,
        version: int,
        url: str,
        settings: dict[str, Any],
        steps: Sequence[StepResult],
        sustainable_rps: float | None,
        plan: dict[str, Any],
        started_at: datetime,
        finished_at: datetime,
    ) -> LoadTest:
        with self._db.write() as conn:
            run_id = int(
                conn.execute(
                    load_tests.insert()
                    .values(
                        endpoint=endpoint,
                        model=model,
                        version=version,
                        url=url,
                        settings=settings,
                        steps=[s.to_dict() for s in steps],
                        sustainable_rps=sustainable_rps,
                        plan=plan,
                        created_by=self._actor,
                        started_at=started_at,
                        finished_at=finished_at,
                    )
                    .returning(load_tests.c.id)
                ).scalar_one()
            )
            audit.record(
                conn,
                actor=self._actor,
                action="loadtest.record",
                entity_type="endpoint",
                entity=endpoint,
                after={
                    "load_test": run_id,
                    "model": f"{model}@{version}",
                    "sustainable_rps": sustainable_rps,
                },
            )
            return self._get(conn, run_id)

    def get(self, run_id: int) -> LoadTest:
        with self._db.read() as conn:
            return self._get(conn, run_id)

    def list(self, endpoint: str | None = None, *, limit: int | None = 50) -> list[LoadTest]:
        """Load tests, newest first."""
        query = sa.select(load_tests).order_by(load_tests.c.id.desc())
        if endpoint is not None:
            query = query.where(load_tests.c.endpoint == endpoint)
        if limit:
            query = query.limit(limit)
        with self._db.read() as conn:
            return [_load_test(row) for row in conn.execute(query)]

    @staticmethod
    def _get(conn: sa.Connection, run_id: int) -> LoadTest:
        row = conn.execute(sa.select(load_tests).where(load_tests.c.id == run_id)).first()
        if row is None:
            raise NotFoundError(f"no load test {run_id}; `setpoint loadtest --history` lists them")
        return _load_test(row)


def _load_test(row: Any) -> LoadTest:
    return LoadTest(
        id=row.id,
        endpoint=row.endpoint,
        model=row.model,
        version=row.version,
        url=row.url,
        settings=dict(row.settings),
        steps=[StepResult.from_dict(s) for s in row.steps],
        sustainable_rps=row.sustainable_rps,
        plan=dict(row.plan),
        created_by=row.created_by,
        started_at=audit.as_utc(row.started_at),
        finished_at=audit.as_utc(row.finished_at),
    )
