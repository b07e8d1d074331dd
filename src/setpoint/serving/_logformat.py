"""The record format of the prediction log: validation, JSON lines, and Arrow tables.

A segment holds one JSON object per line. The fixed fields of a kind are checked when
a record is appended (so that every stored line can be read back as a typed row) and
become typed Arrow columns; ``inputs``, ``outputs``, ``label`` and any field the kind
does not know are kept as JSON text columns.
"""

from __future__ import annotations

import datetime as dt
import json
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa

from setpoint.errors import InvalidDataError, StoreError

FieldType = Literal["str", "ts", "int", "float", "bool", "json"]

_ARROW_TYPES: dict[FieldType, pa.DataType] = {
    "str": pa.string(),
    "ts": pa.timestamp("us", tz="UTC"),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "json": pa.string(),
}

# Naive datetimes are taken as UTC; UTC ones are written with a "Z".
_DUMP_OPTIONS = (
    orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE
)
_REQUIRED = frozenset({"request_id", "ts", "endpoint"})


@dataclass(frozen=True)
class LogSchema:
    """The fixed fields of one kind of log, in column order."""

    kind: str
    fields: tuple[tuple[str, FieldType], ...]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.fields)

    def arrow_schema(self, extras: Iterable[str] = ()) -> pa.Schema:
        columns = [pa.field(name, _ARROW_TYPES[type_]) for name, type_ in self.fields]
        columns += [pa.field(name, pa.string()) for name in sorted(extras)]
        return pa.schema(columns)


_COMMON: tuple[tuple[str, FieldType], ...] = (
    ("request_id", "str"),
    ("ts", "ts"),
    ("endpoint", "str"),
)
_SCHEMAS = {
    "predictions": LogSchema(
        "predictions",
        (
            *_COMMON,
            ("row", "int"),  # the row of a multi-row request
            ("model", "str"),
            ("version", "int"),
            ("route", "str"),
            ("latency_ms", "float"),
            ("cached", "bool"),
            ("fallback", "bool"),
            ("inputs", "json"),
            ("outputs", "json"),
            # What the row cost (serving/meter.py); absent in logs written before.
            ("cpu_ms", "float"),
            ("model_cpu_ms", "float"),
            ("mem_gb_s", "float"),
        ),
    ),
    "feedback": LogSchema("feedback", (*_COMMON, ("row", "int"), ("label", "json"))),
    # Rows the server refused for their values, with the violations that refused them.
    "refused": LogSchema(
        "refused",
        (
            *_COMMON,
            ("row", "int"),
            ("model", "str"),
            ("version", "int"),
            ("inputs", "json"),
            ("reasons", "json"),  # [{column, rule, value}]
        ),
    ),
}


def schema_for(kind: str) -> LogSchema:
    """The schema of ``kind``; a kind other than predictions, feedback or refused has the
    common fields."""
    return _SCHEMAS.get(kind) or LogSchema(kind, _COMMON)


# ---------------------------------------------------------------------------- writing


def _matches(type_: FieldType, value: Any) -> bool:
    exact = type(value)  # the usual types first: the ABC checks below are slow
    if exact is str:
        return type_ in ("str", "json")
    if exact is int:
        return type_ in ("int", "float", "json")
    if exact is float:
        return type_ in ("float", "json")
    if exact is bool:
        return type_ in ("bool", "json")
    if type_ == "str":
        return isinstance(value, str)
    if type_ == "bool":
        return isinstance(value, bool | np.bool_)
    if type_ == "int":
        return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)
    if type_ == "float":
        return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)
    return True  # json: anything orjson can encode; checked by encoding


def _utc_timestamp(value: object) -> dt.datetime:
    if type(value) is dt.datetime and value.tzinfo is dt.UTC:  # what the server writes
        return value
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise InvalidDataError(
                f"log record field 'ts' is {value!r}, which is not an ISO 8601 timestamp"
            ) from None
    if not isinstance(value, dt.datetime):
        raise InvalidDataError(
            f"log record field 'ts' is a {type(value).__name__}; give a datetime "
            "(naive ones are taken as UTC) or an ISO 8601 string"
        )
    if value.tzinfo is not None and value.utcoffset() != dt.timedelta(0):
        value = value.astimezone(dt.UTC)
    return value


def _normalized(record: Mapping[str, Any], schema: LogSchema) -> Mapping[str, Any]:
    """The record with its fixed fields checked and ``ts`` in UTC (copied only if changed)."""
    missing = [name for name in _REQUIRED if record.get(name) is None]
    if missing:
        raise InvalidDataError(
            f"a {schema.kind} log record needs {', '.join(sorted(missing))}",
            details={"missing": sorted(missing)},
        )
    for name, type_ in schema.fields:
        value = record.get(name)
        if value is not None and type_ != "ts" and not _matches(type_, value):
            raise InvalidDataError(
                f"log record field {name!r} should be {type_}, not {type(value).__name__} "
                f"({value!r})",
                details={"field": name, "expected": type_},
            )
    ts = record["ts"]
    utc = _utc_timestamp(ts)
    if utc is ts:
        return record
    return {**record, "ts": utc}


def _default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """``value`` as the log writes JSON (UTC timestamps with a "Z"), without a newline."""
    return orjson.dumps(value, default=_default, option=_DUMP_OPTIONS & ~orjson.OPT_APPEND_NEWLINE)


def encode_records(
    records: Iterable[Mapping[str, Any]], schema: LogSchema, *, checked: bool = False
) -> tuple[bytes, int]:
    """The records as JSON lines, and their count; InvalidDataError names the bad field.
    ``checked`` records are known to have the schema's types and a UTC ``ts``."""
    lines = []
    for record in records:
        try:
            lines.append(
                orjson.dumps(
                    record if checked else _normalized(record, schema),
                    default=_default,
                    option=_DUMP_OPTIONS,
                )
            )
        except orjson.JSONEncodeError as exc:
            lines.append(_encode_slowly(record, schema, exc))
    return b"".join(lines), len(lines)


def _encode_slowly(record: Mapping[str, Any], schema: LogSchema, exc: Exception) -> bytes:
    """What orjson refuses but a request may legally carry (an integer beyond 64 bits
    in a text column): the standard library writes it, so one odd value does not fail
    the group commit of every request batched with it."""
    normal = dict(_normalized(record, schema))
    normal["ts"] = _utc_timestamp(normal["ts"]).isoformat().replace("+00:00", "Z")
    try:
        text = json.dumps(normal, default=_default, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError):
        raise InvalidDataError(f"a {schema.kind} log record cannot be stored: {exc}") from exc
    return text.encode() + b"\n"


# ---------------------------------------------------------------------------- reading


def parse_lines(data: bytes, path: object) -> list[dict[str, Any]]:
    """The records of a segment's bytes.

    The part after the last newline is a write that a crash cut short: it was never
    acknowledged, so it is dropped. NUL bytes that a power loss can leave where an
    unsynced write was are dropped as well; any other unreadable line is corruption.
    """
    return [record for _, record in split_lines(data, path)]


def split_lines(data: bytes, path: object) -> list[tuple[bytes, dict[str, Any]]]:
    """Each record of a segment's bytes with its line as stored (without the newline and
    stray NUL bytes), read as :func:`parse_lines` reads them; what a rewrite keeps."""
    end = data.rfind(b"\n") + 1
    records: list[tuple[bytes, dict[str, Any]]] = []
    for number, line in enumerate(data[:end].split(b"\n")[:-1], start=1):
        line = line.strip(b"\0")
        if not line:
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise StoreError(
                f"log segment {path} is damaged at line {number} ({exc}); move the file "
                "aside to read the rest of the log",
                details={"path": str(path), "line": number},
            ) from exc
        if isinstance(record, dict):
            records.append((line, record))
    return records


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def to_table(records: Sequence[Mapping[str, Any]], schema: LogSchema) -> pa.Table:
    """Parsed records as a typed table (see the module docstring for the columns)."""
    known = schema.names
    extras = sorted({name for record in records for name in record} - known)
    arrow_schema = schema.arrow_schema(extras)
    columns: list[pa.Array] = []
    for field in arrow_schema:
        values = [record.get(field.name) for record in records]
        if field.name not in known or (field.type == pa.string() and _is_json(schema, field.name)):
            columns.append(pa.array([_json_text(v) for v in values], pa.string()))
        elif pa.types.is_timestamp(field.type):
            columns.append(pa.array(values, pa.string()).cast(field.type))
        else:
            columns.append(pa.array(values, field.type))
    return pa.Table.from_arrays(columns, schema=arrow_schema)


def _is_json(schema: LogSchema, name: str) -> bool:
    return dict(schema.fields).get(name) == "json"


def empty_table(schema: LogSchema) -> pa.Table:
    return schema.arrow_schema().empty_table()
