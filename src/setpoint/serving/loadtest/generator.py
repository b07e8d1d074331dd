"""The load generator: a pool of connections fed on an open-loop schedule, step by step.

One event loop (uvloop when installed) runs the scheduler, the connections and a
ticker that aborts requests past ``timeout`` and reports progress. The cyclic garbage
collector is frozen and off while steps run: a collection pause in the generator
would be charged to the server as latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from setpoint.serving.loadtest._client import Pool
from setpoint.serving.loadtest.schedule import (
    Clock,
    MonotonicClock,
    StepResult,
    StepStats,
    intended_times,
    offer_on_schedule,
    step_up,
    summarize,
)

# (offered rate, fraction of the step done, the step's figures so far)
Progress = Callable[[float, float, StepStats], None]


def http_requests(
    host: str, port: int, path: str, records: Sequence[dict[str, Any]], key: str | None
) -> list[bytes]:
    """Whole HTTP/1.1 requests, one per record: ``POST path`` with ``{"records": [row]}``
    (NaN written as null), ready to write to a socket as they are."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nAccept: application/json\r\n"
        + (f"Authorization: Bearer {key}\r\n" if key else "")
    ).encode()
    out = []
    for record in records:
        body = orjson.dumps({"records": [record]}, option=orjson.OPT_SERIALIZE_NUMPY)
        out.append(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    return out


@dataclass(frozen=True)
class Settings:
    """How a run loads the server."""

    connections: int = 64
    seconds: float = 10.0  # per step
    warmup: float = 2.0  # at the first rate, before the first step; not recorded
    objective_ms: float = 50.0  # the p99 a step must meet
    timeout: float = 5.0  # a request without an answer this long is a transport error


class LoadGenerator:
    """Steps of open-loop load against ``host:port`` with ``requests`` in turn."""

    def __init__(
        self,
        host: str,
        port: int,
        requests: Sequence[bytes],
        settings: Settings,
        *,
        clock: Clock | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.host, self.port, self.requests = host, port, requests
        self.settings = settings
        self.clock = clock or MonotonicClock()
        self.progress = progress

    async def run(self, steps: Sequence[float]) -> tuple[list[StepResult], float | None]:
        """Open the connections, warm up, step up; (results, sustainable rate)."""
        s = self.settings
        stats = StepStats(steps[0], s.objective_ms, 0)
        pool = Pool(
            self.host,
            self.port,
            self.requests,
            size=s.connections,
            now=self.clock.now,
            outcome=lambda i, lat, st: stats.record(i, lat, st),
            timeout=s.timeout,
        )
        await pool.open()
        try:
            with _no_gc():
                if s.warmup > 0:
                    await self._step(pool, steps[0], s.warmup, report=False)
                return await step_up(steps, lambda rate: self._step(pool, rate, s.seconds))
        finally:
            pool.close()

    async def _step(
        self, pool: Pool, rate: float, seconds: float, *, report: bool = True
    ) -> StepResult:
        s = self.settings
        stats = StepStats(rate, s.objective_ms, round(rate * seconds))
        pool.dispatcher.outcome = stats.record
        started = self.clock.now()
        ticker = asyncio.get_running_loop().create_task(
            self._tick(pool, stats, started, seconds, report)
        )
        try:
            await offer_on_schedule(
                self.clock,
                intended_times(started, rate, seconds),
                pool.dispatcher.offer,
                lag=stats.record_lag,
                stop=lambda: stats.broken,
            )
            offered_for = min(seconds, self.clock.now() - started)
            if stats.broken:
                stats.not_sent = pool.dispatcher.drop_backlog()
            # What was sent gets its answers, or fails after the timeout.
            deadline = self.clock.now() + s.timeout + 0.5
            while pool.busy and self.clock.now() < deadline:
                await asyncio.sleep(0.005)
            # Still waiting for a connection (the server stopped taking them): never sent.
            stats.not_sent += pool.dispatcher.drop_backlog()
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        return summarize(stats, started=started, offered_for=offered_for)

    async def _tick(
        self, pool: Pool, stats: StepStats, started: float, seconds: float, report: bool
    ) -> None:
        while True:
            pool.expire()
            if report and self.progress is not None:
                done = min(1.0, (self.clock.now() - started) / seconds)
                self.progress(stats.rate, done, stats)
            await asyncio.sleep(0.1)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def run(generator: LoadGenerator, steps: Sequence[float]) -> tuple[list[StepResult], float | None]:
    """Run ``generator`` on a fresh event loop (uvloop's when installed)."""
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # uvicorn[standard] brings it on Linux and macOS, not Windows
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(generator.run(steps))
