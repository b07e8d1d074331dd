"""Log compaction on a schedule: closed segments become Parquet once an hour.

Segments are what writers append to; read back, each is JSON to parse, and with a
store (``log_uri``) each is an object to list and fetch. Compaction turns closed ones
into Parquet partitioned by endpoint and date (``_logtables.compact``), which readers
and the monitor read much faster. It runs as a persistent job of kind ``compaction``,
one per UTC hour, keyed ``YYYY-MM-DDTHH``, over every kind of log: :func:`schedule`
queues the hour's job when a log has closed segments (here, or in the store), and
queueing it again in the same hour finds the same job, so it runs once an hour however
many workers ask (see ``retention.py`` for the same pattern). ``setpoint logs compact``
runs it at once.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from setpoint.jobs import Job, JobStore
from setpoint.serving._logremote import closed_segments
from setpoint.serving.log import CompactionResult, compact

if TYPE_CHECKING:
    from setpoint.worker import JobContext
    from setpoint.workspace import Workspace

JOB_KIND = "compaction"
LOGS = ("predictions", "feedback", "refused")


def compact_all(workspace: Workspace) -> dict[str, CompactionResult]:
    """Compact every kind of the workspace's log; what each compaction did."""
    return {kind: compact(workspace.logs, kind=kind) for kind in LOGS}


def schedule(workspace: Workspace, now: datetime) -> Job | None:
    """Queue this hour's compaction (once per hour), if a log has closed segments."""
    if not any(closed_segments(workspace.logs, kind) for kind in LOGS):
        return None
    hour = now.astimezone(UTC).strftime("%Y-%m-%dT%H")
    return JobStore(workspace.db, actor=workspace.actor).enqueue(JOB_KIND, {}, key=hour, now=now)


def run_job(context: JobContext) -> dict[str, Any]:
    """The ``compaction`` job."""
    context.check()
    return {kind: asdict(result) for kind, result in compact_all(context.workspace).items()}
