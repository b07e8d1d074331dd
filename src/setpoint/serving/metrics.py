"""Prometheus metrics of one server process.

Request counts by endpoint, model version, protocol and status, and a latency
histogram, are recorded as requests finish; batching figures, queue depth and the
served version are read from the endpoints at scrape time. Each app has its own
registry, so several apps (tests) in one process do not collide. With several
workers each process reports its own figures; aggregate them in Prometheus
(``sum by (endpoint)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from setpoint.serving.runtime import EndpointRuntime

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class _Endpoints(Collector):
    def __init__(self, runtimes: Callable[[], Mapping[str, EndpointRuntime]]) -> None:
        self._runtimes = runtimes

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        batches = CounterMetricFamily(
            "setpoint_batches", "Predict calls made by the micro-batcher.", labels=["endpoint"]
        )
        batched = CounterMetricFamily(
            "setpoint_batched_requests", "Requests answered through a batch.", labels=["endpoint"]
        )
        depth = GaugeMetricFamily(
            "setpoint_queue_depth", "Requests waiting for the next batch.", labels=["endpoint"]
        )
        last = GaugeMetricFamily(
            "setpoint_last_batch_requests", "Requests in the latest batch.", labels=["endpoint"]
        )
        version = GaugeMetricFamily(
            "setpoint_served_version",
            "Model version an endpoint serves.",
            labels=["endpoint", "model"],
        )
        for name, runtime in sorted(self._runtimes().items()):
            stats = runtime.batcher.stats
            batches.add_metric([name], stats.batches)
            batched.add_metric([name], stats.items)
            depth.add_metric([name], runtime.batcher.queue_depth)
            last.add_metric([name], stats.last_batch_size)
            model = runtime.model.version
            version.add_metric([name, model.name], model.version)
        yield from (batches, batched, depth, last, version)


class ServingMetrics:
    def __init__(self, runtimes: Callable[[], Mapping[str, EndpointRuntime]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "setpoint_requests",
            "Prediction requests answered, by endpoint, model version, protocol and status.",
            ["endpoint", "version", "protocol", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "setpoint_request_seconds",
            "Time from a prediction request's arrival to its answer.",
            ["endpoint", "protocol"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_Endpoints(runtimes))
        # The labelled children, looked up once per label set: labels() costs more
        # than the increment itself.
        self._children: dict[tuple[str, int | None, str, int], tuple[Any, Any]] = {}

    def observe(
        self, endpoint: str, version: int | None, protocol: str, status: int, seconds: float
    ) -> None:
        key = (endpoint, version, protocol, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(endpoint, str(version or ""), protocol, str(status)),
                self.latency.labels(endpoint, protocol),
            )
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
