"""Batch scoring runs as records: which model version scored which inputs, and how it
ended.

A run is written when it starts (``running``, with its inputs' sizes and content
hashes or ETags) and again when it ends (``succeeded`` with its row counts and
quarantine batches, or ``failed`` with the error), each in one transaction with its
audit event. A process that dies between the two leaves a ``running`` row; the
``runner`` (host and process id) lets ``scoring show`` say when that process is gone.
Every engine records through :meth:`ScoringRuns.recording`, so a run is the same
record whichever engine scored it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from setpoint._display import count, day, short_repr
from setpoint.errors import NotFoundError
from setpoint.store import audit
from setpoint.store.db import Database
from setpoint.store.schema import scoring_runs

State = Literal["running", "succeeded", "failed"]
STATES: tuple[State, ...] = ("running", "succeeded", "failed")


@dataclass
class RunCounts:
    """What a run read, scored and quarantined (the quarantine batches' ids)."""

    n_rows: int = 0
    n_scored: int = 0
    n_quarantined: int = 0
    quarantine: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class RecordedRun:
    id: int
    model: str
    version: int
    endpoint: str | None
    engine: str
    inputs: list[dict[str, Any]]
    output: str
    n_rows: int
    n_scored: int
    n_quarantined: int
    quarantine: list[int]
    state: State
    error: str | None
    runner: str
    created_by: str
    started_at: datetime
    finished_at: datetime | None

    @property
    def ref(self) -> str:
        """The model version that scored: ``NAME@VERSION``."""
        return f"{self.model}@{self.version}"

    @property
    def orphaned(self) -> bool:
        """A ``running`` run whose process, on this host, is gone: it died unfinished."""
        if self.state != "running":
            return False
        host, _, pid = self.runner.rpartition(":")
        if host != socket.gethostname() or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, someone else's
            return False
        return False

    def __repr__(self) -> str:
        facts = [
            self.ref,
            f"via {self.endpoint}" if self.endpoint else "",
            self.state,
            f"{count(self.n_scored)} of {count(self.n_rows)} rows scored",
            day(self.started_at),
        ]
        return short_repr("RecordedRun", str(self.id), facts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.ref,
            "endpoint": self.endpoint,
            "engine": self.engine,
            "inputs": self.inputs,
            "output": self.output,
            "n_rows": self.n_rows,
            "n_scored": self.n_scored,
            "n_quarantined": self.n_quarantined,
            "quarantine": self.quarantine,
            "state": self.state,
            "error": self.error,
            "orphaned": self.orphaned,
            "runner": self.runner,
            "created_by": self.created_by,
            "started_at": self.started_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
        }


def runner() -> str:
    """This process, as a run's ``runner``: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class ScoringRuns:
    """The ``scoring_runs`` table: start, finish, fail, read."""

    def __init__(self, db: Database, *, actor: str) -> None:
        self._db = db
        self._actor = actor

    def start(
        self,
        *,
        model: str,
        version: int,
        endpoint: str | None,
        engine: str,
        inputs: Sequence[dict[str, Any]],
        output: str,
    ) -> int:
        """Record a run as ``running``; its id."""
        with self._db.write() as conn:
            run_id = int(
                conn.execute(
                    scoring_runs.insert()
                    .values(
                        model=model,
                        version=version,
                        endpoint=endpoint,
                        engine=engine,
                        inputs=list(inputs),
                        output=output,
                        n_rows=0,
                        n_scored=0,
                        n_quarantined=0,
                        quarantine=[],
                        state="running",
                        runner=runner(),
                        created_by=self._actor,
                        started_at=audit.now(),
                    )
                    .returning(scoring_runs.c.id)
                ).scalar_one()
            )
            audit.record(
                conn,
                actor=self._actor,
                action="scoring.start",
                entity_type="model",
                entity=f"{model}@{version}",
                after={
                    "scoring_run": run_id,
                    "endpoint": endpoint,
                    "engine": engine,
                    "inputs": [i["uri"] for i in inputs],
                    "output": output,
                },
            )
        return run_id

    def finish(self, run_id: int, counts: RunCounts, *, error: str | None = None) -> RecordedRun:
        """Record how run ``run_id`` ended: ``succeeded``, or ``failed`` with ``error``
        (with what it had counted by then)."""
        state: State = "succeeded" if error is None else "failed"
        with self._db.write() as conn:
            conn.execute(
                scoring_runs.update()
                .where(scoring_runs.c.id == run_id)
                .values(
                    n_rows=counts.n_rows,
                    n_scored=counts.n_scored,
                    n_quarantined=counts.n_quarantined,
                    quarantine=list(counts.quarantine),
                    state=state,
                    error=error,
                    finished_at=audit.now(),
                )
            )
            run = self._get(conn, run_id)
            audit.record(
                conn,
                actor=self._actor,
                action=f"scoring.{'finish' if error is None else 'fail'}",
                entity_type="model",
                entity=run.ref,
                after={
                    "scoring_run": run_id,
                    "state": state,
                    "n_rows": counts.n_rows,
                    "n_scored": counts.n_scored,
                    "n_quarantined": counts.n_quarantined,
                    "error": error,
                },
            )
        return run

    @contextmanager
    def recording(
        self,
        *,
        model: str,
        version: int,
        endpoint: str | None,
        engine: str,
        inputs: Sequence[dict[str, Any]],
        output: str,
    ) -> Iterator[tuple[int, RunCounts]]:
        """A run recorded for the block: ``running`` now, then ``succeeded`` with the
        counts the block left in the :class:`RunCounts` it is given, or ``failed`` with
        the error that left the block (which goes on)."""
        run_id = self.start(
            model=model,
            version=version,
            endpoint=endpoint,
            engine=engine,
            inputs=inputs,
            output=output,
        )
        counts = RunCounts()
        try:
            yield run_id, counts
        except BaseException as exc:
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self.finish(run_id, counts, error=f"{type(exc).__name__}: {message}")
            raise
        self.finish(run_id, counts)

    def get(self, run_id: int) -> RecordedRun:
        with self._db.read() as conn:
            return self._get(conn, run_id)

    def list(
        self,
        *,
        model: str | None = None,
        version: int | None = None,
        endpoint: str | None = None,
        state: str | None = None,
        limit: int | None = 50,
    ) -> list[RecordedRun]:
        """Runs, newest first."""
        query = sa.select(scoring_runs).order_by(scoring_runs.c.id.desc())
        if model is not None:
            query = query.where(scoring_runs.c.model == model)
        if version is not None:
            query = query.where(scoring_runs.c.version == version)
        if endpoint is not None:
            query = query.where(scoring_runs.c.endpoint == endpoint)
        if state is not None:
            query = query.where(scoring_runs.c.state == state)
        if limit:
            query = query.limit(limit)
        with self._db.read() as conn:
            return [_run(row) for row in conn.execute(query)]

    def count(self, model: str, version: int) -> int:
        """How many runs ``model``'s ``version`` did."""
        with self._db.read() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).where(
                        scoring_runs.c.model == model, scoring_runs.c.version == version
                    )
                ).scalar_one()
            )

    @staticmethod
    def _get(conn: sa.Connection, run_id: int) -> RecordedRun:
        row = conn.execute(sa.select(scoring_runs).where(scoring_runs.c.id == run_id)).first()
        if row is None:
            raise NotFoundError(f"no scoring run {run_id}; list them with: setpoint scoring list")
        return _run(row)


def _run(row: Any) -> RecordedRun:
    return RecordedRun(
        id=int(row.id),
        model=row.model,
        version=int(row.version),
        endpoint=row.endpoint,
        engine=row.engine,
        inputs=list(row.inputs),
        output=row.output,
        n_rows=int(row.n_rows),
        n_scored=int(row.n_scored),
        n_quarantined=int(row.n_quarantined),
        quarantine=[int(i) for i in row.quarantine],
        state=row.state,
        error=row.error,
        runner=row.runner,
        created_by=row.created_by,
        started_at=audit.as_utc(row.started_at),
        finished_at=None if row.finished_at is None else audit.as_utc(row.finished_at),
    )
