"""The meter shares what the process spent out over the records it stamps."""

from __future__ import annotations

from typing import Any

import pytest

from setpoint.cost import Prices
from setpoint.serving.meter import Meter, ThreadClock


class Ticks:
    def __init__(self) -> None:
        self.cpu, self.wall, self.memory = 0.0, 0.0, 2e9

    def meter(self) -> Meter:
        return Meter(
            Prices(cpu_hour=3.6, gb_hour=0.36),
            cpu=lambda: self.cpu,
            clock=lambda: self.wall,
            memory=lambda: self.memory,
        )


def records(n: int, *, route: str = "champion", cached: bool = False, model_ms: float = 0.5):
    out: list[dict[str, Any]] = []
    for _ in range(n):
        record: dict[str, Any] = {"model": "m", "version": 1, "route": route, "cached": cached}
        if not cached:
            record["model_cpu_ms"] = model_ms
        out.append(record)
    return out


def test_each_record_gets_its_share_of_the_process_since_the_last_stamp() -> None:
    ticks = Ticks()
    meter = ticks.meter()
    ticks.cpu, ticks.wall = 0.004, 2.0  # 4 ms of CPU and 2 s with 2 GB held
    batch = records(4)
    meter.stamp("e", batch)
    assert [r["cpu_ms"] for r in batch] == [1.0] * 4
    # The resident size is read again only after a second: 2 GB for 2 s, over 4 rows.
    assert [r["mem_gb_s"] for r in batch] == [1.0] * 4
    usage = meter.usage[("e", "m", 1, "champion")]
    assert (usage.rows, usage.cached_rows) == (4, 0)
    assert usage.cpu_seconds == pytest.approx(0.004)
    assert usage.model_cpu_seconds == pytest.approx(0.002)
    assert usage.gb_seconds == pytest.approx(4.0)
    assert meter.cost(usage) == pytest.approx((0.004 * 3.6 + 4.0 * 0.36) / 3600)


def test_cache_hits_use_no_model_cpu_and_count_what_they_saved() -> None:
    ticks = Ticks()
    meter = ticks.meter()
    ticks.cpu = 0.002
    meter.stamp("e", records(2, model_ms=0.75))
    ticks.cpu = 0.003
    hits = records(3, cached=True)
    meter.stamp("e", hits)
    assert [r["model_cpu_ms"] for r in hits] == [0.0] * 3
    usage = meter.usage[("e", "m", 1, "champion")]
    assert (usage.rows, usage.cached_rows) == (5, 3)
    assert usage.model_cpu_seconds == pytest.approx(0.0015)
    assert usage.saved_cpu_seconds == pytest.approx(3 * 0.00075)


def test_start_up_and_model_loads_are_left_out_and_shadow_copies_counted_apart() -> None:
    ticks = Ticks()
    meter = ticks.meter()
    ticks.cpu = 5.0  # loading models
    meter.leave_out()
    ticks.cpu = 5.001
    meter.stamp("e", records(1, route="shadow"))
    assert meter.usage[("e", "m", 1, "shadow")].cpu_seconds == pytest.approx(0.001)
    assert ("e", "m", 1, "champion") not in meter.usage


def test_the_thread_clock_adds_up_what_its_blocks_took() -> None:
    clock = ThreadClock()
    with clock:
        sum(i * i for i in range(20_000))
    first = clock.seconds
    with clock:
        pass
    assert clock.seconds >= first > 0
