"""Column kinds: the six types a contract speaks in.

Arrow has dozens of types; a contract needs to know only what a value may be.
``numeric`` (floats), ``integer``, ``boolean``, ``categorical`` (a small set of
labels), ``string`` (free text, identifiers) and ``datetime``. A string column is
categorical when it has few distinct values, so the kind of a string column depends
on its profile; every other kind follows from the Arrow type alone.
"""

from __future__ import annotations

from typing import Literal, get_args

import pyarrow as pa
import pyarrow.types as pat

Kind = Literal["numeric", "integer", "boolean", "categorical", "string", "datetime"]
KINDS: tuple[Kind, ...] = get_args(Kind)
NUMBER_KINDS: frozenset[str] = frozenset({"numeric", "integer"})
TEXT_KINDS: frozenset[str] = frozenset({"categorical", "string"})


# How numbers, booleans and datetimes may be written as text (CSV files, JSON
# clients). The contract and the model input conversion both read text this way, so
# a value the contract accepts is a value the model can take.
FLOAT_TEXT = r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$"
INTEGER_TEXT = r"^\s*[+-]?\d+\s*$"
BOOLEAN_TEXT = r"(?i)^\s*(true|false|yes|no|t|f|y|n|0|1)\s*$"
TRUE_TEXT = r"(?i)^\s*(true|yes|t|y|1)\s*$"
DATETIME_TEXT = r"^\s*\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?\s*$"


def is_text(type_: pa.DataType) -> bool:
    return bool(
        pat.is_string(type_)
        or pat.is_large_string(type_)
        or pat.is_string_view(type_)
        or pat.is_dictionary(type_)
    )


def kind_of(type_: pa.DataType, *, distinct: int | None = None, max_categories: int = 50) -> Kind:
    """The kind of a column of Arrow type ``type_``.

    A text column with at most ``max_categories`` distinct values is categorical,
    otherwise string; without a distinct count, text is categorical.
    """
    if pat.is_boolean(type_):
        return "boolean"
    if pat.is_integer(type_):
        return "integer"
    if pat.is_floating(type_) or pat.is_decimal(type_):
        return "numeric"
    if pat.is_timestamp(type_) or pat.is_date(type_):
        return "datetime"
    if pat.is_dictionary(type_):
        return "categorical"
    if is_text(type_) and distinct is not None and distinct > max_categories:
        return "string"
    return "categorical"
