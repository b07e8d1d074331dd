"""The native protocol: ``{"records": [...]}`` or ``{"columns": {...}}`` in, JSON out."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from setpoint.errors import MalformedRequestError
from setpoint.serving.runtime import Answer, PredictRequest

_SHAPE = 'send {"records": [{"column": value, ...}, ...]} or {"columns": {"column": [values]}}'
MAX_ROWS = 100_000
_KEYS = frozenset({"records", "columns", "request_id"})


def decode(body: bytes) -> PredictRequest:
    """A predict request from the body, or a MalformedRequestError saying what to send."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequestError(f"the body is not valid JSON ({exc}); {_SHAPE}") from None
    if type(data) is dict and len(data) == 1:  # the usual request: one record, no id
        records = data.get("records")
        if type(records) is list and len(records) == 1 and type(records[0]) is dict and records[0]:
            return PredictRequest(None, 1, row=records[0])
    if not isinstance(data, dict):
        raise MalformedRequestError(f"the body is a JSON {_kind(data)}; {_SHAPE}")
    extra = [] if data.keys() <= _KEYS else sorted(set(data) - _KEYS)
    if extra or ("records" in data) == ("columns" in data):
        raise MalformedRequestError(
            f"the body has {', '.join(map(repr, sorted(data))) or 'no keys'}; {_SHAPE}"
            + (" (and optionally request_id)" if not extra else f"; unknown: {', '.join(extra)}")
        )
    request_id = data.get("request_id")
    if request_id is not None and (
        not isinstance(request_id, str) or not 0 < len(request_id) <= 200
    ):
        raise MalformedRequestError("request_id must be text of 1 to 200 characters")
    if "records" in data:  # {"records": null} is a records request with bad records
        columns = columns_from_records(data["records"])
    else:
        columns = columns_from_lists(data["columns"])
    n_rows = len(next(iter(columns.values())))
    if request_id is not None:
        return PredictRequest(columns, n_rows, request_id)
    return PredictRequest(columns, n_rows)


def encode(answer: Answer, *, endpoint: str) -> bytes:
    body: dict[str, Any] = {
        "request_id": answer.request_id,
        "endpoint": endpoint,
        "model": answer.model,
        "version": answer.version,
        "predictions": answer.predictions,
    }
    if answer.probabilities is not None:
        body["classes"] = answer.classes
        body["probabilities"] = answer.probabilities
    if answer.errors:
        body["errors"] = answer.errors
    if answer.warnings:
        body["warnings"] = answer.warnings
    if answer.explanations is not None:
        body["explanations"] = answer.explanations
    body["flags"] = {"fallback": answer.fallback, "cached": answer.cached}
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


_TOP = re.compile(r"[1-9][0-9]{0,5}")
# Contributions answered per row and output unless ``top`` says otherwise: enough to
# say why, short enough to read and to log with every explained request.
TOP = 10


def explain_options(query: Mapping[str, str], *, explain: bool) -> tuple[bool, int | None]:
    """Whether to explain (``explain``: the explain route; else ``?explain=true``) and
    how many contributions per row (``?top=K``, default ``TOP``; ``?top=all``: every
    feature), from a request's query parameters."""
    unknown = sorted(set(query) - {"explain", "top"})
    if unknown:
        raise MalformedRequestError(
            f"unknown query parameter(s) {', '.join(unknown)}; this route takes "
            "explain=true|false and top=K|all"
        )
    flag = query.get("explain")
    if flag is not None:
        if flag not in ("true", "false"):
            raise MalformedRequestError(f"explain must be true or false, not {flag!r}")
        explain = explain or flag == "true"
    top = query.get("top", str(TOP))
    if top == "all":
        return explain, None
    if _TOP.fullmatch(top) is None:
        raise MalformedRequestError(
            f"top must be a whole number of features from 1 to 999999, or all; not {top!r}"
        )
    return explain, int(top)


def columns_from_records(records: Any) -> dict[str, list[Any]]:
    if not isinstance(records, list) or not records:
        raise MalformedRequestError(f"records must be a non-empty list of objects; {_SHAPE}")
    if len(records) > MAX_ROWS:
        raise MalformedRequestError(f"at most {MAX_ROWS} records per request; split the batch")
    bad = [i for i, r in enumerate(records) if not isinstance(r, dict)]
    if bad:
        raise MalformedRequestError(
            f"record(s) {', '.join(map(str, bad[:10]))} are not objects of column: value pairs"
        )
    if len(records) == 1:  # the common single-row request
        if not records[0]:
            raise MalformedRequestError("the records have no fields")
        return {name: [value] for name, value in records[0].items()}
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    if not names:
        raise MalformedRequestError("the records have no fields")
    return {name: [r.get(name) for r in records] for name in names}


def columns_from_lists(columns: Any) -> dict[str, list[Any]]:
    if not isinstance(columns, dict) or not columns:
        raise MalformedRequestError(f"columns must be a non-empty object of lists; {_SHAPE}")
    not_lists = [n for n, v in columns.items() if not isinstance(v, list)]
    if not_lists:
        raise MalformedRequestError(f"column(s) {', '.join(not_lists)} must be lists of values")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise MalformedRequestError(
            "every column must hold the same, non-zero number of values; got "
            + ", ".join(f"{n}={len(v)}" for n, v in columns.items())
        )
    if lengths.pop() > MAX_ROWS:
        raise MalformedRequestError(f"at most {MAX_ROWS} rows per request; split the batch")
    return dict(columns)


def _kind(value: Any) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), "null"
    )
