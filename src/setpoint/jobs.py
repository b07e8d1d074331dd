"""Persistent jobs: queued in the metadata store, each taken by exactly one worker.

A job is a kind (``retrain``, ``monitor``...), arguments, and a key: enqueueing the
same kind and key again returns the job already there, so a policy that fires twice
makes one job. A worker *claims* a due job under a lease (one transaction: on
PostgreSQL ``FOR UPDATE SKIP LOCKED``, on SQLite the write lock), renews the lease
while it works, and reports the outcome. A worker that dies leaves its job running
with a lease that runs out; the next claim takes it again as a new attempt. Every
report names the attempt it belongs to, so a worker that was presumed dead and comes
back cannot finish, fail or log over the attempt that replaced it (it gets
``LeaseLostError`` and should stop). A failed attempt is retried after a backoff that
doubles, up to ``max_attempts``; then the job is failed with its error.

Jobs must be idempotent in what they leave behind (a retried retraining must not
register a second model version): the job's ``key`` is the token they use for that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from setpoint.errors import ConflictError, NotFoundError, UsageError
from setpoint.store import audit
from setpoint.store.db import Database
from setpoint.store.schema import jobs

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
DEFAULT_LEASE = timedelta(minutes=5)
BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=1)


class LeaseLostError(ConflictError):
    """The attempt this worker runs was taken over (its lease ran out) or cancelled."""


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    key: str
    args: dict[str, Any]
    state: str
    attempts: int
    max_attempts: int
    run_after: datetime
    lease_until: datetime | None
    worker: str | None
    log: list[dict[str, Any]]
    result: Any
    error: str | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "id": self.id,
            "kind": self.kind,
            "key": self.key,
            "args": self.args,
            "state": self.state,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "run_after": when(self.run_after),
            "lease_until": when(self.lease_until),
            "worker": self.worker,
            "log": self.log,
            "result": self.result,
            "error": self.error,
            "created_by": self.created_by,
            "created_at": when(self.created_at),
            "started_at": when(self.started_at),
            "finished_at": when(self.finished_at),
        }


class JobStore:
    def __init__(self, db: Database, *, actor: str = "setpoint") -> None:
        self._db = db
        self._actor = actor

    def enqueue(
        self,
        kind: str,
        args: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
        max_attempts: int = 3,
        run_after: datetime | None = None,
        now: datetime | None = None,
    ) -> Job:
        """Queue a job, or return the one already queued (or run) under ``kind``/``key``.
        Without a key, each call is a new job."""
        if not kind or len(kind) > 100:
            raise UsageError("a job kind is 1 to 100 characters, e.g. retrain")
        if max_attempts < 1:
            raise UsageError(f"max_attempts must be 1 or more, not {max_attempts}")
        at = _utc(now)
        with self._db.write() as conn:
            if key is not None:
                found = conn.execute(
                    sa.select(jobs).where(jobs.c.kind == kind, jobs.c.key == key)
                ).first()
                if found is not None:
                    return _job(found)
            job_id = conn.execute(
                jobs.insert()
                .values(
                    kind=kind,
                    key=key if key is not None else "",
                    args=dict(args or {}),
                    state="queued",
                    attempts=0,
                    max_attempts=max_attempts,
                    run_after=_utc(run_after) if run_after else at,
                    log=[],
                    created_by=self._actor,
                    created_at=at,
                )
                .returning(jobs.c.id)
            ).scalar_one()
            if key is None:  # a keyless job is keyed by its id, unique by construction
                conn.execute(jobs.update().where(jobs.c.id == job_id).values(key=f"#{job_id}"))
            audit.record(
                conn,
                actor=self._actor,
                action="job.enqueue",
                entity_type="job",
                entity=str(job_id),
                after={"kind": kind, "key": key, "args": dict(args or {})},
            )
            return self._get(conn, job_id)

    def claim(
        self,
        worker: str,
        *,
        kinds: tuple[str, ...] | None = None,
        lease: timedelta = DEFAULT_LEASE,
        now: datetime | None = None,
    ) -> Job | None:
        """The next due job for ``worker`` (queued and due, or running with a lease that
        ran out), now running under a new attempt and lease; None when nothing is due."""
        at = _utc(now)
        due = sa.or_(
            sa.and_(jobs.c.state == "queued", jobs.c.run_after <= at),
            sa.and_(jobs.c.state == "running", jobs.c.lease_until < at),
        )
        query = sa.select(jobs.c.id).where(due).order_by(jobs.c.run_after, jobs.c.id).limit(1)
        if kinds is not None:
            query = query.where(jobs.c.kind.in_(list(kinds)))
        if not self._db.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        with self._db.write() as conn:
            job_id = conn.execute(query).scalar_one_or_none()
            if job_id is None:
                return None
            current = self._get(conn, job_id)
            attempt = current.attempts + 1
            note = (
                "started"
                if current.state == "queued"
                else "taken over: the last worker's lease ran out"
            )
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(
                    state="running",
                    attempts=attempt,
                    lease_until=at + lease,
                    worker=worker,
                    started_at=current.started_at or at,
                    log=[*current.log, _line(at, attempt, f"{note} by {worker}")],
                )
            )
            return self._get(conn, job_id)

    def renew(
        self, job: Job, *, lease: timedelta = DEFAULT_LEASE, now: datetime | None = None
    ) -> None:
        """Extend the lease of ``job``'s attempt (call it more often than the lease runs)."""
        at = _utc(now)
        with self._db.write() as conn:
            self._held(conn, job)
            conn.execute(jobs.update().where(jobs.c.id == job.id).values(lease_until=at + lease))

    def log(self, job: Job, message: str, *, now: datetime | None = None) -> None:
        with self._db.write() as conn:
            current = self._held(conn, job)
            line = _line(_utc(now), job.attempts, message)
            conn.execute(jobs.update().where(jobs.c.id == job.id).values(log=[*current.log, line]))

    def succeed(self, job: Job, result: Any = None, *, now: datetime | None = None) -> Job:
        at = _utc(now)
        with self._db.write() as conn:
            current = self._held(conn, job)
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job.id)
                .values(
                    state="succeeded",
                    result=result,
                    lease_until=None,
                    finished_at=at,
                    log=[*current.log, _line(at, job.attempts, "succeeded")],
                )
            )
            return self._get(conn, job.id)

    def fail(self, job: Job, error: str, *, now: datetime | None = None) -> Job:
        """Record a failed attempt: queued again after a backoff, or failed for good
        once ``max_attempts`` attempts have failed."""
        at = _utc(now)
        with self._db.write() as conn:
            current = self._held(conn, job)
            final = current.attempts >= current.max_attempts
            backoff = min(BACKOFF * 2 ** (current.attempts - 1), MAX_BACKOFF)
            message = f"failed: {error}" + ("" if final else f"; retrying in {backoff}")
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job.id)
                .values(
                    state="failed" if final else "queued",
                    error=error,
                    lease_until=None,
                    run_after=at if final else at + backoff,
                    finished_at=at if final else None,
                    log=[*current.log, _line(at, job.attempts, message)],
                )
            )
            return self._get(conn, job.id)

    def cancel(self, job_id: int, *, now: datetime | None = None) -> Job:
        """Stop a job that has not finished; a worker running it loses its lease."""
        at = _utc(now)
        with self._db.write() as conn:
            current = self._get(conn, job_id)
            if current.state in FINISHED:
                raise ConflictError(f"job {job_id} is already {current.state}")
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(
                    state="cancelled",
                    lease_until=None,
                    finished_at=at,
                    log=[*current.log, _line(at, current.attempts, f"cancelled by {self._actor}")],
                )
            )
            audit.record(
                conn, actor=self._actor, action="job.cancel", entity_type="job", entity=str(job_id)
            )
            return self._get(conn, job_id)

    def retry(self, job_id: int, *, now: datetime | None = None) -> Job:
        """Queue a failed or cancelled job again, with a fresh set of attempts."""
        at = _utc(now)
        with self._db.write() as conn:
            current = self._get(conn, job_id)
            if current.state not in ("failed", "cancelled"):
                raise ConflictError(
                    f"job {job_id} is {current.state}; only a failed or cancelled job is retried"
                )
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(
                    state="queued",
                    run_after=at,
                    max_attempts=current.attempts + current.max_attempts,
                    finished_at=None,
                    log=[*current.log, _line(at, current.attempts, f"retried by {self._actor}")],
                )
            )
            audit.record(
                conn, actor=self._actor, action="job.retry", entity_type="job", entity=str(job_id)
            )
            return self._get(conn, job_id)

    def get(self, job_id: int) -> Job:
        with self._db.read() as conn:
            return self._get(conn, job_id)

    def list(
        self, *, state: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[Job]:
        if state is not None and state not in STATES:
            raise UsageError(f"unknown job state {state!r}; one of {', '.join(STATES)}")
        query = sa.select(jobs).order_by(jobs.c.id.desc()).limit(limit)
        if state is not None:
            query = query.where(jobs.c.state == state)
        if kind is not None:
            query = query.where(jobs.c.kind == kind)
        with self._db.read() as conn:
            return [_job(row) for row in conn.execute(query)]

    def _get(self, conn: Connection, job_id: int) -> Job:
        row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NotFoundError(f"there is no job {job_id}; list the jobs to find the id you want")
        return _job(row)

    def hold(self, conn: Connection, job: Job) -> None:
        """Inside another transaction: raise LeaseLostError unless ``job``'s attempt still
        holds it, and keep the job row locked until that transaction ends (so the work it
        commits cannot race a takeover)."""
        self._held(conn, job, lock=True)

    def _held(self, conn: Connection, job: Job, *, lock: bool = False) -> Job:
        """The job as stored, if ``job``'s attempt still holds it; else LeaseLostError."""
        query = sa.select(jobs).where(jobs.c.id == job.id)
        if lock and not self._db.is_sqlite:
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise NotFoundError(f"there is no job {job.id}")
        current = _job(row)
        if current.state != "running" or current.attempts != job.attempts:
            raise LeaseLostError(
                f"job {job.id} attempt {job.attempts} no longer runs (now {current.state}, "
                f"attempt {current.attempts}); stop working on it"
            )
        return current


def _line(at: datetime, attempt: int, message: str) -> dict[str, Any]:
    return {"at": at.isoformat(), "attempt": attempt, "message": message}


def _utc(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _job(row: Row[Any]) -> Job:
    def when(value: datetime | None) -> datetime | None:
        return None if value is None else _utc(value)

    return Job(
        id=row.id,
        kind=row.kind,
        key=row.key,
        args=dict(row.args),
        state=row.state,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        run_after=_utc(row.run_after),
        lease_until=when(row.lease_until),
        worker=row.worker,
        log=list(row.log),
        result=row.result,
        error=row.error,
        created_by=row.created_by,
        created_at=_utc(row.created_at),
        started_at=when(row.started_at),
        finished_at=when(row.finished_at),
    )
