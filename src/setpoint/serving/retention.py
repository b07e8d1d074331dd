"""Log retention: an endpoint's log records older than its ``log_retention`` are deleted.

``setpoint deploy E --log-retention 90d`` sets it (a deployment setting, audited like
the others; none by default: records are kept). :func:`prune` deletes the endpoint's
predictions, feedback and refused rows whose ``ts`` is older than ``now`` minus the
retention, through :func:`~setpoint.serving.log.rewrite_log` (files rewritten, never
edited in place), and records one ``logs.prune`` audit event with the counts per log
(never a value). A dry run counts and changes nothing, and is not audited.

**Schedule.** Retention runs as a persistent job of kind ``retention``, one per
endpoint and UTC day, keyed ``ENDPOINT:YYYY-MM-DD``: :func:`schedule` queues the
day's jobs for every endpoint with a retention, and queueing them again the same day
finds the same jobs, so each runs once a day however many workers ask. Every worker
that runs retention jobs (``setpoint serve``'s background worker or loop, ``setpoint
worker``, ``setpoint loop``) calls it when it starts and then every few minutes; a
failed run is retried by the job store. ``setpoint logs prune`` runs it at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from setpoint.errors import UsageError
from setpoint.jobs import Job, JobStore
from setpoint.serving.config import retention_span
from setpoint.serving.log import RewriteResult, rewrite_log
from setpoint.store import audit

if TYPE_CHECKING:
    from setpoint.worker import JobContext
    from setpoint.workspace import Workspace

JOB_KIND = "retention"
LOGS = ("predictions", "feedback", "refused")
_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class PruneResult:
    """What one retention run did (or would do) to one endpoint's logs."""

    endpoint: str
    retention: str
    before: datetime  # records older than this went
    dry_run: bool
    logs: tuple[RewriteResult, ...]

    @property
    def rows_removed(self) -> int:
        return sum(log.rows_removed for log in self.logs)

    @property
    def rows_skipped(self) -> int:
        """Old records still in a segment whose writer did not seal it in time."""
        return sum(log.rows_skipped for log in self.logs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "retention": self.retention,
            "before": self.before.isoformat(),
            "dry_run": self.dry_run,
            "rows_removed": self.rows_removed,
            "rows_skipped": self.rows_skipped,
            "logs": {log.kind: log.to_dict() for log in self.logs},
        }


def prune(
    workspace: Workspace, endpoint: str, *, now: datetime | None = None, dry_run: bool = False
) -> PruneResult:
    """Delete ``endpoint``'s log records older than its retention (as of ``now``)."""
    retention = workspace.deployments.get(endpoint).config.log_retention
    if retention is None:
        raise UsageError(
            f"endpoint {endpoint!r} keeps its log records (no log retention); set one with: "
            f"setpoint deploy {endpoint} --log-retention 90d"
        )
    before = _utc(now) - retention_span(retention)
    cutoff = pa.scalar(before, _TS)

    def old(table: pa.Table) -> pa.ChunkedArray:
        return pc.less(table.column("ts"), cutoff)

    logs = tuple(
        rewrite_log(
            workspace.logs, kind, endpoint=endpoint, drop=old, before=before, dry_run=dry_run
        )
        for kind in LOGS
    )
    result = PruneResult(endpoint, retention, before, dry_run, logs)
    if not dry_run:
        # After the files: a crash in between leaves rows gone without their event; the
        # job is then retried and records its own run.
        with workspace.db.write() as conn:
            audit.record(
                conn,
                actor=workspace.actor,
                action="logs.prune",
                entity_type="endpoint",
                entity=endpoint,
                after={key: value for key, value in result.to_dict().items() if key != "endpoint"},
            )
    return result


def prune_all(
    workspace: Workspace,
    endpoint: str | None = None,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
) -> list[PruneResult]:
    """:func:`prune` for ``endpoint``, or for every endpoint with a retention."""
    if endpoint is not None:
        return [prune(workspace, endpoint, now=now, dry_run=dry_run)]
    return [
        prune(workspace, d.endpoint, now=now, dry_run=dry_run)
        for d in workspace.deployments.current()
        if d.config.log_retention is not None
    ]


def schedule(workspace: Workspace, now: datetime) -> list[Job]:
    """Queue today's retention job of every endpoint with a retention (once per day)."""
    jobs = JobStore(workspace.db, actor=workspace.actor)
    day = _utc(now).date().isoformat()
    return [
        jobs.enqueue(JOB_KIND, {"endpoint": d.endpoint}, key=f"{d.endpoint}:{day}", now=now)
        for d in workspace.deployments.current()
        if d.config.log_retention is not None
    ]


def run_job(context: JobContext) -> dict[str, Any]:
    """The ``retention`` job: prune one endpoint as of the job's clock."""
    endpoint = str(context.job.args["endpoint"])
    if context.workspace.deployments.get(endpoint).config.log_retention is None:
        return {"endpoint": endpoint, "skipped": "the endpoint no longer has a log retention"}
    context.check()
    return prune(context.workspace, endpoint, now=context.now).to_dict()


def _utc(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
