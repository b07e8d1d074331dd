"""Runs jobs: claims one, calls the handler for its kind, reports the outcome.

While a handler works, a thread renews the job's lease, so a slow job is not taken
over; a worker that dies stops renewing and the next claim takes the job as a new
attempt (see :mod:`setpoint.jobs`). A handler calls :meth:`JobContext.check` before
each step that leaves something behind: after a takeover or a cancel it raises
:class:`LeaseLostError`, and the stale attempt stops instead of racing its successor.

Some kinds run on a schedule (retention: once a day per endpoint). A worker given
``schedules`` calls the schedule of each kind it runs when it starts and then every
``schedule_every``; a schedule queues the jobs due at that time under keys that make
queueing them twice one job (the day, for a daily job), so any number of workers can
ask and each job runs once.

A handler's outcome is its return value (JSON) or its exception. A
:class:`SetpointError` is the handler's own verdict and its message is the job's
error; anything else is a bug or an accident, reported with its type and logged with
its traceback. Either way the store retries the job after a backoff.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from setpoint.errors import SetpointError, UsageError
from setpoint.jobs import Job, JobStore, LeaseLostError

if TYPE_CHECKING:
    from setpoint.workspace import Workspace

logger = logging.getLogger(__name__)


class JobContext:
    """What a handler gets: its job, the workspace, and the attempt's log and lease."""

    def __init__(
        self,
        job: Job,
        workspace: Workspace,
        store: JobStore,
        *,
        lease: timedelta,
        now: datetime | None = None,
    ) -> None:
        self.job = job
        self.workspace = workspace
        self._store = store
        self._lease = lease
        self._now = now
        self._lost: LeaseLostError | None = None

    @property
    def now(self) -> datetime:
        """The attempt's clock: the time the worker was given, else the wall clock."""
        return self._now if self._now is not None else datetime.now(UTC)

    @property
    def lost(self) -> bool:
        """True once this attempt is known to no longer hold its job."""
        return self._lost is not None

    def log(self, message: str) -> None:
        """Add a line to the job's log, under this attempt."""
        self._store.log(self.job, message, now=self._now)

    def check(self) -> None:
        """Renew the lease now; LeaseLostError if the job was taken over or cancelled,
        so a handler can stop before it leaves something behind."""
        if self._lost is not None:
            raise LeaseLostError(self._lost.message)
        try:
            self._store.renew(self.job, lease=self._lease, now=self._now)
        except LeaseLostError as lost:
            self._lost = lost
            raise


Handler = Callable[[JobContext], Any]
"""Does one job; returns a JSON-able result (stored with the job) or raises."""

Schedule = Callable[["Workspace", datetime], Any]
"""Queues the jobs of one kind that are due at a time, keyed so that queueing them
again queues nothing new."""


class Worker:
    """Runs due jobs of the kinds it has handlers for; several may share a workspace."""

    def __init__(
        self,
        workspace: Workspace,
        handlers: Mapping[str, Handler],
        *,
        name: str | None = None,
        lease: timedelta = timedelta(minutes=2),
        renew_every: float | None = None,
        schedules: Mapping[str, Schedule] | None = None,
        schedule_every: timedelta = timedelta(minutes=10),
    ) -> None:
        if not handlers:
            raise UsageError("a worker needs at least one handler (job kind -> function)")
        if lease <= timedelta(0):
            raise UsageError(f"the lease must be positive, not {lease}")
        every = lease.total_seconds() / 4 if renew_every is None else renew_every
        if not 0 < every < lease.total_seconds():
            raise UsageError(
                f"renew_every must be more than 0 and less than the lease "
                f"({lease.total_seconds():g} s), not {every:g}"
            )
        self.workspace = workspace
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease = lease
        self.renew_every = every
        self._handlers = dict(handlers)
        self._store = JobStore(workspace.db, actor=workspace.actor)
        # only the kinds this worker runs: a worker limited to retraining queues no
        # retention jobs it would leave to others
        self._schedules = {k: s for k, s in (schedules or {}).items() if k in self._handlers}
        self.schedule_every = schedule_every
        self._scheduled_at: datetime | None = None

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self._handlers)

    def run_once(self, now: datetime | None = None) -> Job | None:
        """Claim one due job, run it and report it; None when nothing is due.

        Returns the job as stored after its report, or as claimed when the attempt
        lost its lease (its successor reports). ``now`` pins the clock for the whole
        attempt, so tests and simulations can step time.
        """
        self.schedule(now)
        job = self._store.claim(self.name, kinds=self.kinds, lease=self.lease, now=now)
        if job is None:
            return None
        logger.info("job %s (%s %s) attempt %s started", job.id, job.kind, job.key, job.attempts)
        context = JobContext(job, self.workspace, self._store, lease=self.lease, now=now)
        try:
            result, error = self._call(context)
            if error is None:
                return self._store.succeed(job, result, now=now)
            return self._store.fail(job, error, now=now)
        except LeaseLostError as lost:
            logger.info("job %s attempt %s stopped: %s", job.id, job.attempts, lost.message)
            return job

    def schedule(self, now: datetime | None = None) -> None:
        """Queue the scheduled jobs due at ``now``, unless this worker did so less than
        ``schedule_every`` ago. A schedule that fails is logged and tried next time."""
        at = now if now is not None else datetime.now(UTC)
        last = self._scheduled_at
        if last is not None and last <= at < last + self.schedule_every:
            return
        self._scheduled_at = at
        for kind, schedule in self._schedules.items():
            try:
                schedule(self.workspace, at)
            except Exception:
                logger.exception("worker %s could not queue the %s jobs due", self.name, kind)

    def drain(self, now: datetime | None = None, max_jobs: int | None = None) -> list[Job]:
        """Run jobs until none is due (or ``max_jobs`` ran); the jobs as reported."""
        ran: list[Job] = []
        while max_jobs is None or len(ran) < max_jobs:
            job = self.run_once(now)
            if job is None:
                break
            ran.append(job)
        return ran

    def run(
        self,
        stop: threading.Event,
        *,
        poll_seconds: float = 2.0,
        on_job: Callable[[Job], None] | None = None,
    ) -> None:
        """Run jobs until ``stop`` is set; a job under way then is finished and reported
        first. A store that cannot be reached is tried again after ``poll_seconds``, so
        a database restart does not end the worker."""
        while not stop.is_set():
            try:
                job = self.run_once()
            except Exception:
                logger.exception("worker %s could not claim or report a job", self.name)
                job = None
            if job is None:
                stop.wait(poll_seconds)
            elif on_job is not None:
                on_job(job)

    def _call(self, context: JobContext) -> tuple[Any, str | None]:
        """The handler's result, or the error its attempt fails with; LeaseLostError
        passes through, as the attempt has nothing left to report."""
        job = context.job
        try:
            with self._renewing(context):
                result = self._handlers[job.kind](context)
            json.dumps(result)  # a result the store cannot keep is the handler's failure
        except LeaseLostError:
            raise
        except SetpointError as error:
            logger.info("job %s (%s) failed: %s", job.id, job.kind, error.message)
            return None, error.message
        except Exception as exc:
            logger.exception("job %s (%s) failed unexpectedly", job.id, job.kind)
            return None, f"{type(exc).__name__}: {exc}"
        return result, None

    @contextmanager
    def _renewing(self, context: JobContext) -> Iterator[None]:
        done = threading.Event()

        def renew() -> None:
            while not done.wait(self.renew_every):
                try:
                    context.check()
                except LeaseLostError as lost:
                    logger.info("job %s: stopped renewing: %s", context.job.id, lost.message)
                    return
                except Exception:  # the store may come back before the lease runs out
                    logger.warning(
                        "job %s: could not renew the lease", context.job.id, exc_info=True
                    )

        thread = threading.Thread(target=renew, name=f"renew job {context.job.id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
