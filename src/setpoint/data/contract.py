"""Data contracts: what a batch must look like, inferred once, edited by people.

A contract is a rule per column (kind, nullable, required, range, allowed
categories, PII, and whether its soft rules refuse at serving) and a policy for
columns it does not declare. It starts inferred from a dataset version's profile, is
saved as readable YAML that a person can edit and re-attach, and checks batches with
vectorized Arrow kernels: no Python loop per row, so that it can sit on the request
path.

Rules are hard or soft (``data/validation.py``): a hard one (type, missing value,
non-finite number, missing or undeclared column) leaves a row that cannot be scored;
a soft one (min, max, category) leaves a row the model can score but did not see the
like of in training. Batch validation reports both; a server answers rows with only
soft violations, marked, unless their column says ``enforce: reject``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from functools import cached_property
from typing import Any, Literal, get_args

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat
import yaml

from setpoint._display import listing, short_repr
from setpoint._yaml import load_user_yaml
from setpoint.data.kinds import (
    BOOLEAN_TEXT,
    DATETIME_TEXT,
    FLOAT_TEXT,
    INTEGER_TEXT,
    KINDS,
    TRUE_TEXT,
    Kind,
    is_text,
)
from setpoint.data.pii import PII_MODES, PiiMode
from setpoint.data.profile import ColumnProfile, Profile
from setpoint.data.validation import ValidationReport, ViolationBuilder
from setpoint.errors import InvalidSpecError, UsageError

PII_MASK = "***"
UnknownColumns = Literal["reject", "drop", "allow"]
UNKNOWN_POLICIES: tuple[str, ...] = get_args(UnknownColumns)
# At serving, what a column's soft rules (min, max, category) do to a row that breaks
# them: score it and mark it (the default), or refuse it as a hard rule would.
Enforce = Literal["score", "reject"]
ENFORCE_CHOICES: tuple[str, ...] = get_args(Enforce)

_ARROW_TYPE: dict[str, pa.DataType] = {
    "numeric": pa.float64(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
    "categorical": pa.string(),
    "string": pa.string(),
    "datetime": pa.timestamp("us"),
}

_YAML_HEADER = """\
# setpoint data contract. Edit and re-attach with:
#   setpoint data attach-contract DATASET@VERSION THIS_FILE
# Per column: kind (numeric, integer, boolean, categorical, string, datetime),
# nullable, required, min / max (numbers), categories (allowed values), pii.
# pii: personal data, kept in clear only in the dataset version: true or hash (the
#   logs keep a keyed hash, so joins and erasure still work) or drop (left out).
# enforce: what a server does with a row outside min / max / categories: score
#   (the default: answer it, marked with a warning, and count it) or reject (refuse
#   it with 422, like a value of the wrong type or a missing one). Batch validation
#   (data validate, quarantine) treats every rule as a violation either way.
# unknown_columns: what to do with columns not listed here (reject, drop, allow).
"""


@dataclass(frozen=True)
class ColumnRule:
    kind: Kind
    nullable: bool = True
    required: bool = True
    min: float | int | None = None
    max: float | int | None = None
    categories: tuple[str, ...] | None = None
    pii: bool = False
    enforce: Enforce = "score"
    pii_mode: PiiMode = "hash"  # how a pii column is kept outside the dataset store

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "nullable": self.nullable}
        if not self.required:
            out["required"] = False
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.categories is not None:
            out["categories"] = list(self.categories)
        if self.pii:
            out["pii"] = True if self.pii_mode == "hash" else self.pii_mode
        if self.enforce != "score":
            out["enforce"] = self.enforce
        return out


@dataclass(frozen=True)
class Contract:
    columns: Mapping[str, ColumnRule]
    unknown_columns: UnknownColumns = "reject"

    def __repr__(self) -> str:
        rules = self.columns.values()
        enforced = sum(r.enforce != "score" for r in rules)
        pii = sum(r.pii for r in rules)
        facts = [
            listing(self.columns),
            f"{enforced} enforced" if enforced else "",
            f"{pii} personal" if pii else "",
            f"unknown columns: {self.unknown_columns}",
        ]
        return short_repr("Contract", f"{len(self.columns)} columns", facts)

    # -- making ----------------------------------------------------------------------

    @classmethod
    def infer(
        cls,
        profile: Profile,
        *,
        range_tolerance: float = 0.0,
        max_categories: int = 50,
        unknown_columns: str = "reject",
    ) -> Contract:
        """The tightest contract the profiled data meets, ranges widened by
        ``range_tolerance`` * (max - min) on each side (but not below zero for a
        column that has no negative values)."""
        if unknown_columns not in UNKNOWN_POLICIES:
            raise UsageError(
                f"unknown_columns {unknown_columns!r}: use one of {', '.join(UNKNOWN_POLICIES)}"
            )
        if range_tolerance < 0:
            raise UsageError(f"range_tolerance must be 0 or more, got {range_tolerance}")
        rules = {c.name: _infer_rule(c, range_tolerance, max_categories) for c in profile.columns}
        return cls(rules, unknown_columns)  # type: ignore[arg-type]

    def without_values(self, pii: list[str]) -> Contract:
        """The contract with ``pii`` columns marked and their values (ranges, categories)
        left out, so that no personal data is copied into the metadata store."""
        columns = dict(self.columns)
        for name in pii:
            if name in columns:
                columns[name] = replace(
                    columns[name], min=None, max=None, categories=None, pii=True
                )
        return Contract(columns, self.unknown_columns)

    def restrict(self, names: list[str]) -> Contract:
        """The contract of only ``names`` (a model's features), in that order."""
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise UsageError(f"the contract has no column(s) {', '.join(missing)}")
        return Contract({n: self.columns[n] for n in names}, self.unknown_columns)

    # -- checking --------------------------------------------------------------------

    @cached_property
    def enforced(self) -> frozenset[str]:
        """The columns whose soft rules refuse a row at serving (``enforce: reject``)."""
        return frozenset(n for n, rule in self.columns.items() if rule.enforce == "reject")

    def validate(self, batch: pa.Table, *, whole_column_types: bool = False) -> ValidationReport:
        """Every violation in ``batch`` (an Arrow table; see ``setpoint.data._batch``).

        With ``whole_column_types`` (batch validation), a column whose type cannot
        hold its kind at all (booleans where numbers are declared) is one violation of
        the batch, with the type found as its value, not a ``type`` violation per row:
        the file is wrong, not its rows. A server keeps one per row, to answer each
        request of a combined batch for itself."""
        found = ViolationBuilder()
        present = set(batch.column_names)
        for name, rule in self.columns.items():
            if name not in present:
                if rule.required:
                    found.batch(name, "missing_column")
                continue
            _check_column(found, name, rule, batch.column(name), whole_column_types)
        keep = [n for n in batch.column_names if n in self.columns]
        dropped = []
        for name in batch.column_names:
            if name in self.columns:
                continue
            if self.unknown_columns == "reject":
                found.batch(name, "unknown_column")
            elif self.unknown_columns == "allow":
                keep.append(name)
            else:
                dropped.append(name)
        return found.report(batch.num_rows, keep, self.enforced, tuple(dropped))

    def explain(self, problem: Mapping[str, Any]) -> str:
        """What a problem of the whole batch (``ValidationReport.problems``) means, and
        the fix."""
        column, rule = problem["column"], problem["rule"]
        if rule == "missing_column":
            return (
                f"column {column!r} is missing: add it to the data, or mark it "
                "'required: false' in the contract"
            )
        if rule == "unknown_column":
            return (
                f"column {column!r} is not in the contract: add it to the contract, or set "
                "unknown_columns: drop (or allow) to take the rows without it"
            )
        kind = self.columns[column].kind if column in self.columns else "?"
        return (
            f"column {column!r} holds {problem['value']} values where the contract declares "
            f"{kind}: fix the column in the data, or its kind in the contract"
        )

    # -- reading and writing ------------------------------------------------------------

    def redacted(self, *, values: bool) -> Contract:
        """This contract as shown to callers (API docs, endpoint metadata): names,
        kinds and nullability, with the ranges and categories learnt from the training
        data only when ``values`` — and never for a column of personal data."""
        return replace(
            self,
            columns={
                name: rule
                if values and not rule.pii
                else replace(rule, min=None, max=None, categories=None)
                for name, rule in self.columns.items()
            },
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "unknown_columns": self.unknown_columns,
            "columns": {name: rule.to_dict() for name, rule in self.columns.items()},
        }

    def to_yaml(self) -> str:
        body = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100)
        return _YAML_HEADER + body

    @classmethod
    def from_yaml(cls, text: str, *, source: str | None = None) -> Contract:
        """A contract from YAML; ``source`` is the file it came from, named in syntax
        errors."""
        data = load_user_yaml(text, what="the contract", source=source, error=InvalidSpecError)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> Contract:
        """A contract from its dict form; every problem is reported at once, by path."""
        problems: list[str] = []
        if not isinstance(data, Mapping):
            raise InvalidSpecError(
                "a contract is a mapping with 'columns' (and optionally 'unknown_columns')",
                details=["(top): not a mapping"],
            )
        for key in data:
            if key not in ("columns", "unknown_columns"):
                problems.append(f"{key}: unknown key; a contract has columns and unknown_columns")
        unknown = data.get("unknown_columns", "reject")
        if unknown not in UNKNOWN_POLICIES:
            problems.append(
                f"unknown_columns: {unknown!r} is not one of {', '.join(UNKNOWN_POLICIES)}"
            )
        raw_columns = data.get("columns")
        columns: dict[str, ColumnRule] = {}
        if not isinstance(raw_columns, Mapping) or not raw_columns:
            problems.append("columns: must map each column name to its rule")
        else:
            for name, raw in raw_columns.items():
                rule = _parse_rule(f"columns.{name}", raw, problems)
                if rule is not None:
                    columns[str(name)] = rule
        if problems:
            raise InvalidSpecError(
                f"the contract has {len(problems)} problem(s): " + "; ".join(problems),
                details=problems,
            )
        return cls(columns, unknown)


# -- inference ------------------------------------------------------------------------


# Inferred float bounds keep this many significant digits: a person reads and edits
# them (and callers see them in the API docs), so 44.620000000000005 becomes 44.63.
_BOUND_DIGITS = 4


def _round_out(value: float, spread: float, *, up: bool) -> float:
    """``value`` rounded away from the data (up for a maximum, down for a minimum) to
    a few significant digits, so that every value of the data still passes. It never
    moves by more than about a hundredth of the column's ``spread``: a narrow range far
    from zero (times as numbers) keeps the digits that tell its ends apart."""
    if value == 0 or not math.isfinite(value):
        return value
    # The shortest text that reads back as the float: rounding it down (up) gives a
    # decimal at or below (above) it, and reading that back cannot cross the float.
    exact = Decimal(repr(value))
    step = exact.adjusted() - (_BOUND_DIGITS - 1)
    if spread > 0:
        step = min(step, Decimal(repr(spread)).adjusted() - 2)
    if int(exact.as_tuple().exponent) >= step:
        return value
    rounded = exact.quantize(Decimal(1).scaleb(step), rounding=ROUND_CEILING if up else ROUND_FLOOR)
    result = float(rounded)
    return result if math.isfinite(result) else value


def _infer_rule(column: ColumnProfile, tolerance: float, max_categories: int) -> ColumnRule:
    rule = ColumnRule(kind=column.kind, nullable=column.nulls > 0)
    if column.kind in ("numeric", "integer") and column.min is not None:
        low, high = float(column.min), float(column.max)
        pad = tolerance * (high - low)
        # A column never seen negative (amounts, counts, ages) stays non-negative.
        floor = 0.0 if low >= 0 else -math.inf
        lowest, highest = max(low - pad, floor), high + pad
        if column.kind == "integer":
            return replace(rule, min=math.floor(lowest), max=math.ceil(highest))
        spread = highest - lowest
        return replace(
            rule, min=_round_out(lowest, spread, up=False), max=_round_out(highest, spread, up=True)
        )
    if (
        column.kind == "categorical"
        and column.top is not None
        and column.distinct <= max_categories
    ):
        return replace(rule, categories=tuple(sorted(str(v) for v, _ in column.top)))
    return rule


# -- parsing --------------------------------------------------------------------------

_RULE_KEYS = ("kind", "nullable", "required", "min", "max", "categories", "pii", "enforce")


def _parse_rule(path: str, raw: Any, problems: list[str]) -> ColumnRule | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{path}: must be a mapping with at least 'kind'")
        return None
    before = len(problems)
    for key in raw:
        if key not in _RULE_KEYS:
            problems.append(f"{path}.{key}: unknown key; use {', '.join(_RULE_KEYS)}")
    kind = raw.get("kind")
    if kind not in KINDS:
        problems.append(f"{path}.kind: {kind!r} is not one of {', '.join(KINDS)}")
    for flag in ("nullable", "required"):
        if flag in raw and not isinstance(raw[flag], bool):
            problems.append(f"{path}.{flag}: must be true or false, got {raw[flag]!r}")
    pii = raw.get("pii", False)
    if not isinstance(pii, bool) and pii not in PII_MODES:
        problems.append(
            f"{path}.pii: must be true, false, hash or drop (true is hash: the logs keep a "
            f"keyed hash of the value; drop: they leave it out), got {pii!r}"
        )
    bounds = {}
    for bound in ("min", "max"):
        value = raw.get(bound)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            problems.append(f"{path}.{bound}: must be a number, got {value!r}")
        elif kind not in ("numeric", "integer"):
            problems.append(f"{path}.{bound}: only numeric and integer columns have a range")
        else:
            bounds[bound] = value
    if len(bounds) == 2 and bounds["min"] > bounds["max"]:
        problems.append(f"{path}: min {bounds['min']} is greater than max {bounds['max']}")
    categories = raw.get("categories")
    if categories is not None:
        if not isinstance(categories, list) or not categories:
            problems.append(f"{path}.categories: must be a non-empty list of values")
            categories = None
        elif kind != "categorical":
            problems.append(f"{path}.categories: only categorical columns have categories")
    enforce = raw.get("enforce", "score")
    if enforce not in ENFORCE_CHOICES:
        problems.append(
            f"{path}.enforce: {enforce!r} is not one of {', '.join(ENFORCE_CHOICES)} (score: "
            "answer a row outside min/max/categories with a warning; reject: refuse it)"
        )
    if len(problems) > before:
        return None
    return ColumnRule(
        kind=kind,  # type: ignore[arg-type]  # checked against KINDS above
        nullable=raw.get("nullable", True),
        required=raw.get("required", True),
        min=bounds.get("min"),
        max=bounds.get("max"),
        categories=None if categories is None else tuple(str(c) for c in categories),
        pii=pii is not False,
        enforce=enforce,
        pii_mode="drop" if pii == "drop" else "hash",
    )


# -- checking -----------------------------------------------------------------------


def _check_column(
    found: ViolationBuilder,
    name: str,
    rule: ColumnRule,
    column: pa.ChunkedArray,
    whole_column_types: bool = False,
) -> None:
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
    elif rule.kind == "categorical" and rule.categories is not None:
        # null is in the value set: a missing value is a matter for `nullable`.
        allowed = pa.array([*rule.categories, None], pa.string())
        outside = pc.invert(pc.is_in(values, value_set=allowed, skip_nulls=False))
        found.rows(name, "category", outside, shown)


def _check_range(
    found: ViolationBuilder,
    name: str,
    rule: ColumnRule,
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
            except pa.ArrowInvalid:  # e.g. an integer beyond 64 bits
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
