"""The worker: handlers run under a renewed lease, outcomes reported once, stale attempts stop."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from setpoint.errors import TrainingError, UsageError
from setpoint.jobs import JobStore, LeaseLostError
from setpoint.worker import JobContext, Worker
from setpoint.workspace import Workspace

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
WAIT = 10.0  # seconds an event may take before the test fails instead of hanging


@pytest.fixture
def store(workspace: Workspace) -> JobStore:
    return JobStore(workspace.db, actor="tester")


def wait_until(condition: Any, what: str) -> None:
    """Poll ``condition`` until it holds; fail after WAIT seconds."""
    tick = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return
        tick.wait(0.01)
    pytest.fail(f"timed out waiting until {what}")


def test_a_handlers_result_is_stored_with_its_log(workspace: Workspace, store: JobStore) -> None:
    def double(ctx: JobContext) -> dict[str, Any]:
        assert ctx.workspace is workspace
        ctx.check()  # holds its lease: no error
        ctx.log(f"doubling {ctx.job.args['x']}")
        return {"double": ctx.job.args["x"] * 2}

    queued = store.enqueue("double", {"x": 21}, key="k", now=T0)
    other = store.enqueue("unhandled", now=T0)
    worker = Worker(workspace, {"double": double}, name="w1")
    ran = worker.drain(now=T0)
    assert [(j.id, j.state, j.result) for j in ran] == [(queued.id, "succeeded", {"double": 42})]
    assert ran[0] == store.get(queued.id)
    assert [line["message"] for line in ran[0].log] == [
        "started by w1",
        "doubling 21",
        "succeeded",
    ]
    assert store.get(other.id).state == "queued"  # no handler: never claimed
    assert worker.run_once(now=T0) is None


def test_a_setpoint_error_fails_the_attempt_and_the_job_is_retried(
    workspace: Workspace, store: JobStore
) -> None:
    calls: list[int] = []

    def flaky(ctx: JobContext) -> str:
        calls.append(ctx.job.attempts)
        if len(calls) == 1:
            raise TrainingError("no labelled rows yet; wait for labels")
        return "trained"

    job = store.enqueue("retrain", key="k", now=T0)
    worker = Worker(workspace, {"retrain": flaky})
    first = worker.run_once(now=T0)
    assert first is not None
    assert (first.state, first.error) == ("queued", "no labelled rows yet; wait for labels")
    assert first.run_after == T0 + timedelta(seconds=30)
    assert worker.run_once(now=T0 + timedelta(seconds=29)) is None  # backing off
    second = worker.run_once(now=T0 + timedelta(seconds=30))
    assert second is not None
    assert (second.id, second.state, second.result, second.attempts) == (
        job.id,
        "succeeded",
        "trained",
        2,
    )
    assert calls == [1, 2]


def test_an_unexpected_exception_is_reported_with_its_type_and_traceback(
    workspace: Workspace, store: JobStore, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(ctx: JobContext) -> None:
        raise ValueError("bad row 7")

    def unstorable(ctx: JobContext) -> set[int]:
        return {1, 2}

    store.enqueue("broken", key="k", max_attempts=1, now=T0)
    store.enqueue("unstorable", key="k", max_attempts=1, now=T0)
    worker = Worker(workspace, {"broken": broken, "unstorable": unstorable})
    with caplog.at_level(logging.ERROR, logger="setpoint.worker"):
        ran = worker.drain(now=T0)
    assert [(j.kind, j.state, j.error) for j in ran] == [
        ("broken", "failed", "ValueError: bad row 7"),
        ("unstorable", "failed", "TypeError: Object of type set is not JSON serializable"),
    ]
    logged = [r for r in caplog.records if r.exc_info]
    assert len(logged) == 2
    assert "bad row 7" in caplog.text


def test_a_slow_handler_keeps_its_lease(workspace: Workspace, store: JobStore) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(ctx: JobContext) -> str:
        started.set()
        assert release.wait(WAIT)
        return "done"

    job = store.enqueue("slow", key="k")  # real time: the renewals must move the lease
    worker = Worker(
        workspace, {"slow": slow}, name="w1", lease=timedelta(seconds=1), renew_every=0.05
    )
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(worker.run_once)
        assert started.wait(WAIT)
        claimed = store.get(job.id).lease_until
        assert claimed is not None
        renewed: list[datetime] = []

        def moved() -> bool:
            now = store.get(job.id).lease_until
            assert now is not None
            renewed.append(now)
            return now > claimed

        wait_until(moved, "the lease was renewed")
        # before the renewed lease runs out, nobody else may take the job
        between = claimed + (renewed[-1] - claimed) / 2
        assert store.claim("w2", now=between) is None
        release.set()
        done = future.result(timeout=WAIT)
    assert done is not None
    assert (done.state, done.result, done.attempts, done.worker) == ("succeeded", "done", 1, "w1")


@pytest.mark.parametrize(
    ("how", "checks"), [("taken over", True), ("taken over", False), ("cancelled", True)]
)
def test_an_attempt_that_lost_its_job_stops_and_does_not_report(
    workspace: Workspace, store: JobStore, how: str, checks: bool
) -> None:
    started, moved_on = threading.Event(), threading.Event()
    raised: list[LeaseLostError] = []

    def retrain(ctx: JobContext) -> str:
        started.set()
        assert moved_on.wait(WAIT)
        if checks:
            try:
                ctx.check()
            except LeaseLostError as lost:
                raised.append(lost)
                assert ctx.lost
                raise
        return "stale"

    job = store.enqueue("retrain", key="k", now=T0)
    worker = Worker(workspace, {"retrain": retrain}, name="w1", lease=timedelta(minutes=1))
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(worker.run_once, T0)
        assert started.wait(WAIT)
        if how == "taken over":  # w1 looked dead: its lease ran out long ago
            successor = store.claim("w2", now=T0 + timedelta(days=1))
            assert successor is not None
            assert successor.attempts == 2
            store.succeed(successor, "fresh", now=T0 + timedelta(days=1))
        else:
            store.cancel(job.id, now=T0)
        moved_on.set()
        returned = future.result(timeout=WAIT)
    assert returned is not None
    assert (returned.attempts, returned.worker, returned.state) == (1, "w1", "running")
    assert bool(raised) == checks
    final = store.get(job.id)
    if how == "taken over":
        assert (final.state, final.result, final.worker) == ("succeeded", "fresh", "w2")
    else:
        assert (final.state, final.result) == ("cancelled", None)
    assert "stale" not in str(final.log)


def test_two_workers_run_each_job_exactly_once(workspace: Workspace, store: JobStore) -> None:
    for i in range(20):
        store.enqueue("retrain", {"i": i}, key=f"k{i}", now=T0)
    runs: list[int] = []
    lock = threading.Lock()

    def retrain(ctx: JobContext) -> int:
        with lock:
            runs.append(ctx.job.id)
        return int(ctx.job.args["i"])

    workers = [Worker(workspace, {"retrain": retrain}, name=f"w{n}") for n in range(2)]
    with ThreadPoolExecutor(2) as pool:
        drained = list(pool.map(lambda w: w.drain(now=T0), workers))
    assert len(runs) == 20
    assert set(Counter(runs).values()) == {1}
    assert sum(len(d) for d in drained) == 20
    jobs = store.list()
    assert {j.state for j in jobs} == {"succeeded"}
    assert sorted(j.result for j in jobs) == list(range(20))


def test_run_works_until_stopped(workspace: Workspace, store: JobStore) -> None:
    stop = threading.Event()
    seen: list[int] = []

    def count(ctx: JobContext) -> None:
        return None

    def on_job(job: Any) -> None:
        seen.append(job.id)
        if len(seen) == 3:
            stop.set()

    ids = [store.enqueue("count", key=f"k{i}").id for i in range(3)]
    worker = Worker(workspace, {"count": count})
    thread = threading.Thread(target=worker.run, args=(stop,), kwargs={"on_job": on_job})
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert seen == ids
    assert {store.get(i).state for i in ids} == {"succeeded"}
    worker.run(stop)  # already stopped: returns at once


def test_an_interrupt_leaves_the_job_to_its_lease(workspace: Workspace, store: JobStore) -> None:
    def interrupted(ctx: JobContext) -> None:
        raise KeyboardInterrupt

    job = store.enqueue("retrain", key="k", now=T0)
    worker = Worker(workspace, {"retrain": interrupted}, lease=timedelta(minutes=1))
    with pytest.raises(KeyboardInterrupt):
        worker.run_once(now=T0)
    left = store.get(job.id)
    assert (left.state, left.lease_until) == ("running", T0 + timedelta(minutes=1))


def test_a_worker_is_named_and_mistakes_are_refused(workspace: Workspace) -> None:
    def nothing(ctx: JobContext) -> None:
        return None

    worker = Worker(workspace, {"a": nothing, "b": nothing})
    assert worker.kinds == ("a", "b")
    assert worker.renew_every == 30.0  # a quarter of the two-minute lease
    assert worker.name.count(":") == 2
    assert Worker(workspace, {"a": nothing}).name != worker.name
    with pytest.raises(UsageError, match="at least one handler"):
        Worker(workspace, {})
    with pytest.raises(UsageError, match="less than the lease"):
        Worker(workspace, {"a": nothing}, lease=timedelta(seconds=1), renew_every=1)


def test_schedules_queue_their_jobs_every_so_often_and_a_failure_is_logged(
    workspace: Workspace, store: JobStore, caplog: pytest.LogCaptureFixture
) -> None:
    asked: list[datetime] = []

    def daily(ws: Workspace, now: datetime) -> None:
        asked.append(now)
        JobStore(ws.db).enqueue("tick", key=now.date().isoformat(), now=now)

    def broken(ws: Workspace, now: datetime) -> None:
        raise RuntimeError("the store is away")

    worker = Worker(
        workspace,
        {"tick": lambda ctx: ctx.now.isoformat(), "other": lambda ctx: None},
        schedules={"tick": daily, "other": broken, "not-mine": broken},
        schedule_every=timedelta(minutes=10),
    )
    with caplog.at_level(logging.ERROR):
        (job,) = worker.drain(now=T0)
    assert (job.key, job.result) == ("2026-06-01", T0.isoformat())  # the job's clock
    assert worker.drain(now=T0 + timedelta(minutes=5)) == []
    assert worker.drain(now=T0 + timedelta(minutes=15)) == []  # asked again: the same job
    assert asked == [T0, T0 + timedelta(minutes=15)]
    assert [r.getMessage() for r in caplog.records].count(
        f"worker {worker.name} could not queue the other jobs due"
    ) == 2  # each time it was asked; the worker went on
