"""Open-loop arrival schedules, one step's figures, and stepping up until the
objective breaks.

Open loop: request ``i`` of a step at rate ``R`` is due at ``start + i / R`` whatever
the server does; the scheduler wakes, offers every request now due *with its intended
time*, and sleeps until the next one. A scheduler that wakes late (the generator's own
hiccup) still offers the late requests with their intended times, so the lateness
counts against the measured latency rather than vanishing; how late it woke is kept
apart (``lag``) so a run can say when the generator, not the server, fell behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hdrh.histogram import HdrHistogram

from setpoint.serving.loadtest._client import TRANSPORT_ERROR

# Latencies are kept in microseconds from 1 us to 10 minutes, 3 significant digits
# (HdrHistogram's usual precision: a p99 of 12.345 ms is known to 12.3 ms).
_LOWEST, _HIGHEST, _DIGITS = 1, 600_000_000, 3
# A step is given up as soon as its verdict is certain: this share of its planned
# requests already took longer than the objective means its p99 cannot meet it.
_TAIL = 0.01
_TICK = 0.001


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep_until(self, when: float) -> Awaitable[None]: ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` and the event loop's sleep, which wakes at
    least ``_TICK`` later: the loop's timers count whole milliseconds, and shorter
    sleeps spin the CPU the server may need. So requests go out in bursts of one
    millisecond's worth, up to a millisecond late, and that lateness is counted in
    their latency (as it is in wrk2's)."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep_until(self, when: float) -> None:
        await asyncio.sleep(max(_TICK, when - time.monotonic()))


def intended_times(start: float, rate: float, seconds: float) -> Iterator[float]:
    """When each request of a step is due: evenly spaced at ``rate`` a second."""
    n = round(rate * seconds)
    return (start + i / rate for i in range(n))


async def offer_on_schedule(
    clock: Clock,
    times: Iterator[float],
    offer: Callable[[float], None],
    *,
    lag: Callable[[float], None] = lambda _s: None,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Offer each of ``times`` once the clock reaches it; ``lag`` hears how late each
    wake-up was. Returns how many were offered (fewer when ``stop`` said so)."""
    offered = 0
    due = next(times, None)
    while due is not None:
        now = clock.now()
        if now < due:
            await clock.sleep_until(due)
            now = clock.now()
            lag(now - due)
        while due is not None and due <= now:
            offer(due)
            offered += 1
            due = next(times, None)
        if stop():
            break
    return offered


@dataclass
class StepStats:
    """What one step measured, recorded as answers come."""

    rate: float
    objective_ms: float
    planned: int
    latency: HdrHistogram = field(default_factory=lambda: HdrHistogram(_LOWEST, _HIGHEST, _DIGITS))
    lag: HdrHistogram = field(default_factory=lambda: HdrHistogram(_LOWEST, _HIGHEST, _DIGITS))
    answered: int = 0  # every request that got an HTTP answer
    ok: int = 0  # 2xx
    statuses: dict[int, int] = field(default_factory=dict)  # non-2xx, by status
    transport_errors: int = 0  # refused, reset, timed out: no answer
    slow: int = 0  # answers (or failures) later than the objective
    not_sent: int = 0  # left in the backlog when the step was given up
    first_answer: float | None = None
    last_answer: float | None = None

    def record(self, intended: float, latency: float, status: int) -> None:
        micros = max(_LOWEST, min(_HIGHEST, round(latency * 1e6)))
        self.latency.record_value(micros)
        if latency * 1000 > self.objective_ms:
            self.slow += 1
        if status == TRANSPORT_ERROR:
            self.transport_errors += 1
            return
        self.answered += 1
        done = intended + latency
        self.first_answer = done if self.first_answer is None else self.first_answer
        self.last_answer = done
        if 200 <= status < 300:
            self.ok += 1
        else:
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def record_lag(self, seconds: float) -> None:
        self.lag.record_value(max(_LOWEST, min(_HIGHEST, round(seconds * 1e6))))

    @property
    def errors(self) -> int:
        return self.transport_errors + sum(self.statuses.values())

    @property
    def broken(self) -> bool:
        """Certain to fail already: an error, or too many slow answers for the p99."""
        return self.errors > 0 or self.slow > _TAIL * self.planned


@dataclass(frozen=True)
class StepResult:
    """One step's figures, as recorded and shown."""

    rate: float  # offered, requests a second
    seconds: float  # how long requests were offered
    sent: int
    answered: int
    ok: int
    errors: int
    statuses: dict[str, int]  # non-2xx and "transport", by kind
    achieved: float  # answers a second
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    lag_p99_ms: float  # how late the generator itself woke (its own limit)
    met: bool  # p99 within the objective and no errors
    stopped_early: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "seconds": self.seconds,
            "sent": self.sent,
            "answered": self.answered,
            "ok": self.ok,
            "errors": self.errors,
            "statuses": self.statuses,
            "achieved": self.achieved,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "p999_ms": self.p999_ms,
            "max_ms": self.max_ms,
            "lag_p99_ms": self.lag_p99_ms,
            "met": self.met,
            "stopped_early": self.stopped_early,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepResult:
        return cls(**data)


def summarize(stats: StepStats, *, started: float, offered_for: float) -> StepResult:
    """A step's figures from what it recorded. ``achieved`` counts answers over the
    time from the step's start to its last answer (at least the offering time)."""

    def ms(histogram: HdrHistogram, percentile: float) -> float:
        if histogram.get_total_count() == 0:
            return 0.0
        return float(histogram.get_value_at_percentile(percentile)) / 1000

    span = offered_for
    if stats.last_answer is not None:
        span = max(span, stats.last_answer - started)
    statuses = {str(k): v for k, v in sorted(stats.statuses.items())}
    if stats.transport_errors:
        statuses["transport"] = stats.transport_errors
    p99 = ms(stats.latency, 99)
    sent = stats.answered + stats.transport_errors
    return StepResult(
        rate=stats.rate,
        seconds=round(offered_for, 3),
        sent=sent,
        answered=stats.answered,
        ok=stats.ok,
        errors=stats.errors,
        statuses=statuses,
        achieved=stats.answered / span if span > 0 else 0.0,
        p50_ms=ms(stats.latency, 50),
        p90_ms=ms(stats.latency, 90),
        p99_ms=p99,
        p999_ms=ms(stats.latency, 99.9),
        max_ms=float(stats.latency.get_max_value()) / 1000 if sent else 0.0,
        lag_p99_ms=ms(stats.lag, 99),
        met=stats.errors == 0 and stats.not_sent == 0 and sent > 0 and p99 <= stats.objective_ms,
        stopped_early=stats.not_sent > 0 or sent < stats.planned,
    )


def rates(start: float, step: float, maximum: float) -> list[float]:
    """The offered rates: ``start``, ``start + step``, ... up to ``maximum``."""
    out, rate = [], start
    while rate <= maximum * (1 + 1e-9):
        out.append(round(rate, 6))
        if step <= 0:
            break
        rate += step
    return out


async def step_up(
    steps: Sequence[float], run_step: Callable[[float], Awaitable[StepResult]]
) -> tuple[list[StepResult], float | None]:
    """Run the steps in order until one fails to meet the objective (that one is run
    and kept: it shows where the server broke). Returns the results and the
    sustainable rate: the highest step met, None when the first one failed."""
    results: list[StepResult] = []
    sustainable: float | None = None
    for rate in steps:
        result = await run_step(rate)
        results.append(result)
        if not result.met:
            break
        sustainable = rate
    return results, sustainable
