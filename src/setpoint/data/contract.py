"""Data contracts: what a batch must look like, inferred once, edited by people.

A contract is a rule per column (kind, nullable, required, range, allowed
categories, PII, and whether its soft rules refuse at serving) and a policy for
columns it does not declare. It starts inferred from a dataset version's profile, is
saved as readable YAML that a person can edit and re-attach, and checks batches with
vectorized Arrow kernels (``data/_contract_check.py``): no Python loop per row, so
that it can sit on the request path.

The file is one declarative model (``_documents.Document``): :class:`Contract` and
its :class:`ColumnRule` are what the reader accepts, what ``setpoint schema
contract`` describes and what the rest of the code uses::

    unknown_columns: reject
    columns:
      age: {kind: integer, nullable: false, min: 18, max: 90, enforce: reject}
      grade: {kind: categorical, nullable: true, categories: [A, B, C]}
      email: {kind: string, nullable: true, required: false, pii: drop}

Rules are hard or soft (``data/validation.py``): a hard one (type, missing value,
non-finite number, missing or undeclared column) leaves a row that cannot be scored;
a soft one (min, max, category) leaves a row the model can score but did not see the
like of in training. Batch validation reports both; a server answers rows with only
soft violations, marked, unless their column says ``enforce: reject``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from functools import cached_property
from typing import Annotated, Any, ClassVar, Literal, Self, get_args

import pyarrow as pa
import yaml
from annotated_types import MinLen
from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from setpoint._display import listing, short_repr
from setpoint._documents import Document, Flag
from setpoint.data import _contract_check
from setpoint.data.kinds import NUMBER_KINDS, Kind
from setpoint.data.pii import PII_MODES, PiiMode
from setpoint.data.profile import ColumnProfile, Profile
from setpoint.data.validation import ValidationReport
from setpoint.errors import InvalidSpecError, SetpointError, UsageError

__all__ = ["ColumnRule", "Contract"]

UnknownColumns = Literal["reject", "drop", "allow"]
UNKNOWN_POLICIES: tuple[str, ...] = get_args(UnknownColumns)
# At serving, what a column's soft rules (min, max, category) do to a row that breaks
# them: score it and mark it (the default), or refuse it as a hard rule would.
Enforce = Literal["score", "reject"]
ENFORCE_CHOICES: tuple[str, ...] = get_args(Enforce)
# How a column's values are kept outside the dataset store: in clear (not personal
# data), as a keyed hash, or left out. The file says it as `pii: false|true|hash|drop`.
Privacy = Literal["clear", "hash", "drop"]

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


# -- the values a rule holds, as the file writes them -----------------------------------


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(value: Any) -> int | float:
    # Strict: `true` and "5" are not numbers. An integer stays an integer (an integer
    # column's bounds are written back as 18, not 18.0).
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number, got {_got(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")
    return value


Bound = Annotated[int | float, PlainValidator(_number, json_schema_input_type=float)]


def _category(value: Any) -> str:
    # A value as the data holds it in text: zip codes and years are written unquoted.
    if isinstance(value, str | int | float | dt.date):  # bool is an int
        return str(value)
    raise ValueError(f"must be a value (text or a number), got {_got(value)}")


Category = Annotated[
    str,
    BeforeValidator(_category),
    WithJsonSchema({"type": ["string", "number", "boolean"]}),
]


def _non_empty_list(value: Any) -> Any:
    if isinstance(value, list | tuple) and value:
        return value
    raise ValueError(f"must be a non-empty list of values, got {_got(value)}")


def _privacy(value: Any) -> Privacy:
    if value is True or value == "hash":
        return "hash"
    if value is False:
        return "clear"
    if value == "drop":
        return "drop"
    raise ValueError(
        "must be true, false, hash or drop (true is hash: the logs keep a keyed hash of "
        f"the value; drop: they leave it out), got {_got(value)}"
    )


def _enforce(value: Any) -> Any:
    if isinstance(value, str) and value in ENFORCE_CHOICES:
        return value
    raise ValueError(
        f"{_got(value)} is not one of {', '.join(ENFORCE_CHOICES)} (score: answer a row "
        "outside min/max/categories with a warning; reject: refuse it)"
    )


def _rule_map(value: Any) -> Any:
    if isinstance(value, Mapping) and value:
        return value
    raise ValueError("must map each column name to its rule")


# A column named 2024 or `yes` in YAML is the column "2024" or "True", as before.
ColumnName = Annotated[str, BeforeValidator(str)]

# JSON Schema cannot say min <= max, but it can say which kinds have which keys.
_KIND_KEYS_SCHEMA: dict[str, Any] = {
    "allOf": [
        {
            "if": {"required": ["kind"], "properties": {"kind": {"enum": sorted(NUMBER_KINDS)}}},
            "else": {"properties": {"min": {"type": "null"}, "max": {"type": "null"}}},
        },
        {
            "if": {"required": ["kind"], "properties": {"kind": {"const": "categorical"}}},
            "else": {"properties": {"categories": {"type": "null"}}},
        },
    ]
}


class ColumnRule(Document):
    """What every value of one column must be."""

    model_config = ConfigDict(json_schema_extra=_KIND_KEYS_SCHEMA)

    what: ClassVar[str] = "the column rule"
    error: ClassVar[type[SetpointError]] = InvalidSpecError

    kind: Kind
    """What the column holds: numeric, integer, boolean, categorical, string or
    datetime. Text that reads as the kind (``"42"`` for an integer) is accepted."""
    nullable: Flag = True
    """Whether a value may be missing (null, or NaN in a numeric column)."""
    required: Flag = True
    """Whether a batch must have the column at all."""
    min: Bound | None = None
    """The smallest value allowed (numeric and integer columns only)."""
    max: Bound | None = None
    """The largest value allowed (numeric and integer columns only)."""
    categories: (
        Annotated[tuple[Category, ...], MinLen(1), BeforeValidator(_non_empty_list)] | None
    ) = None
    """The values allowed (categorical columns only); a missing value is a matter for
    ``nullable``."""
    # Written `pii` (in Python too: ColumnRule(kind="string", pii="drop")), kept as
    # clear, hash or drop; read back as the `pii` flag and the `pii_mode`.
    privacy: Annotated[
        Privacy,
        BeforeValidator(_privacy),
        WithJsonSchema({"anyOf": [{"type": "boolean"}, {"enum": list(PII_MODES)}]}),
    ] = Field("clear", alias="pii", json_schema_extra={"default": False})
    """Personal data, kept in clear only in the dataset version: ``true`` or ``hash``
    (the logs keep a keyed hash, so joins and erasure still work) or ``drop`` (the logs
    leave it out). A contract keeps no ranges or categories of such a column."""
    enforce: Annotated[Enforce, BeforeValidator(_enforce)] = "score"
    """What a server does with a row outside min, max or categories: ``score`` (answer
    it, marked with a warning, and count it) or ``reject`` (refuse it with 422, like a
    value of the wrong type). Batch validation counts every rule either way."""

    @model_validator(mode="before")
    @classmethod
    def _a_mapping(cls, data: Any) -> Any:
        if isinstance(data, Mapping | ColumnRule):
            return data
        raise ValueError(f"must be a mapping with at least 'kind', got {_got(data)}")

    @field_validator("min", "max")
    @classmethod
    def _a_range(cls, value: int | float | None, info: ValidationInfo) -> int | float | None:
        kind = info.data.get("kind")
        if value is None or kind is None:  # no bound, or a kind already refused
            return value
        if kind not in NUMBER_KINDS:
            raise ValueError("only numeric and integer columns have a range")
        low = info.data.get("min")
        if info.field_name == "max" and low is not None and low > value:
            raise ValueError(f"min {low} is greater than max {value}")
        return value

    @field_validator("categories")
    @classmethod
    def _categorical(
        cls, value: tuple[str, ...] | None, info: ValidationInfo
    ) -> tuple[str, ...] | None:
        kind = info.data.get("kind")
        if value is not None and kind is not None and kind != "categorical":
            raise ValueError("only categorical columns have categories")
        return value

    @property
    def pii(self) -> bool:
        """Whether the column holds personal data (``pii: true``, ``hash`` or ``drop``)."""
        return self.privacy != "clear"

    @property
    def pii_mode(self) -> PiiMode:
        """How a personal column is kept outside the dataset store: ``hash`` or ``drop``
        (``hash`` for a column that is not personal)."""
        return "drop" if self.privacy == "drop" else "hash"

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update`` (not checked); ``pii`` takes the file's forms."""
        if update is not None and "pii" in update:
            changes = dict(update)
            changes["privacy"] = _privacy(changes.pop("pii"))
            update = changes
        return super().model_copy(update=update, deep=deep)

    def __repr_args__(self) -> Any:
        # As the rule always showed itself: pii as a flag, and its mode.
        for name in ("kind", "nullable", "required", "min", "max", "categories"):
            yield name, getattr(self, name)
        yield "pii", self.pii
        yield "enforce", self.enforce
        yield "pii_mode", self.pii_mode

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
            out["pii"] = True if self.privacy == "hash" else self.privacy
        if self.enforce != "score":
            out["enforce"] = self.enforce
        return out


class Contract(Document):
    """What a batch must look like: a rule per column, and what to do with columns the
    contract does not list."""

    what: ClassVar[str] = "the contract"
    error: ClassVar[type[SetpointError]] = InvalidSpecError

    columns: Annotated[Mapping[ColumnName, ColumnRule], MinLen(1), BeforeValidator(_rule_map)]
    """Each column's rule, by column name, in the order the model reads them."""
    unknown_columns: UnknownColumns = "reject"
    """What to do with a column the contract does not list: ``reject`` the batch,
    ``drop`` the column, or ``allow`` it through."""

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
        return cls(columns=rules, unknown_columns=unknown_columns)

    def without_values(self, pii: list[str]) -> Contract:
        """The contract with ``pii`` columns marked and their values (ranges, categories)
        left out, so that no personal data is copied into the metadata store."""
        columns = dict(self.columns)
        for name in pii:
            if name in columns:
                rule = columns[name]
                columns[name] = rule.model_copy(
                    update={
                        "min": None,
                        "max": None,
                        "categories": None,
                        "privacy": rule.privacy if rule.pii else "hash",
                    }
                )
        return self._with(columns)

    def restrict(self, names: list[str]) -> Contract:
        """The contract of only ``names`` (a model's features), in that order."""
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise UsageError(f"the contract has no column(s) {', '.join(missing)}")
        return self._with({n: self.columns[n] for n in names})

    def _with(self, columns: Mapping[str, ColumnRule]) -> Contract:
        # Rules already checked: a new contract without reading them again.
        return type(self).model_construct(columns=columns, unknown_columns=self.unknown_columns)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy (``update`` is not checked); what is cached is worked out again."""
        copied = super().model_copy(update=update, deep=deep)
        for name in ("enforced", "_plan"):
            copied.__dict__.pop(name, None)
        return copied

    # -- checking --------------------------------------------------------------------

    @cached_property
    def enforced(self) -> frozenset[str]:
        """The columns whose soft rules refuse a row at serving (``enforce: reject``)."""
        return frozenset(n for n, rule in self.columns.items() if rule.enforce == "reject")

    @cached_property
    def _plan(self) -> _contract_check.Plan:
        # the rules as `validate` reads them, made once: it sits on the serving path
        return _contract_check.plan(self)

    def validate(  # type: ignore[override]  # pydantic v1's deprecated classmethod
        self, batch: pa.Table, *, whole_column_types: bool = False
    ) -> ValidationReport:
        """Every violation in ``batch`` (an Arrow table; see ``setpoint.data._batch``).

        With ``whole_column_types`` (batch validation), a column whose type cannot
        hold its kind at all (booleans where numbers are declared) is one violation of
        the batch, with the type found as its value, not a ``type`` violation per row:
        the file is wrong, not its rows. A server keeps one per row, to answer each
        request of a combined batch for itself."""
        return _contract_check.validate(self._plan, batch, whole_column_types)

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
        return self._with(
            {
                name: rule
                if values and not rule.pii
                else rule.model_copy(update={"min": None, "max": None, "categories": None})
                for name, rule in self.columns.items()
            }
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
        return cls.read_yaml(text, source=source)

    @classmethod
    def from_dict(cls, data: Any) -> Contract:
        """A contract from its dict form; every problem is reported at once, by path."""
        return cls.read(data)


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
    nullable = bool(column.nulls > 0)
    if column.kind in ("numeric", "integer") and column.min is not None:
        low, high = float(column.min), float(column.max)
        pad = tolerance * (high - low)
        # A column never seen negative (amounts, counts, ages) stays non-negative.
        floor = 0.0 if low >= 0 else -math.inf
        lowest, highest = max(low - pad, floor), high + pad
        if column.kind == "integer":
            return ColumnRule(
                kind=column.kind, nullable=nullable, min=math.floor(lowest), max=math.ceil(highest)
            )
        spread = highest - lowest
        low_bound, high_bound = (
            _round_out(lowest, spread, up=False),
            _round_out(highest, spread, up=True),
        )
        return ColumnRule(
            kind=column.kind,
            nullable=nullable,
            # values near the float limit widened past it: no bound, rather than infinity
            min=low_bound if math.isfinite(low_bound) else None,
            max=high_bound if math.isfinite(high_bound) else None,
        )
    if (
        column.kind == "categorical"
        and column.top is not None
        and column.distinct <= max_categories
    ):
        categories = tuple(sorted(str(v) for v, _ in column.top))
        return ColumnRule(kind=column.kind, nullable=nullable, categories=categories)
    return ColumnRule(kind=column.kind, nullable=nullable)
