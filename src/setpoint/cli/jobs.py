"""``setpoint jobs`` and ``setpoint worker``: the persistent jobs and what runs them."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from setpoint.cli._common import (
    Col,
    Group,
    JsonFlag,
    emit,
    is_json,
    render_rows,
    short,
    state,
    stderr,
    stdout,
)
from setpoint.errors import UsageError
from setpoint.jobs import STATES, Job, JobStore

if TYPE_CHECKING:
    from setpoint.worker import Handler

jobs_app = typer.Typer(
    cls=Group,
    help="Jobs kept in the workspace (retraining, monitoring...): list, inspect, cancel, "
    "retry. `setpoint worker` runs them.",
    no_args_is_help=True,
)

JobId = Annotated[int, typer.Argument(help="The job id (from jobs list).", show_default=False)]


def _store(ctx: typer.Context) -> JobStore:
    ws = state(ctx).workspace()
    return JobStore(ws.db, actor=ws.actor)


@jobs_app.command("list")
def jobs_list(
    ctx: typer.Context,
    state_: Annotated[
        str | None, typer.Option("--state", help=f"Only jobs in this state: {', '.join(STATES)}.")
    ] = None,
    kind: Annotated[str | None, typer.Option(help="Only jobs of this kind, e.g. retrain.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    json_: JsonFlag = False,
) -> None:
    """List jobs, newest first: their state, attempts, worker and last error."""
    found = _store(ctx).list(state=state_, kind=kind, limit=limit)

    def render(c: Console) -> None:
        if not found:
            c.print("No jobs.")
            return
        # short values stay on one line; the key, the worker and the error wrap
        render_rows(
            c,
            [
                short("id", "right"),
                short("kind"),
                Col("key", fold=8),
                short("state"),
                short("attempts"),
                Col("worker", fold=8),
                short("created"),
                short("finished"),
                Col("error", fold=12),
            ],
            [
                (
                    str(job.id),
                    job.kind,
                    job.key,
                    Text.from_markup(_state(job.state)),
                    f"{job.attempts}/{job.max_attempts}",
                    job.worker or "-",
                    _short(job.created_at),
                    _short(job.finished_at),
                    _trim(job.error),
                )
                for job in found
            ],
            caption="times: month-day hour:minute, UTC",
        )

    emit(ctx, [job.to_dict() for job in found], render)


@jobs_app.command("show")
def jobs_show(ctx: typer.Context, job_id: JobId, json_: JsonFlag = False) -> None:
    """Show one job: its arguments, attempts, lease, result or error, and its log."""
    job = _store(ctx).get(job_id)

    def render(c: Console) -> None:
        c.print(f"[bold]job {job.id}[/]: {escape(f'{job.kind} {job.key}')}, {_state(job.state)}")
        fields = {
            "arguments": json.dumps(job.args, default=str),
            "attempts": f"{job.attempts} of {job.max_attempts}",
            "worker": job.worker,
            "due (UTC)": _when(job.run_after),
            "lease until (UTC)": _when(job.lease_until),
            "created (UTC)": f"{_when(job.created_at)} by {job.created_by}",
            "started (UTC)": _when(job.started_at),
            "finished (UTC)": _when(job.finished_at),
            "result": None if job.result is None else json.dumps(job.result, default=str),
            "error": job.error,
        }
        for name, value in fields.items():
            first, *rest = (value or "-").splitlines()
            indented = "\n".join([first, *(" " * 21 + more for more in rest)])
            c.print(f"  {name:<18} {indented}", markup=False)
        if job.log:
            render_rows(
                c,
                [short("time (UTC)"), short("attempt", "right"), Col("message", fold=30)],
                [
                    (
                        _when(datetime.fromisoformat(line["at"]), seconds=True),
                        str(line["attempt"]),
                        line["message"],
                    )
                    for line in job.log
                ],
                title="log",
            )

    emit(ctx, job.to_dict(), render)


@jobs_app.command("cancel")
def jobs_cancel(ctx: typer.Context, job_id: JobId, json_: JsonFlag = False) -> None:
    """Cancel a job that has not finished; a worker running it stops at its next check."""
    job = _store(ctx).cancel(job_id)
    emit(
        ctx,
        job.to_dict(),
        lambda c: c.print(f"Cancelled job {job.id} ({job.kind} {job.key}).", markup=False),
    )


@jobs_app.command("retry")
def jobs_retry(ctx: typer.Context, job_id: JobId, json_: JsonFlag = False) -> None:
    """Queue a failed or cancelled job again, with a fresh set of attempts."""
    job = _store(ctx).retry(job_id)
    emit(
        ctx,
        job.to_dict(),
        lambda c: c.print(
            f"Queued job {job.id} ({job.kind} {job.key}) again; a worker runs it.", markup=False
        ),
    )


def worker(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Run the jobs due now, print them and exit.")
    ] = False,
    poll_seconds: Annotated[
        float, typer.Option(min=0.01, help="How long to wait when no job is due.")
    ] = 2.0,
    kind: Annotated[
        list[str] | None,
        typer.Option(help="Only run jobs of this kind (repeatable; default: every kind)."),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Run jobs (retraining, monitoring...) from the workspace until Ctrl-C or SIGTERM.

    Several workers may run against one workspace; each job runs on one of them. On
    Ctrl-C or SIGTERM the job under way is finished and reported before the worker
    exits (a second Ctrl-C abandons it: its lease runs out and another worker takes it
    over). Under --json each finished job is printed as one line of JSON.
    """
    from setpoint.loop.handlers import SCHEDULES
    from setpoint.worker import Worker

    handlers = _handlers(kind)
    ws = state(ctx).workspace()
    runner = Worker(ws, handlers, schedules=SCHEDULES)
    if once:
        ran = runner.drain()
        emit(ctx, [job.to_dict() for job in ran], lambda c: _render_ran(c, ran))
        return
    stop = threading.Event()
    stderr().print(
        f"Worker {runner.name} runs jobs of kind {', '.join(runner.kinds)}; Ctrl-C to stop.",
        markup=False,
    )
    with _stopping_on_signals(stop):
        runner.run(stop, poll_seconds=poll_seconds, on_job=lambda job: _report(ctx, job))
    stderr().print(f"Worker {runner.name} stopped.", markup=False)


def _handlers(kinds: list[str] | None) -> Mapping[str, Handler]:
    from setpoint.loop.handlers import HANDLERS

    if not kinds:
        return HANDLERS
    unknown = sorted(set(kinds) - set(HANDLERS))
    if unknown:
        raise UsageError(
            f"no handler for job kind {', '.join(unknown)}; known kinds: {', '.join(HANDLERS)}"
        )
    return {k: HANDLERS[k] for k in kinds}


@contextmanager
def _stopping_on_signals(stop: threading.Event) -> Iterator[None]:
    """The first Ctrl-C or SIGTERM sets ``stop``, so the job under way is reported; the
    default handlers are back after it, so a second Ctrl-C interrupts."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are only delivered to the main thread
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handle(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stderr().print("Stopping after the job under way (Ctrl-C again to abandon it).")

    for sig in previous:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _report(ctx: typer.Context, job: Job) -> None:
    if is_json(ctx):
        print(json.dumps(job.to_dict(), default=str), flush=True)
    else:
        stdout().print(_outcome(job), markup=False)


def _render_ran(c: Console, ran: list[Job]) -> None:
    if not ran:
        c.print("No job was due.")
        return
    for job in ran:
        c.print(_outcome(job), markup=False)


def _outcome(job: Job) -> str:
    what = f"job {job.id} ({job.kind} {job.key}) attempt {job.attempts}"
    if job.state == "succeeded":
        return f"{what} succeeded"
    if job.state == "running":
        return f"{what} lost its lease; the worker that took the job over reports it"
    error = f": {job.error}" if job.error else ""
    if job.state == "queued":
        return f"{what} failed{error}; retrying after {_when(job.run_after, seconds=True)} UTC"
    return f"{what} {job.state}{error}"


def _state(value: str) -> str:
    colour = {"succeeded": "green", "failed": "red", "running": "cyan", "cancelled": "dim"}
    return f"[{colour[value]}]{value}[/]" if value in colour else value


def _when(value: datetime | None, *, seconds: bool = False) -> str:
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _short(value: datetime | None) -> str:
    """A time in a table row: the year is rarely news for a job, the width is."""
    return "-" if value is None else value.strftime("%m-%d %H:%M")


def _trim(text: str | None, width: int = 50) -> str:
    if not text:
        return "-"
    line = text.splitlines()[0]
    return line if len(line) <= width and line == text else line[: width - 1] + "…"
