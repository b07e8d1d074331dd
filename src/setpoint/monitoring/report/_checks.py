"""Checks of single values in the stored report data.

Each returns the value in the type the report uses, or raises InvalidDataError with a
message naming the offending field (its path in the document, such as
``windows[2].start``), so the rendering code can trust every value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn

from setpoint.errors import InvalidDataError


def _fail(path: str, message: str) -> NoReturn:
    raise InvalidDataError(f"report data: {path} {message}", details={"field": path})


def _expect(path: str, expected: str, value: Any) -> NoReturn:
    shown = repr(value)
    _fail(path, f"should be {expected}; got {shown[:60]}{'...' if len(shown) > 60 else ''}")


def _get(d: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in d:
        _fail(f"{path}.{key}" if path != "report" else key, "is missing")
    return d[key]


def _mapping(v: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(v, Mapping):
        _expect(path, "an object (a dict)", v)
    return v


def _list(d: Mapping[str, Any], key: str, path: str) -> list[Any]:
    v = d.get(key)
    if v is None:
        return []
    if not isinstance(v, list | tuple):
        _expect(key if path == "report" else f"{path}.{key}", "a list", v)
    return list(v)


def _number(v: Any, path: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        _expect(path, "a finite number", v)
    return float(v)


def _fraction(v: Any, path: str) -> float:
    """A share between 0 and 1: a null rate, label coverage, drift share."""
    x = _number(v, path)
    if not 0 <= x <= 1:
        _expect(path, "a fraction between 0 and 1", v)
    return x


def _opt_fraction(v: Any, path: str) -> float | None:
    return None if v is None else _fraction(v, path)


def _opt_number(v: Any, path: str) -> float | None:
    return None if v is None else _number(v, path)


def _count(v: Any, path: str) -> int:
    n = _number(v, path)
    if n < 0 or not n.is_integer():
        _expect(path, "a whole number of at least 0", v)
    return int(n)


def _version(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, str | int):
        _expect("version", "text or a whole number", v)
    return str(v)


def _text(v: Any, path: str) -> str:
    if not isinstance(v, str):
        _expect(path, "text", v)
    return v


def _bool(v: Any, path: str) -> bool:
    if not isinstance(v, bool):
        _expect(path, "true or false", v)
    return v


def _when(v: Any, path: str) -> datetime:
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v)
        except ValueError:
            _expect(path, "an ISO 8601 time", v)
    if not isinstance(v, datetime):
        _expect(path, "an ISO 8601 time", v)
    # Stored results are in UTC; a naive time is read as UTC so windows always compare.
    return v if v.tzinfo else v.replace(tzinfo=UTC)


def _numbers(v: Any, path: str) -> tuple[float, ...]:
    if not isinstance(v, list | tuple):
        _expect(path, "a list of numbers", v)
    return tuple(_number(x, f"{path}[{i}]") for i, x in enumerate(v))
