"""A window's fairness as the report reads it: per measured metric, the largest
difference between judged groups and the two groups, the selection rate from the
answers alone and the other rates from the labels (as ``monitoring/fairness.py``
stores them), the shape checked with the report's checks. The section that shows
them is ``_fairness_section.py``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from setpoint.monitoring.report._checks import _list, _mapping, _opt_number, _text

__all__ = ["Gap", "WindowFairness", "read_fairness"]


@dataclass(frozen=True)
class Gap:
    """A metric's largest difference between judged groups, and the two groups."""

    metric: str
    labelled: bool  # measured on the labelled rows (else on the answers alone)
    difference: float | None
    high: str  # "region=south (0.31)"; empty when fewer than two groups were judged
    low: str


@dataclass(frozen=True)
class WindowFairness:
    max_disparity: float | None
    gaps: tuple[Gap, ...]

    @property
    def over(self) -> list[Gap]:
        limit = self.max_disparity
        return [g for g in self.gaps if limit is not None and (g.difference or 0.0) > limit + 1e-12]


def read_fairness(v: Any, path: str) -> WindowFairness:
    d = _mapping(v, path)
    gaps: list[Gap] = []
    for part in ("selection", "realized"):
        if d.get(part) is None:
            continue
        where = f"{path}.{part}"
        table = _mapping(d[part], where)
        groups = [
            _mapping(g, f"{where}.groups[{i}]") for i, g in enumerate(_list(table, "groups", where))
        ]
        differences = _mapping(table.get("difference") or {}, f"{where}.difference")
        for metric, value in differences.items():
            name = _text(metric, f"{where}.difference")
            judged = sorted(
                (g for g in groups if not g.get("too_small") and g.get(name) is not None),
                key=lambda g: float(g[name]),
            )
            low, high = (judged[0], judged[-1]) if len(judged) > 1 else ({}, {})
            gaps.append(
                Gap(
                    name,
                    part == "realized",
                    _opt_number(value, f"{where}.difference.{name}"),
                    _group(high, name),
                    _group(low, name),
                )
            )
    return WindowFairness(_opt_number(d.get("max_disparity"), f"{path}.max_disparity"), tuple(gaps))


def _group(group: Mapping[str, Any], metric: str) -> str:
    if not group:
        return ""
    values = ", ".join(f"{k}={v}" for k, v in dict(group.get("values") or {}).items())
    return f"{values} ({float(group[metric]):.2f})"
