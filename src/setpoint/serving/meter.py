"""What serving a prediction costs, measured as it is served.

Each batch a lane predicts is timed with its thread's CPU clock around the model's
calls (``model`` CPU: the prediction and any explanation). When the batch's records
are logged, the meter shares out over them what the whole process spent since the
previous records it stamped: CPU seconds (``time.process_time``, every thread:
HTTP, parsing, the contract, batching, the log, metrics, the model) and memory
held over that time (resident size times the seconds elapsed). Each prediction
record carries its share:

- ``cpu_ms``: the process's CPU time, in milliseconds, the model's included;
- ``model_cpu_ms``: the model's part (0 for an answer from the cache);
- ``mem_gb_s``: GB-seconds of memory held.

Summed over a window's records they add up to what the process spent in that time,
whoever it served, so a cost per 1,000 predictions is the sum's price over the
rows. Work done while idle (the refresh of deployments, the collector) lands on
the next records, as an idle server's memory does: an endpoint with little traffic
costs more per prediction, which is true. Several workers each measure their own
process; the monitors add them up from the log.

The meter also keeps totals per endpoint, model version and route since the
process started, which ``/metrics`` turns into counters (``serving/metrics.py``),
and what cache hits saved: each hit's rows at the mean model CPU per row that
version has needed in this process.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from setpoint.cost import Prices

# The resident size is read at most this often (a file read costs microseconds; the
# size moves slowly).
_MEMORY_EVERY_S = 1.0
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> float:
    """This process's resident memory now (Linux), or its peak where that is all the
    system tells."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return float(int(f.read().split()[1]) * _PAGE)
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return float(peak if sys.platform == "darwin" else peak * 1024)


@dataclass
class Usage:
    """What one endpoint's model version spent on one route since the process started."""

    rows: int = 0
    cached_rows: int = 0
    cpu_seconds: float = 0.0
    model_cpu_seconds: float = 0.0
    gb_seconds: float = 0.0
    saved_cpu_seconds: float = 0.0  # the model CPU cache hits did not spend

    def per_row_model_seconds(self) -> float:
        predicted = self.rows - self.cached_rows
        return self.model_cpu_seconds / predicted if predicted else 0.0


Key = tuple[str, str, int, str]  # endpoint, model, version, route


class Meter:
    """Shares the process's CPU time and memory out over the records it stamps."""

    def __init__(
        self,
        prices: Prices,
        *,
        cpu: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.monotonic,
        memory: Callable[[], float] = resident_bytes,
    ) -> None:
        self.prices = prices
        self._cpu, self._clock, self._memory = cpu, clock, memory
        self._last_cpu = cpu()
        self._last_wall = self._memory_at = clock()
        self._resident = memory()
        self.usage: dict[Key, Usage] = {}

    def leave_out(self) -> None:
        """Leave the CPU time spent since the last stamp out of every share: start-up
        and loading a model are not the cost of predictions (the memory they leave
        held is)."""
        self._last_cpu = self._cpu()

    def stamp(self, endpoint: str, records: Sequence[dict[str, Any]]) -> None:
        """Give ``records`` (logged together) their share of what the process spent
        since the last stamp. Their ``model_cpu_ms`` is set already (by the lane that
        predicted them; absent: 0, an answer from the cache)."""
        n = len(records)
        if not n:
            return
        cpu, wall = self._cpu(), self._clock()
        spent = max(cpu - self._last_cpu, 0.0)
        elapsed = max(wall - self._last_wall, 0.0)
        self._last_cpu, self._last_wall = cpu, wall
        if wall - self._memory_at >= _MEMORY_EVERY_S:
            self._resident, self._memory_at = self._memory(), wall
        gb_seconds = self._resident / 1e9 * elapsed
        share, mem = spent / n, gb_seconds / n
        cpu_ms = share * 1000
        key: Key | None = None
        usage = Usage()
        for record in records:
            record["cpu_ms"] = cpu_ms
            record["mem_gb_s"] = mem
            model_ms = record.setdefault("model_cpu_ms", 0.0)
            this = (endpoint, record["model"], record["version"], record["route"])
            if this != key:  # one key for a whole batch, as a rule
                key = this
                usage = self.usage.get(key) or self.usage.setdefault(key, Usage())
            usage.rows += 1
            usage.cpu_seconds += share
            usage.model_cpu_seconds += model_ms / 1000
            usage.gb_seconds += mem
            if record["cached"]:
                usage.cached_rows += 1
                usage.saved_cpu_seconds += usage.per_row_model_seconds()

    def cost(self, usage: Usage) -> float:
        return self.prices.cost(usage.cpu_seconds, usage.gb_seconds)


class ThreadClock:
    """Thread CPU seconds spent inside ``with`` blocks, added up (one per batch)."""

    __slots__ = ("_start", "seconds")

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> ThreadClock:
        self._start = time.thread_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.thread_time() - self._start
