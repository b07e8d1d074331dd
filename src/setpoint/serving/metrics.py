"""Prometheus metrics of a server, correct with one worker or several.

Requests (by endpoint, model version, protocol and status), their latency, cache
lookups, fallbacks, shed requests and routing are counted as they happen. Figures
that live in the endpoints and the prediction log (batches, queue depth, latest
batch size, served version, circuit state, log lag) are copied into metrics by
``sample()``: at every scrape, and once a second while several workers serve.

One worker, and every app a test builds: each app records into a registry of its
own, so several apps in one process do not collide.

Several workers (``setpoint serve --workers N``): ``serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before the workers start, so
prometheus_client in each worker records into per-process files there, and
``/metrics`` merges them all: whichever worker answers reports the totals of every
worker. Gauges say how the workers' values combine (queue depths add up, the others
take the largest) and count only live workers. One app per process in this mode:
two would write the same per-process slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from setpoint.cost import Prices
from setpoint.serving._requests import RequestTally
from setpoint.serving.meter import Meter, Usage

if TYPE_CHECKING:
    from setpoint.serving.batcher import BatchStats
    from setpoint.serving.runtime import EndpointRuntime

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
SAMPLE_SECONDS = 1.0
# canary_error: the champion answered a canary request the canary failed.
FALLBACK_REASONS = frozenset({"circuit_open", "model_error", "latency_budget", "canary_error"})
ROUTES = frozenset({"champion", "canary", "shadow", "fallback", "cache"})
_Mode = Literal["livesum", "livemax", "liveall"]
_CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

logger = logging.getLogger("setpoint.serving")


def multiprocess_dir() -> str | None:
    """The directory this process records its metrics into; None when they stay in memory.

    prometheus_client decides at import whether values go to files, so the variable
    alone does not tell: set after the import, it changes nothing in this process.
    """
    path = os.environ.get(MULTIPROC_DIR)
    return path if path and getattr(values.ValueClass, "_multiprocess", False) else None


class _Sampled:
    """One endpoint's sampled series, and the batch counts already added to its counters."""

    def __init__(self, metrics: ServingMetrics, endpoint: str) -> None:
        self.depth = metrics.queue_depth.labels(endpoint)
        self.last = metrics.last_batch.labels(endpoint)
        self.batches = metrics.batches.labels(endpoint)
        self.batched = metrics.batched.labels(endpoint)
        self.stats: BatchStats | None = None
        self.seen_batches = 0
        self.seen_items = 0
        self.version: tuple[str, Gauge] | None = None  # (model, child)
        self.circuit: tuple[str, Gauge] | None = None


class _Metered:
    """One endpoint version route's cost series, and the totals already added to them."""

    def __init__(self, metrics: ServingMetrics, labels: tuple[str, str, str, str]) -> None:
        self.rows = metrics.predicted_rows.labels(*labels)
        self.model = metrics.cpu_seconds.labels(*labels, "model")
        self.server = metrics.cpu_seconds.labels(*labels, "server")
        self.memory = metrics.memory_gb_seconds.labels(*labels)
        self.cost = metrics.cost.labels(*labels)
        self.saved = metrics.cache_saved.labels(*labels)
        self.per_1000 = metrics.cost_per_1000.labels(*labels)
        self.seen = Usage()

    def add(self, usage: Usage, prices: Prices) -> None:
        seen = self.seen
        model = usage.model_cpu_seconds - seen.model_cpu_seconds
        cpu = usage.cpu_seconds - seen.cpu_seconds
        memory = usage.gb_seconds - seen.gb_seconds
        self.rows.inc(usage.rows - seen.rows)
        self.model.inc(max(model, 0.0))
        self.server.inc(max(cpu - model, 0.0))
        self.memory.inc(memory)
        self.cost.inc(prices.cost(cpu, memory))
        self.saved.inc(prices.cost(usage.saved_cpu_seconds - seen.saved_cpu_seconds))
        if usage.rows:
            self.per_1000.set(prices.cost(usage.cpu_seconds, usage.gb_seconds) / usage.rows * 1000)
        self.seen = replace(usage)


class ServingMetrics:
    def __init__(
        self,
        runtimes: Callable[[], Mapping[str, EndpointRuntime]],
        log: object = None,
        meter: Meter | None = None,
    ) -> None:
        self._runtimes = runtimes
        self._meter = meter
        self._dir = multiprocess_dir()
        # Metrics record here; with several workers the merged files are rendered instead.
        recording = CollectorRegistry()
        if self._dir is None:
            self.registry = recording
        else:
            self.registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.registry, path=self._dir)  # type: ignore[no-untyped-call]

        def counter(name: str, doc: str, labels: list[str]) -> Counter:
            return Counter(name, doc, labels, registry=recording)

        def gauge(name: str, doc: str, labels: list[str], mode: _Mode) -> Gauge:
            return Gauge(name, doc, labels, registry=recording, multiprocess_mode=mode)

        endpoint = ["endpoint"]
        requests = (
            "setpoint_requests",
            "Prediction requests answered, by endpoint, model version, protocol and status.",
        )
        latency = (
            "setpoint_request_seconds",
            "Time from a prediction request's arrival to its answer.",
        )
        # One process: a plain tally, read at scrape (``_requests``). Several: values in
        # the shared files as they happen, so that any worker's scrape counts them all.
        self._tally: RequestTally | None = None
        self._children: dict[tuple[str, int | None, str, int], tuple[Counter, Histogram]] = {}
        if self._dir is None:
            self._tally = RequestTally(requests, latency, _LATENCY_BUCKETS)
            recording.register(self._tally)
        else:
            self.requests = counter(*requests, ["endpoint", "version", "protocol", "status"])
            self.latency = Histogram(
                *latency, ["endpoint", "protocol"], buckets=_LATENCY_BUCKETS, registry=recording
            )
        self.cache_requests = counter(
            "setpoint_cache_requests", "Prediction cache lookups, by result.", [*endpoint, "result"]
        )
        self.fallbacks = counter(
            "setpoint_fallbacks",
            "Requests answered by the fallback, by reason.",
            [*endpoint, "reason"],
        )
        self.shed_requests = counter(
            "setpoint_shed_requests", "Requests refused with 503 to shed load.", endpoint
        )
        self.routed_requests = counter(
            "setpoint_routed_requests",
            "Requests by the route that answered them (champion, canary, shadow, fallback, cache).",
            [*endpoint, "route"],
        )
        self.batches = counter(
            "setpoint_batches", "Predict calls made by the micro-batcher.", endpoint
        )
        self.batched = counter(
            "setpoint_batched_requests", "Requests answered through a batch.", endpoint
        )
        self.queue_depth = gauge(
            "setpoint_queue_depth", "Requests waiting for the next batch.", endpoint, "livesum"
        )
        self.last_batch = gauge(
            "setpoint_last_batch_requests",
            "Requests in the latest batch (the largest of the workers').",
            endpoint,
            "livemax",
        )
        self.served_version = gauge(
            "setpoint_served_version",
            "Model version an endpoint serves (the highest of the workers').",
            [*endpoint, "model"],
            "livemax",
        )
        self.circuit = gauge(
            "setpoint_circuit_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open (the worst of the workers').",
            [*endpoint, "model"],
            "livemax",
        )
        # What predictions cost (``serving/meter.py``), copied from the meter's totals
        # at each sample: counters to rate, and each version's cost per 1,000 so far.
        version = [*endpoint, "model", "version", "route"]
        self.predicted_rows = counter(
            "setpoint_predicted_rows", "Rows answered and logged, cache hits included.", version
        )
        self.cpu_seconds = counter(
            "setpoint_cpu_seconds",
            "CPU seconds of the server process shared out over the rows answered, by part: "
            "model (the model's calls) or server (everything around them).",
            [*version, "part"],
        )
        self.memory_gb_seconds = counter(
            "setpoint_memory_gb_seconds",
            "GB-seconds of the server process's resident memory, shared out over the rows.",
            version,
        )
        self.cost = counter(
            "setpoint_cost",
            "What the rows cost at the prices configured (cpu_hour_price, gb_hour_price); "
            "rate it over setpoint_predicted_rows_total for a cost per prediction.",
            version,
        )
        self.cache_saved = counter(
            "setpoint_cache_saved_cost",
            "What cache hits saved: their rows at the model's mean CPU cost per row.",
            version,
        )
        self.cost_per_1000 = gauge(
            "setpoint_cost_per_1000_predictions",
            "Cost of 1,000 rows since this worker started, at the prices configured.",
            version,
            "liveall",
        )
        self._metered: dict[tuple[str, str, int, str], _Metered] = {}
        # Each worker counts itself once: the live ones add up to how many serve, which
        # `setpoint loadtest` reads to give its figures per core.
        self.workers = Gauge(
            "setpoint_workers",
            "Worker processes serving (setpoint serve --workers), live ones.",
            registry=recording,
            multiprocess_mode="livesum",
        )
        self.workers.set(1)
        # The log's lag is reported only when the log can tell it.
        self._pending_age: Callable[[], float | None] | None = getattr(log, "pending_age", None)
        self.log_lag = (
            None
            if self._pending_age is None
            else Gauge(
                "setpoint_log_lag_seconds",
                "Age of the oldest prediction record not yet durable in the log "
                "(the oldest of the workers').",
                registry=recording,
                multiprocess_mode="livemax",
            )
        )
        # Labelled children, looked up once per label set: labels() costs more than
        # the increment itself.
        self._cache: dict[tuple[str, bool], Counter] = {}
        self._fallback: dict[tuple[str, str], Counter] = {}
        self._shed: dict[str, Counter] = {}
        self._routed: dict[tuple[str, str], Counter] = {}
        self._sampled: dict[str, _Sampled] = {}
        self._sampler: asyncio.Task[None] | None = None

    @property
    def multiprocess(self) -> bool:
        """Whether this process records into files shared with other workers."""
        return self._dir is not None

    # Recording, on the hot path.

    def observe(
        self, endpoint: str, version: int | None, protocol: str, status: int, seconds: float
    ) -> None:
        if self._tally is not None:
            self._tally.observe((endpoint, str(version or ""), protocol, str(status)), seconds)
            return
        key = (endpoint, version, protocol, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(endpoint, str(version or ""), protocol, str(status)),
                self.latency.labels(endpoint, protocol),
            )
        children[0].inc()
        children[1].observe(seconds)

    def cache(self, endpoint: str, hit: bool) -> None:
        """One prediction cache lookup."""
        key = (endpoint, hit)
        child = self._cache.get(key)
        if child is None:
            child = self._cache[key] = self.cache_requests.labels(
                endpoint, "hit" if hit else "miss"
            )
        child.inc()

    def fallback(self, endpoint: str, reason: str) -> None:
        """One request answered by the fallback (circuit_open, model_error or
        latency_budget), or by the champion for a failed canary (canary_error)."""
        key = (endpoint, reason)
        child = self._fallback.get(key)
        if child is None:
            _check("fallback reason", reason, FALLBACK_REASONS)
            child = self._fallback[key] = self.fallbacks.labels(endpoint, reason)
        child.inc()

    def shed(self, endpoint: str) -> None:
        """One request refused with 503 to shed load."""
        child = self._shed.get(endpoint)
        if child is None:
            child = self._shed[endpoint] = self.shed_requests.labels(endpoint)
        child.inc()

    def routed(self, endpoint: str, route: str, n: int = 1) -> None:
        """``n`` requests answered by ``route`` (champion, canary, shadow, fallback, cache)."""
        key = (endpoint, route)
        child = self._routed.get(key)
        if child is None:
            _check("route", route, ROUTES)
            child = self._routed[key] = self.routed_requests.labels(endpoint, route)
        child.inc(n)

    # Sampling the live figures.

    def sample(self) -> None:
        """Copy the endpoints' and the log's current figures into the metrics."""
        for name, runtime in self._runtimes().items():
            sampled = self._sampled.get(name)
            if sampled is None:
                sampled = self._sampled[name] = _Sampled(self, name)
            stats = runtime.batcher.stats
            if stats is not sampled.stats:  # a new runtime (batching changed) counts from 0
                sampled.stats, sampled.seen_batches, sampled.seen_items = stats, 0, 0
            sampled.batches.inc(stats.batches - sampled.seen_batches)
            sampled.batched.inc(stats.items - sampled.seen_items)
            sampled.seen_batches, sampled.seen_items = stats.batches, stats.items
            sampled.depth.set(runtime.batcher.queue_depth)
            sampled.last.set(stats.last_batch_size)
            model = runtime.model.version
            sampled.version = self._set(
                self.served_version, sampled.version, name, model.name, model.version
            )
            circuit_state = getattr(runtime, "circuit_state", None)  # not every runtime has one
            code = None if circuit_state is None else _circuit_code(circuit_state())
            if code is not None:
                sampled.circuit = self._set(self.circuit, sampled.circuit, name, model.name, code)
        if self._pending_age is not None and self.log_lag is not None:
            self.log_lag.set(self._pending_age() or 0.0)
        if self._meter is not None:
            self._sample_cost(self._meter)

    def _sample_cost(self, meter: Meter) -> None:
        prices = meter.prices
        for key, usage in list(meter.usage.items()):
            metered = self._metered.get(key)
            if metered is None:
                labels = (key[0], key[1], str(key[2]), key[3])
                metered = self._metered[key] = _Metered(self, labels)
            metered.add(usage, prices)

    def _set(
        self,
        gauge: Gauge,
        current: tuple[str, Gauge] | None,
        endpoint: str,
        model: str,
        value: float,
    ) -> tuple[str, Gauge]:
        """Set the endpoint's series for ``model``, retiring the one of a model it left."""
        if current is None or current[0] != model:
            if current is not None:
                if self.multiprocess:  # prometheus_client cannot remove a series from the files
                    current[1].set(0)
                else:
                    gauge.remove(endpoint, current[0])
            current = (model, gauge.labels(endpoint, model))
        current[1].set(value)
        return current

    def start(self) -> None:
        """With several workers, sample once a second (on the running event loop), so
        whichever worker answers a scrape reports this one's live figures fresh."""
        if self.multiprocess and self._sampler is None:
            self._sampler = asyncio.ensure_future(self._sample_forever())

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_SECONDS)
            try:
                self.sample()
            except Exception:  # a failing figure must not stop the others being sampled
                logger.exception("sampling the serving metrics failed")

    def close(self) -> None:
        """Stop sampling. With several workers, add the last batch counts and drop this
        worker's live gauges, which would otherwise outlive it."""
        if self._sampler is not None:
            self._sampler.cancel()
            self._sampler = None
        if self._dir is not None:
            self.sample()
            multiprocess.mark_process_dead(os.getpid(), self._dir)  # type: ignore[no-untyped-call]

    def counts(self) -> dict[str, dict[str, int]]:
        """Per endpoint, the prediction requests answered since the server started (by
        every worker, with several): ``requests``, ``errors`` (5xx) and ``refused``
        (4xx), for the dashboard."""
        out: dict[str, dict[str, int]] = {}
        for family in self.registry.collect():
            if family.name != "setpoint_requests":
                continue
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                tally = out.setdefault(
                    sample.labels["endpoint"], {"requests": 0, "errors": 0, "refused": 0}
                )
                n = int(sample.value)
                tally["requests"] += n
                status = sample.labels.get("status", "")
                if status.startswith("5"):
                    tally["errors"] += n
                elif status.startswith("4"):
                    tally["refused"] += n
        return out

    def render(self) -> bytes:
        self.sample()
        if self._dir is not None:
            self._forget_dead_workers(self._dir)
        return bytes(generate_latest(self.registry))

    @staticmethod
    def _forget_dead_workers(path: str) -> None:
        """Drop the live gauges of workers that died without closing (killed)."""
        if os.name != "posix":  # os.kill(pid, 0) probes only on POSIX
            return
        for file in glob.glob(os.path.join(path, "gauge_live*_*.db")):
            pid = os.path.basename(file)[: -len(".db")].rpartition("_")[2]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                with contextlib.suppress(FileNotFoundError):  # another worker was quicker
                    multiprocess.mark_process_dead(int(pid), path)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _check(what: str, value: str, allowed: frozenset[str]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(sorted(allowed))}")


def _circuit_code(state: object) -> int | None:
    """0 closed, 1 half-open, 2 open, from a name, an enum or a number; None if unknown."""
    for candidate in (getattr(state, "name", None), state, getattr(state, "value", None)):
        if isinstance(candidate, str):
            code = _CIRCUIT_STATES.get(candidate.lower().replace("-", "_").replace(" ", "_"))
            if code is not None:
                return code
        elif isinstance(candidate, int) and not isinstance(candidate, bool) and 0 <= candidate <= 2:
            return candidate
    return None
