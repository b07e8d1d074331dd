"""Spans of time as people write them: ``30s``, ``5m``, ``1.5h``, ``7d``, ``2w``, ``1h30m``.

Every setting that takes a span (a monitor's window, a policy's cooldown and rollout
duration, ``loop --every``, ``deploy --log-retention``) reads it here, so the same
text means the same span everywhere and a mistake gets the same message. Each place
adds its own limits on top (a window of at least a minute, say) with
:func:`parse_duration`'s ``at_least``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

from setpoint.errors import UsageError

FORMS = "a number and a unit (s, m, h, d or w), e.g. 30s, 5m, 1.5h, 7d or 1h30m"
# Far beyond any sensible setting, and near enough that ``now - span`` stays a date.
LONGEST = timedelta(days=36_500)

_UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
# Spaces only: a newline or tab in a setting is a mistake worth hearing about.
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+) *([wdhms]) *")
_WHOLE = re.compile(r" *(?:(?:\d+(?:\.\d+)?|\.\d+) *[wdhms] *)+")
_MICROS = Decimal(1_000_000)


def parse_duration(
    text: object, *, what: str, at_least: timedelta | None = None, zero: bool = False
) -> timedelta:
    """``text`` as a positive timedelta (or zero, where ``zero`` says it means "none"),
    or a UsageError naming ``what`` and the forms.

    Parts may be combined, largest unit first, each unit once (``1h30m``, ``1d 12h``).
    Numbers are read as decimals, so ``0.1s`` is exactly 100 ms."""
    raw = str(text)
    if _WHOLE.fullmatch(raw) is None:
        raise UsageError(f"{what} {raw!r} is not a span of time; write {FORMS}")
    parts = _PART.findall(raw.strip())
    units = [unit for _, unit in parts]
    order = list(_UNIT_SECONDS)
    if units != sorted(set(units), key=order.index):
        raise UsageError(
            f"{what} {raw!r}: give each unit once, largest first, e.g. 1h30m; write {FORMS}"
        )
    micros = sum((Decimal(n) * _UNIT_SECONDS[u] * _MICROS for n, u in parts), Decimal(0))
    span = timedelta(microseconds=int(micros.to_integral_value()))
    if span == timedelta(0) and zero:
        return span
    if span <= timedelta(0):
        raise UsageError(f"{what} {raw!r} must be a positive span of time; write {FORMS}")
    if span > LONGEST:
        raise UsageError(f"{what} {raw!r} is too long; at most {format_duration(LONGEST)}")
    if at_least is not None and span < at_least:
        raise UsageError(f"{what} {raw!r} is too short; at least {format_duration(at_least)}")
    return span


def format_duration(span: timedelta) -> str:
    """The shortest text :func:`parse_duration` reads back as exactly ``span``."""
    if span <= timedelta(0):
        raise ValueError(f"a span of time is positive, not {span}")
    micros = span // timedelta(microseconds=1)
    parts: list[str] = []
    for unit, seconds in _UNIT_SECONDS.items():
        count, micros = divmod(micros, seconds * 1_000_000)
        if unit == "s" and micros:
            fraction = f"{micros:06d}".rstrip("0")
            parts.append(f"{count}.{fraction}s")
        elif count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
