"""The per-request metrics of a single-process server: a plain tally, rendered at scrape.

Every prediction request adds one to a request counter and one observation to a
latency histogram. Through prometheus_client's ``Counter`` and ``Histogram`` that is
three locked increments and a linear scan of the buckets, about as much work as the
rest of the request's bookkeeping (measured with ``bench/serving.py``; see
docs/benchmarks.md). A server with one process does not need the locks (requests
are counted on the event loop) nor a value per increment: this tally keeps counts,
sums and bucket counts in plain Python and hands them to the registry as metric
families when ``/metrics`` is scraped, so a scrape always sees every request.

Several workers record through prometheus_client's own classes instead, since their
values must reach the shared files at once for any worker's scrape to count them
(``metrics.ServingMetrics``).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# endpoint, version ("" when none answered), protocol, status
Key = tuple[str, str, str, str]


class _Latency:
    """One endpoint and protocol's observations: count, sum, and count per bucket."""

    __slots__ = ("buckets", "count", "total")

    def __init__(self, n_buckets: int) -> None:
        self.count = 0
        self.total = 0.0
        self.buckets = [0] * n_buckets  # not cumulative


class _Requests:
    """One label set's request count, and the latency it adds to."""

    __slots__ = ("count", "latency")

    def __init__(self, latency: _Latency) -> None:
        self.count = 0
        self.latency = latency


class RequestTally(Collector):
    """Requests by endpoint, version, protocol and status, and their latency."""

    def __init__(
        self,
        requests: tuple[str, str],
        latency: tuple[str, str],
        buckets: Sequence[float],
    ) -> None:
        self._requests_doc = requests  # (name, help)
        self._latency_doc = latency
        self._bounds = (*buckets, math.inf)
        self._requests: dict[Key, _Requests] = {}
        self._latency: dict[tuple[str, str], _Latency] = {}  # by endpoint and protocol

    def observe(self, key: Key, seconds: float) -> None:
        requests = self._requests.get(key)
        if requests is None:
            latency = self._latency.setdefault((key[0], key[2]), _Latency(len(self._bounds)))
            requests = self._requests[key] = _Requests(latency)
        requests.count += 1
        latency = requests.latency
        latency.count += 1
        latency.total += seconds
        latency.buckets[bisect_left(self._bounds, seconds)] += 1

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            *self._requests_doc, labels=["endpoint", "version", "protocol", "status"]
        )
        for key, entry in sorted(self._requests.items()):
            requests.add_metric(list(key), entry.count)
        latency = HistogramMetricFamily(*self._latency_doc, labels=["endpoint", "protocol"])
        for labels, tally in sorted(self._latency.items()):
            cumulative, buckets = 0, []
            for bound, n in zip(self._bounds, tally.buckets, strict=True):
                cumulative += n
                buckets.append((floatToGoString(bound), cumulative))  # type: ignore[no-untyped-call]
            latency.add_metric(list(labels), buckets, tally.total)
        yield requests
        yield latency
