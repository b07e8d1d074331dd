"""The prices every cost figure is computed at: a core-hour and a GB-hour.

Serving measures what each prediction used (CPU seconds, in the model and in the
server around it, and memory held over time: ``serving/meter.py``); the monitors,
``/metrics``, ``setpoint loadtest`` and ``setpoint optimize`` turn those amounts
into money with these two prices, the settings ``cpu_hour_price`` and
``gb_hour_price`` (docs/monitoring.md#cost says where the defaults come from).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Prices:
    """The price of one core for an hour and of one GB of memory for an hour, in one
    currency."""

    cpu_hour: float
    gb_hour: float

    @classmethod
    def of(cls, settings: Any) -> Prices:
        """The prices a workspace's settings say."""
        return cls(float(settings.cpu_hour_price), float(settings.gb_hour_price))

    def cost(self, cpu_seconds: float, gb_seconds: float = 0.0) -> float:
        """What ``cpu_seconds`` of a core and ``gb_seconds`` of memory cost."""
        return (cpu_seconds * self.cpu_hour + gb_seconds * self.gb_hour) / 3600.0

    def to_dict(self) -> dict[str, float]:
        return {"cpu_hour": self.cpu_hour, "gb_hour": self.gb_hour}
