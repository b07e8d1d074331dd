"""The job kinds the loop's worker runs, by name (``setpoint worker`` runs these), and
the schedules of the kinds that run on their own (retention, daily; log compaction,
hourly)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from setpoint.worker import JobContext
    from setpoint.workspace import Workspace


def retrain(context: JobContext) -> Any:
    """Retrain a rollout's candidate, gate it and put it on live traffic."""
    from setpoint.loop.controller import Loop

    return Loop(context.workspace).run_retraining(context)


def retention(context: JobContext) -> Any:
    """Delete one endpoint's log records older than its log retention."""
    from setpoint.serving.retention import run_job

    return run_job(context)


def retention_schedule(workspace: Workspace, now: datetime) -> Any:
    """Queue today's retention job of every endpoint with a log retention."""
    from setpoint.serving.retention import schedule

    return schedule(workspace, now)


def compaction(context: JobContext) -> Any:
    """Turn the logs' closed segments into Parquet."""
    from setpoint.serving.compaction import run_job

    return run_job(context)


def compaction_schedule(workspace: Workspace, now: datetime) -> Any:
    """Queue this hour's log compaction."""
    from setpoint.serving.compaction import schedule

    return schedule(workspace, now)


HANDLERS: dict[str, Callable[[JobContext], Any]] = {
    "retrain": retrain,
    "retention": retention,
    "compaction": compaction,
}
SCHEDULES: dict[str, Callable[[Workspace, datetime], Any]] = {
    "retention": retention_schedule,
    "compaction": compaction_schedule,
}
