"""One check of a candidate's gates, as the gate report stores and prints it (its own
module so that each family of checks, such as :mod:`setpoint.loop.fairness_gate`,
makes them without importing the gates)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Check", "float_or_none"]


@dataclass(frozen=True)
class Check:
    """One check of a gate. For metric and segment checks ``value`` is the candidate's
    improvement over the champion in the metric's better direction and ``threshold``
    the least improvement allowed (``interval``: its bootstrap confidence interval);
    for budgets and fairness ``value`` is the measurement (a metric's largest difference
    between groups) and ``threshold`` the most allowed."""

    name: str
    passed: bool
    value: float | None
    threshold: float | None
    detail: str
    interval: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "value": self.value,
            "threshold": self.threshold,
            "detail": self.detail,
            "interval": None if self.interval is None else list(self.interval),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Check:
        interval = data.get("interval")
        return cls(
            name=str(data["name"]),
            passed=bool(data["passed"]),
            value=float_or_none(data.get("value")),
            threshold=float_or_none(data.get("threshold")),
            detail=str(data.get("detail", "")),
            interval=None if interval is None else (float(interval[0]), float(interval[1])),
        )


def float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)
