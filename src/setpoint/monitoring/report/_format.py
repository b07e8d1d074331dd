"""Numbers, shares and times as the report writes them: plain words with units,
a dash for a missing figure, times in UTC."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime

from setpoint.monitoring.report._data import WindowResult

_E = html.escape
_DASH = "—"


def _num(x: float | None, digits: int = 2) -> str:
    return _DASH if x is None else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    if x is None:
        return _DASH
    v = x * 100
    return f"{v:.1f}%" if 0 < abs(v) < 10 and not v.is_integer() else f"{v:.0f}%"


def _p_value(p: float | None) -> str:
    return _DASH if p is None else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def _stamp(t: datetime | None) -> str:
    return _DASH if t is None else t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _day(t: datetime) -> str:
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%d") if (t.hour, t.minute) == (0, 0) else t.strftime("%Y-%m-%d %H:%M")


def _when(window: WindowResult) -> str:
    """A window as the text names it: its label, else its start."""
    return window.label if window.label is not None else _day(window.start)


def _span(windows: Sequence[WindowResult]) -> str:
    """The first to the last window (to the end of the last one when named by time)."""
    first, last = windows[0], windows[-1]
    if first.label is not None and last.label is not None:
        return first.label if len(windows) == 1 else f"{first.label} to {last.label}"
    return f"{_day(first.start)} to {_day(last.end)}"


def _window_labels(windows: Sequence[WindowResult]) -> list[str]:
    if windows and all(w.label is not None for w in windows):
        return [str(w.label) for w in windows]
    starts = [w.start.astimezone(UTC) for w in windows]
    if all((t.hour, t.minute) == (0, 0) for t in starts):
        return [t.strftime("%Y-%m-%d") for t in starts]
    return [t.strftime("%m-%d %H:%M") for t in starts]


def _capital(s: str) -> str:
    return s[:1].upper() + s[1:]
