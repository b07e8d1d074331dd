"""Endpoints and their deployment revisions in the metadata store.

``deploy`` creates an endpoint or records a new revision of its configuration, in
one transaction with its audit event; a deploy that changes nothing records
nothing. Servers read the newest revision and follow it while they run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from setpoint._display import day, number, short_repr
from setpoint._names import check_name
from setpoint.errors import NotFoundError, UsageError
from setpoint.models.registry import ModelRegistry
from setpoint.serving.config import DeploymentConfig
from setpoint.store import audit
from setpoint.store.db import Database, ensure_named
from setpoint.store.schema import deployment_revisions, endpoints


@dataclass(frozen=True)
class Deployment:
    endpoint: str
    revision: int
    config: DeploymentConfig
    note: str
    created_by: str
    created_at: datetime

    def __repr__(self) -> str:
        config = self.config
        facts = [
            f"revision {self.revision}",
            config.model,
            f"{config.mode} {config.challenger} ({number(config.share, 2)})"
            if config.challenger
            else "",
            day(self.created_at),
        ]
        return short_repr("Deployment", self.endpoint, facts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "revision": self.revision,
            "config": self.config.to_dict(),
            "note": self.note,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }


class DeploymentStore:
    def __init__(self, db: Database, registry: ModelRegistry, *, actor: str) -> None:
        self._db = db
        self._registry = registry
        self._actor = actor

    def deploy(self, endpoint: str, *, note: str = "", **changes: Any) -> Deployment:
        """Create ``endpoint`` (``model`` is then required) or change its configuration.

        ``changes`` are DeploymentConfig fields, nested ones given flat (see
        :meth:`DeploymentConfig.updated`); fields not given keep their values.
        """
        check_name("endpoint", endpoint)
        with self._db.read() as conn:
            current = self._latest(conn, endpoint)
        if current is None:
            if not changes.get("model"):
                raise UsageError(
                    f"endpoint {endpoint!r} does not exist yet; create it with: "
                    f"setpoint deploy {endpoint} --model NAME@champion"
                )
            config = DeploymentConfig(model=changes["model"]).updated(**changes)
        else:
            config = current.config.updated(**changes)
        config = config.canonical()
        config.check()
        self._check_models(config)

        with self._db.write() as conn:
            endpoint_id = ensure_named(self._db, conn, endpoints, endpoint, created_at=audit.now())
            latest = self._latest(conn, endpoint)  # again, under the write lock
            if latest is not None and latest.config == config:
                return latest
            revision = 1 if latest is None else latest.revision + 1
            conn.execute(
                deployment_revisions.insert().values(
                    endpoint_id=endpoint_id,
                    revision=revision,
                    config=config.to_dict(),
                    note=note,
                    created_by=self._actor,
                    created_at=audit.now(),
                )
            )
            audit.record(
                conn,
                actor=self._actor,
                action="deployment.create" if latest is None else "deployment.update",
                entity_type="endpoint",
                entity=endpoint,
                before=None
                if latest is None
                else {"revision": latest.revision, **latest.config.to_dict()},
                after={"revision": revision, **config.to_dict(), "note": note},
            )
            found = self._latest(conn, endpoint)
            assert found is not None
            return found

    def get(self, endpoint: str) -> Deployment:
        with self._db.read() as conn:
            found = self._latest(conn, check_name("endpoint", endpoint))
            if found is None:
                raise NotFoundError(self._missing(conn, endpoint))
            return found

    def current(self) -> list[Deployment]:
        """The current deployment of every endpoint, by name."""
        with self._db.read() as conn:
            newest = (
                sa.select(sa.func.max(deployment_revisions.c.id))
                .group_by(deployment_revisions.c.endpoint_id)
                .scalar_subquery()
            )
            rows = conn.execute(
                self._select()
                .where(deployment_revisions.c.id.in_(newest))
                .order_by(endpoints.c.name)
            )
            return [_deployment(r) for r in rows]

    def history(self, endpoint: str) -> list[Deployment]:
        """Every revision of ``endpoint``, oldest first."""
        with self._db.read() as conn:
            rows = conn.execute(
                self._select()
                .where(endpoints.c.name == check_name("endpoint", endpoint))
                .order_by(deployment_revisions.c.revision)
            ).all()
            if not rows:
                raise NotFoundError(self._missing(conn, endpoint))
            return [_deployment(r) for r in rows]

    # -- helpers -----------------------------------------------------------------------

    def _check_models(self, config: DeploymentConfig) -> None:
        refs = [("--model", config.model), ("--challenger", config.challenger)]
        if config.fallback is not None:
            refs.append(("--fallback-model", config.fallback.model))
        for label, ref in refs:
            if ref is None:
                continue
            try:
                self._registry.get(ref)
            except NotFoundError as error:
                raise NotFoundError(f"{label} {ref}: {error.message}") from None

    @staticmethod
    def _select() -> sa.Select[Any]:
        return sa.select(deployment_revisions, endpoints.c.name).join(endpoints)

    def _latest(self, conn: Connection, endpoint: str) -> Deployment | None:
        row = conn.execute(
            self._select()
            .where(endpoints.c.name == endpoint)
            .order_by(deployment_revisions.c.revision.desc())
            .limit(1)
        ).first()
        return None if row is None else _deployment(row)

    @staticmethod
    def _missing(conn: Connection, endpoint: str) -> str:
        known = conn.execute(sa.select(endpoints.c.name).order_by(endpoints.c.name)).scalars().all()
        hint = f"known endpoints: {', '.join(known)}" if known else "there are none yet"
        return (
            f"no endpoint {endpoint!r} ({hint}); create one with: "
            f"setpoint deploy {endpoint} --model NAME@champion"
        )


def _deployment(row: Any) -> Deployment:
    return Deployment(
        endpoint=row.name,
        revision=int(row.revision),
        config=DeploymentConfig.from_dict(row.config),
        note=row.note,
        created_by=row.created_by,
        created_at=audit.as_utc(row.created_at),
    )
