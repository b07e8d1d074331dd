"""How a contract checks a batch: vectorized Arrow kernels, no Python loop per row.

``Contract.validate`` (``data/contract.py``) calls :func:`validate`; this module holds
the checking only, so that the contract module is its declaration (what a file may
say) plus inference and YAML. It sits on the serving path, where a batch may be a
single request: a contract is turned into a :class:`Plan` once (``Contract`` caches
it), and each batch is checked against that plan, with nothing validated or copied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from setpoint.data.kinds import (
    BOOLEAN_TEXT,
    DATETIME_TEXT,
    FLOAT_TEXT,
    INTEGER_TEXT,
    TRUE_TEXT,
    Kind,
    is_text,
)
from setpoint.data.validation import ValidationReport, ViolationBuilder

if TYPE_CHECKING:
    from setpoint.data.contract import Contract

PII_MASK = "***"

_ARROW_TYPE: dict[str, pa.DataType] = {
    "numeric": pa.float64(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
    "categorical": pa.string(),
    "string": pa.string(),
    "datetime": pa.timestamp("us"),
}


@dataclass(frozen=True, slots=True)
class Rule:
    """A column's rule as the checks read it: plain slots (a pydantic model's
    attributes take several times as long to read), and the categories already made
    the Arrow value set they are looked up in."""

    name: str
    kind: Kind
    nullable: bool
    required: bool
    min: int | float | None
    max: int | float | None
    allowed: pa.Array | None  # the categories and null, for categorical columns
    pii: bool


@dataclass(frozen=True, slots=True)
class Plan:
    """A contract made ready to check batches with."""

    rules: tuple[Rule, ...]
    names: frozenset[str]
    unknown_columns: str
    enforced: frozenset[str]


def plan(contract: Contract) -> Plan:
    rules = tuple(
        Rule(
            name,
            rule.kind,
            rule.nullable,
            rule.required,
            rule.min,
            rule.max,
            # null is in the value set: a missing value is a matter for `nullable`.
            pa.array([*rule.categories, None], pa.string())
            if rule.kind == "categorical" and rule.categories is not None
            else None,
            rule.pii,
        )
        for name, rule in contract.columns.items()
    )
    names = frozenset(contract.columns)
    return Plan(rules, names, contract.unknown_columns, contract.enforced)


def validate(plan: Plan, batch: pa.Table, whole_column_types: bool) -> ValidationReport:
    """Every violation in ``batch`` of the contract ``plan`` was made from; see
    ``Contract.validate``."""
    found = ViolationBuilder()
    present = set(batch.column_names)
    for rule in plan.rules:
        if rule.name not in present:
            if rule.required:
                found.batch(rule.name, "missing_column")
            continue
        _check_column(found, rule, batch.column(rule.name), whole_column_types)
    names = plan.names
    keep = [n for n in batch.column_names if n in names]
    dropped = []
    unknown = plan.unknown_columns
    for name in batch.column_names:
        if name in names:
            continue
        if unknown == "reject":
            found.batch(name, "unknown_column")
        elif unknown == "allow":
            keep.append(name)
        else:
            dropped.append(name)
    return found.report(batch.num_rows, keep, plan.enforced, tuple(dropped))


def _check_column(
    found: ViolationBuilder,
    rule: Rule,
    column: pa.ChunkedArray,
    whole_column_types: bool = False,
) -> None:
    name = rule.name
    if pat.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if whole_column_types and not _readable(column.type, rule.kind):
        found.batch(name, "type", str(column.type))
        return
    values, type_bad = _coerce(column, rule.kind)
    # What a violation shows as the offending value: never the value of a PII column.
    shown = pa.chunked_array([pa.repeat(pa.scalar(PII_MASK), len(column))]) if rule.pii else column
    if type_bad is not None:
        type_bad = pc.fill_null(type_bad, False)
        found.rows(name, "type", type_bad, shown)
    if not rule.nullable and (values.null_count or pat.is_floating(values.type)):
        nulls = pc.is_null(values, nan_is_null=True)
        if type_bad is not None:  # a value of the wrong type was reported as such
            nulls = pc.and_kleene(nulls, pc.invert(type_bad))
        found.rows(name, "not_null", nulls, shown)
    if rule.kind in ("numeric", "integer"):
        _check_range(found, name, rule, values, shown)
    elif rule.allowed is not None:
        outside = pc.invert(pc.is_in(values, value_set=rule.allowed, skip_nulls=False))
        found.rows(name, "category", outside, shown)


def _check_range(
    found: ViolationBuilder,
    name: str,
    rule: Rule,
    values: pa.ChunkedArray,
    column: pa.ChunkedArray,
) -> None:
    """Infinities, then min and max, each reported once per value."""
    if pat.is_floating(values.type):
        # Arrow's min_max is slow on floats; comparisons are cheap and vectorize.
        infinite = pc.is_inf(values)
        if pc.any(infinite).as_py():
            found.rows(name, "not_finite", infinite, column)
            values = pc.if_else(infinite, None, values)
        if rule.min is not None:
            found.rows(name, "min", pc.less(values, rule.min), column)
        if rule.max is not None:
            found.rows(name, "max", pc.greater(values, rule.max), column)
        return
    # Integers: one fast pass finds the bounds; a rule is only checked row by row
    # when the bounds show that some row breaks it.
    bounds = pc.min_max(values)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low is None:
        return
    if (rule.min is not None and low < rule.min) or (rule.max is not None and high > rule.max):
        # Compare as floats: Arrow refuses to cast integers beyond 2**53 for a float bound.
        values = values.cast(pa.float64(), safe=False)
    if rule.min is not None and low < rule.min:
        found.rows(name, "min", pc.less(values, rule.min), column)
    if rule.max is not None and high > rule.max:
        found.rows(name, "max", pc.greater(values, rule.max), column)


def _coerce(column: pa.ChunkedArray, kind: Kind) -> tuple[pa.ChunkedArray, pa.ChunkedArray | None]:
    """``column`` as ``kind`` (values that do not convert become null) and a mask of
    the values that do not convert, or None when every value converts."""
    if pat.is_null(column.type):  # every value missing: only nullability can fail
        return column.cast(_ARROW_TYPE[kind]), None
    type_ = column.type
    if kind in ("numeric", "integer"):
        if pat.is_integer(type_):
            return column, None
        if pat.is_floating(type_) or pat.is_decimal(type_):
            values = column.cast(pa.float64())
            if kind == "integer":
                fraction = pc.and_kleene(
                    pc.is_finite(values), pc.not_equal(pc.floor(values), values)
                )
                # A JSON integer beyond 64 bits arrives as a float: no int64 either.
                outside = pc.or_kleene(
                    pc.less(values, -(2.0**63)), pc.greater_equal(values, 2.0**63)
                )
                return values, pc.or_kleene(fraction, outside)
            return values, None
        if is_text(type_):
            good = pc.match_substring_regex(
                column, INTEGER_TEXT if kind == "integer" else FLOAT_TEXT
            )
            bad = pc.and_kleene(pc.invert(good), pc.is_valid(column))
            kept = pc.if_else(good, pc.utf8_trim_whitespace(column), None)
            target = pa.int64() if kind == "integer" else pa.float64()
            try:
                return kept.cast(target), bad
            except pa.ArrowInvalid:  # an integer beyond 64 bits
                if kind == "integer":
                    # Told apart on the text: as a float, -2**63 - 1 is -2**63 exactly.
                    outside = pa.array(
                        [
                            t is not None and not -(2**63) <= int(t) < 2**63
                            for t in kept.to_pylist()
                        ],
                        pa.bool_(),
                    )
                    bad = pc.or_kleene(bad, outside)
                return kept.cast(pa.float64()), bad
        return _all_bad(column, pa.float64())
    if kind == "boolean":
        if pat.is_boolean(type_):
            return column, None
        if pat.is_integer(type_):
            bad = pc.invert(pc.is_in(column, value_set=pa.array([0, 1], type_)))
            return pc.equal(column, 1), pc.fill_null(bad, False)
        if is_text(type_):
            good = pc.match_substring_regex(column, BOOLEAN_TEXT)
            bad = pc.and_kleene(pc.invert(good), pc.is_valid(column))
            return pc.if_else(good, pc.match_substring_regex(column, TRUE_TEXT), None), bad
        return _all_bad(column, pa.bool_())
    if kind == "datetime":
        if pat.is_timestamp(type_) or pat.is_date(type_):
            return column, None
        if is_text(type_):
            good = pc.match_substring_regex(column, DATETIME_TEXT)
            bad = pc.and_kleene(pc.invert(good), pc.is_valid(column))
            return pc.if_else(good, column, None), bad
        return _all_bad(column, pa.timestamp("us"))
    # categorical and string: text, or anything with a text form (a zip code read as int)
    if is_text(type_):
        return column, None
    try:
        return column.cast(pa.string()), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _all_bad(column, pa.string())


def _all_bad(
    column: pa.ChunkedArray, type_: pa.DataType
) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    return pa.chunked_array([pa.nulls(len(column), type_)]), column.is_valid()


def _readable(type_: pa.DataType, kind: Kind) -> bool:
    """Whether a column of ``type_`` can hold values of ``kind`` at all: the types
    ``_coerce`` converts value by value (the others it finds all bad)."""
    if pat.is_null(type_) or is_text(type_):
        return True
    if kind in ("numeric", "integer"):
        return bool(pat.is_integer(type_) or pat.is_floating(type_) or pat.is_decimal(type_))
    if kind == "boolean":
        return bool(pat.is_boolean(type_) or pat.is_integer(type_))
    if kind == "datetime":
        return bool(pat.is_timestamp(type_) or pat.is_date(type_))
    try:
        pa.array([], type_).cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True
