"""Persistent jobs: one worker per attempt, taken over when a worker dies, retried."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from setpoint.errors import ConflictError, NotFoundError, UsageError
from setpoint.jobs import JobStore, LeaseLostError
from setpoint.workspace import Workspace

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(workspace: Workspace) -> JobStore:
    return JobStore(workspace.db, actor="tester")


def test_a_key_makes_one_job_however_often_it_is_enqueued(store: JobStore) -> None:
    first = store.enqueue("retrain", {"endpoint": "credit"}, key="credit@2026-06-01", now=T0)
    again = store.enqueue("retrain", {"endpoint": "credit"}, key="credit@2026-06-01", now=T0)
    assert again.id == first.id
    other = store.enqueue("retrain", {"endpoint": "credit"}, key="credit@2026-06-02", now=T0)
    assert other.id != first.id
    keyless = [store.enqueue("report", now=T0).id for _ in range(2)]
    assert len(set(keyless)) == 2
    assert [j.state for j in store.list()] == ["queued"] * 4


def test_one_worker_takes_a_job_and_reports_it_once(store: JobStore) -> None:
    queued = store.enqueue("retrain", {"endpoint": "credit"}, key="k", now=T0)
    job = store.claim("worker-a", now=T0)
    assert job is not None
    assert (job.id, job.state, job.attempts, job.worker) == (queued.id, "running", 1, "worker-a")
    assert store.claim("worker-b", now=T0) is None  # nothing else is due
    store.log(job, "trained on 12,000 rows", now=T0)
    done = store.succeed(job, {"model": "credit-risk@2"}, now=T0 + timedelta(minutes=1))
    assert done.state == "succeeded"
    assert done.result == {"model": "credit-risk@2"}
    assert [line["message"] for line in done.log] == [
        "started by worker-a",
        "trained on 12,000 rows",
        "succeeded",
    ]
    with pytest.raises(LeaseLostError):
        store.succeed(job)


def test_a_dead_workers_job_is_taken_over_and_its_late_report_refused(store: JobStore) -> None:
    store.enqueue("retrain", key="k", now=T0)
    first = store.claim("worker-a", lease=timedelta(minutes=1), now=T0)
    assert first is not None
    # worker-a stops renewing (killed); before the lease runs out nobody may take it...
    assert store.claim("worker-b", now=T0 + timedelta(seconds=59)) is None
    # ...after, the next worker does, as a new attempt.
    second = store.claim("worker-b", now=T0 + timedelta(minutes=2))
    assert second is not None
    assert (second.id, second.attempts, second.worker) == (first.id, 2, "worker-b")
    assert "lease ran out" in second.log[-1]["message"]
    with pytest.raises(LeaseLostError, match="attempt 1 no longer runs"):
        store.succeed(first)  # worker-a was only slow: its result is not taken
    with pytest.raises(LeaseLostError):
        store.renew(first)
    finished = store.succeed(second, "ok")
    assert (finished.state, finished.attempts) == ("succeeded", 2)


def test_failures_are_retried_with_backoff_then_fail_for_good(store: JobStore) -> None:
    store.enqueue("retrain", key="k", max_attempts=2, now=T0)
    job = store.claim("w", now=T0)
    assert job is not None
    after = store.fail(job, "the data store was unreachable", now=T0)
    assert (after.state, after.error) == ("queued", "the data store was unreachable")
    assert store.claim("w", now=T0 + timedelta(seconds=29)) is None  # backing off
    again = store.claim("w", now=T0 + timedelta(seconds=30))
    assert again is not None
    assert again.attempts == 2
    failed = store.fail(again, "still unreachable", now=T0 + timedelta(minutes=1))
    assert (failed.state, failed.error) == ("failed", "still unreachable")
    assert store.claim("w", now=T0 + timedelta(days=1)) is None
    retried = store.retry(failed.id, now=T0 + timedelta(days=1))
    assert retried.state == "queued"
    third = store.claim("w", now=T0 + timedelta(days=1))
    assert third is not None
    assert third.attempts == 3


def test_cancel_stops_the_worker_and_mistakes_are_named(store: JobStore) -> None:
    store.enqueue("retrain", key="k", now=T0)
    job = store.claim("w", now=T0)
    assert job is not None
    cancelled = store.cancel(job.id)
    assert cancelled.state == "cancelled"
    with pytest.raises(LeaseLostError, match="now cancelled"):
        store.renew(job)
    with pytest.raises(ConflictError, match="already cancelled"):
        store.cancel(job.id)
    with pytest.raises(ConflictError, match="only a failed or cancelled job"):
        store.retry(store.enqueue("report", now=T0).id)
    with pytest.raises(NotFoundError, match="there is no job 9999"):
        store.get(9999)
    with pytest.raises(UsageError, match="unknown job state"):
        store.list(state="done")
    with pytest.raises(UsageError, match="max_attempts"):
        store.enqueue("retrain", max_attempts=0)


def test_concurrent_workers_take_each_job_exactly_once(store: JobStore) -> None:
    for i in range(20):
        store.enqueue("retrain", key=f"k{i}", now=T0)

    def work(worker: int) -> list[int]:
        taken = []
        while (job := store.claim(f"w{worker}", now=T0)) is not None:
            taken.append(job.id)
            store.succeed(job)
        return taken

    with ThreadPoolExecutor(6) as pool:
        runs = list(pool.map(work, range(6)))
    taken = [job_id for run in runs for job_id in run]
    assert sorted(taken) == sorted({j.id for j in store.list()})
    assert len(taken) == 20
    assert {j.state for j in store.list()} == {"succeeded"}
