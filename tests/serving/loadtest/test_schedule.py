"""The open-loop schedule, a step's figures and stepping up (serving/loadtest/schedule.py),
on a fake clock: no sleeps, no timing."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from setpoint.serving.loadtest._client import TRANSPORT_ERROR
from setpoint.serving.loadtest.schedule import (
    StepResult,
    StepStats,
    intended_times,
    offer_on_schedule,
    rates,
    step_up,
    summarize,
)


class FakeClock:
    """Time moves only when the scheduler sleeps; ``late`` makes chosen wake-ups late."""

    def __init__(self, start: float = 100.0, late: dict[int, float] | None = None) -> None:
        self.t = start
        self.late = late or {}
        self.sleeps = 0

    def now(self) -> float:
        return self.t

    async def sleep_until(self, when: float) -> None:
        self.t = max(self.t, when) + self.late.get(self.sleeps, 0.0)
        self.sleeps += 1


def run_schedule(clock: FakeClock, rate: float, seconds: float, **kwargs: object) -> list:
    offered: list[tuple[float, float]] = []  # (intended, clock when offered)
    lags: list[float] = []
    asyncio.run(
        offer_on_schedule(
            clock,
            intended_times(clock.now(), rate, seconds),
            lambda intended: offered.append((intended, clock.now())),
            lag=lags.append,
            **kwargs,  # type: ignore[arg-type]
        )
    )
    return [offered, lags]


def test_requests_are_offered_at_their_intended_times() -> None:
    offered, lags = run_schedule(FakeClock(start=100.0), rate=10, seconds=1)
    assert [i for i, _ in offered] == pytest.approx([100 + k / 10 for k in range(10)])
    assert all(at == pytest.approx(intended) for intended, at in offered)
    assert lags == pytest.approx([0.0] * 9)  # the first is due at once: no sleep


def test_a_late_wake_up_offers_the_overdue_requests_with_their_intended_times() -> None:
    # The third sleep (to 100.3) wakes 0.25 s late: 100.3, 100.4 and 100.5 are then due.
    offered, lags = run_schedule(FakeClock(start=100.0, late={2: 0.25}), rate=10, seconds=1)
    intended = [i for i, _ in offered]
    assert intended == pytest.approx([100 + k / 10 for k in range(10)])  # none skipped
    late = [(i, at) for i, at in offered if at > i + 1e-9]
    assert [i for i, _ in late] == pytest.approx([100.3, 100.4, 100.5])
    assert all(at == pytest.approx(100.55) for _, at in late)  # sent together, late
    assert max(lags) == pytest.approx(0.25)  # and the generator's lateness is kept


def test_offering_stops_when_told() -> None:
    offered: list[float] = []
    clock = FakeClock()
    n = asyncio.run(
        offer_on_schedule(
            clock,
            intended_times(clock.now(), 100, 1),
            offered.append,
            stop=lambda: len(offered) >= 5,
        )
    )
    assert n == len(offered) == 5


def test_latency_is_counted_from_the_intended_time() -> None:
    stats = StepStats(rate=10, objective_ms=50, planned=3)
    stats.record(intended=100.0, latency=0.010, status=200)
    stats.record(intended=100.1, latency=0.030, status=200)
    stats.record(intended=100.2, latency=0.200, status=200)  # queued behind a stall
    result = summarize(stats, started=100.0, offered_for=0.3)
    assert result.max_ms == pytest.approx(200, rel=1e-3)
    assert result.p50_ms == pytest.approx(30, rel=1e-3)
    assert stats.slow == 1
    assert not result.met  # its p99 is the 200 ms answer


def test_errors_are_counted_and_break_the_step() -> None:
    stats = StepStats(rate=10, objective_ms=50, planned=6)
    for status in (200, 200, 429, 503, 500, TRANSPORT_ERROR):
        stats.record(intended=1.0, latency=0.001, status=status)
    result = summarize(stats, started=1.0, offered_for=0.6)
    assert result.errors == 4
    assert result.statuses == {"429": 1, "500": 1, "503": 1, "transport": 1}
    assert (result.ok, result.answered, result.sent) == (2, 5, 6)
    assert stats.broken
    assert not result.met


def test_a_step_is_broken_once_its_p99_cannot_be_met() -> None:
    stats = StepStats(rate=1000, objective_ms=50, planned=1000)
    for _ in range(10):
        stats.record(intended=0.0, latency=0.060, status=200)
    assert not stats.broken  # 1 % of the planned requests slow: the p99 may still hold
    stats.record(intended=0.0, latency=0.060, status=200)
    assert stats.broken


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.0001, 5.0), min_size=1, max_size=300))
def test_percentiles_agree_with_numpy_within_the_histogram_precision(values: list[float]) -> None:
    stats = StepStats(rate=1, objective_ms=1e9, planned=len(values))
    for v in values:
        stats.record(intended=0.0, latency=v, status=200)
    result = summarize(stats, started=0.0, offered_for=1.0)
    micros = np.maximum(1, np.round(np.asarray(values) * 1e6))
    for got, p in ((result.p50_ms, 50), (result.p99_ms, 99)):
        expected = np.percentile(micros, p, method="inverted_cdf") / 1000
        assert got == pytest.approx(expected, rel=2e-3, abs=2e-3)


def test_rates_step_from_start_to_max() -> None:
    assert rates(100, 100, 450) == [100, 200, 300, 400]
    assert rates(100, 50, 200) == [100, 150, 200]
    assert rates(300, 0, 300) == [300]  # --rate: one constant step


def _result(rate: float, met: bool) -> StepResult:
    return StepResult(
        rate=rate, seconds=1, sent=1, answered=1, ok=1, errors=0, statuses={}, achieved=rate,
        p50_ms=1, p90_ms=1, p99_ms=1, p999_ms=1, max_ms=1, lag_p99_ms=0, met=met,
        stopped_early=False,
    )  # fmt: skip


def test_stepping_stops_at_the_first_broken_step() -> None:
    ran: list[float] = []

    async def run_step(rate: float) -> StepResult:
        ran.append(rate)
        return _result(rate, met=rate < 300 or rate == 400)  # 400 would pass: never tried

    results, sustainable = asyncio.run(step_up([100, 200, 300, 400, 500], run_step))
    assert ran == [100, 200, 300]
    assert [r.met for r in results] == [True, True, False]
    assert sustainable == 200


def test_no_sustainable_rate_when_the_first_step_breaks() -> None:
    async def run_step(rate: float) -> StepResult:
        return _result(rate, met=False)

    results, sustainable = asyncio.run(step_up([100, 200], run_step))
    assert len(results) == 1
    assert sustainable is None


def test_a_result_reads_back_from_its_record() -> None:
    result = _result(250, met=True)
    assert StepResult.from_dict(result.to_dict()) == result


def test_requests_never_sent_fail_the_step() -> None:
    stats = StepStats(rate=10, objective_ms=50, planned=10)
    for k in range(7):
        stats.record(intended=k / 10, latency=0.002, status=200)
    stats.not_sent = 3  # still waiting for a connection when the step ended
    result = summarize(stats, started=0.0, offered_for=1.0)
    assert result.errors == 0
    assert not result.met
    assert result.stopped_early
