"""A quick yes for small, clean batches of plain Python values.

The contract checks batches with Arrow kernels, which is fast per row but costs tens
of microseconds per kernel call: for the handful of rows a serving batch holds, that
fixed cost is most of the request. Most requests are clean, though, and for plain
JSON values (numbers, text, booleans, null) a Python pass over the rules can tell so
in a few microseconds per row.

``FastCheck.clean`` answers only "certainly clean" (True) or "look closer" (False):
it never reports a violation itself. Anything it is not sure of (a value of another
type, numbers written as text, datetimes, a value that breaks a rule) sends the
batch to ``Contract.validate``, which finds and describes every violation. So the
two can never disagree on what is wrong; a property test checks that whatever this
calls clean, the contract finds clean too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from math import isfinite as _isfinite
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from setpoint.data.contract import ColumnRule, Contract

_INT64 = 2**63


class FastCheck:
    def __init__(self, contract: Contract) -> None:
        self._rules = [
            (name, (_compile_column(rule), _compile(rule)))
            for name, rule in contract.columns.items()
        ]

    def clean(self, columns: Mapping[str, Sequence[Any]]) -> bool:
        """True when every value of ``columns`` (the contract's columns, as lists)
        certainly meets its rule; False when the contract must look."""
        for name, (whole, check) in self._rules:
            values = columns.get(name)
            if values is None:
                return False
            if not whole(values) and not all(map(check, values)):
                return False
        return True


def _compile_column(rule: ColumnRule) -> Callable[[Sequence[Any]], bool]:
    """A function values -> bool that is True only when every value meets ``rule``,
    decided per column in C (type set, min, max, set inclusion) rather than per value
    in Python; False means "not sure", and the per-value check decides."""
    nullable = rule.nullable
    low = -math.inf if rule.min is None else rule.min
    high = math.inf if rule.max is None else rule.max
    kind = rule.kind
    allowed_types = {
        "numeric": frozenset({int, float}),
        "integer": frozenset({int}),
        "boolean": frozenset({bool}),
        "categorical": frozenset({str}),
        "string": frozenset({str}),
    }.get(kind, frozenset())
    if nullable:
        allowed_types |= {type(None)}
    bounded = kind in ("numeric", "integer")
    members = (
        frozenset(rule.categories) | ({None} if nullable else set())
        if rule.categories is not None and kind in ("categorical", "string")
        else None
    )

    def column(values: Sequence[Any]) -> bool:
        types = set(map(type, values))
        if not types <= allowed_types:
            return False
        if members is not None:
            return members.issuperset(values)
        if not bounded:
            return True
        present = [v for v in values if v is not None] if type(None) in types else values
        if not present:
            return True
        if float in types:
            # NaN or an infinity makes the sum NaN or infinite (and min/max unreliable);
            # so may a sum of large finite values: look per value.
            try:
                total = sum(present)
            except OverflowError:  # an integer beyond what a float holds
                return False
            if not _isfinite(total):
                return False
        lowest, highest = min(present), max(present)
        if int in types and not (lowest >= -_INT64 and highest < _INT64):
            return False
        return bool(low <= lowest and highest <= high)

    return column


def _compile(rule: ColumnRule) -> Any:
    """A function value -> bool that is True only when the value meets ``rule``."""
    nullable = rule.nullable
    low = -math.inf if rule.min is None else rule.min
    high = math.inf if rule.max is None else rule.max
    kind = rule.kind
    if kind == "numeric":

        def numeric(value: Any) -> bool:
            t = type(value)
            if t is float:
                if value != value:  # NaN is a missing value
                    return nullable
                # an infinity is never clean: the contract calls it not_finite
                return bool(low <= value <= high and _isfinite(value))
            if t is int:
                return bool(-_INT64 <= value < _INT64 and low <= value <= high)
            return value is None and nullable

        return numeric
    if kind == "integer":

        def integer(value: Any) -> bool:
            t = type(value)
            if t is int:
                return bool(-_INT64 <= value < _INT64 and low <= value <= high)
            if t is float:
                if value != value:
                    return nullable
                return bool(
                    value.is_integer() and -_INT64 <= value < _INT64 and low <= value <= high
                )
            return value is None and nullable

        return integer
    if kind == "boolean":
        return lambda value: type(value) is bool or (value is None and nullable)
    if kind in ("categorical", "string"):
        allowed = None if rule.categories is None else frozenset(rule.categories)
        if allowed is None:
            return lambda value: type(value) is str or (value is None and nullable)
        return lambda value: (
            (type(value) is str and value in allowed) or (value is None and nullable)
        )
    return lambda _value: False  # datetimes: the contract reads their many forms
