"""The MLflow scoring protocol over the setpoint endpoints, for MLflow clients and tools.

Routes: ``POST /invocations`` (the server's one endpoint; with several it is ambiguous and
answers 400 naming the per-endpoint routes), ``POST /endpoints/{endpoint}/invocations``,
``GET /ping`` and ``GET /health`` (200 when every endpoint is loaded) and ``GET /version``.
Bodies are ``application/json`` holding exactly one of ``dataframe_split``
(``{"columns": [...], "data": [[...]], "index": [...]}``), ``dataframe_records``
(``[{...}]``), ``instances`` or ``inputs`` (records, or an object of column lists), with
an optional ``params`` that is ignored; or ``text/csv`` with a header row, where a column
whose every cell is a number is read as numbers. The answer is ``{"predictions": [...]}``
(labels for classifiers) plus ``probabilities`` and ``classes`` when the model has them,
and ``warnings`` (rows answered outside the contract's soft rules) when there are any.
A malformed body is a MalformedRequestError (400), another content type an
UnsupportedMediaTypeError (415), data the model cannot take a contract error (422).
"""

from __future__ import annotations

import csv
import io
import re
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from setpoint import __version__
from setpoint.errors import (
    ForbiddenError,
    MalformedRequestError,
    NotReadyError,
    SetpointError,
)
from setpoint.serving._hotpath import HotRoute, Reply, header
from setpoint.serving._responses import error_response, json_response, read_body
from setpoint.serving.keys import ApiKey
from setpoint.serving.native import MAX_ROWS, columns_from_lists, columns_from_records
from setpoint.serving.runtime import Answer, EndpointRuntime, PredictRequest
from setpoint.serving.state import ServingState

JSON_TYPE, CSV_TYPE = "application/json", "text/csv"
_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_SHAPE = (
    'send {"dataframe_split": {"columns": [...], "data": [[...]]}}, '
    '{"dataframe_records": [{...}]}, {"instances": [{...}]} or {"inputs": {"column": [...]}}'
)
_INT = re.compile(r"[+-]?\d{1,18}")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|infinity)", re.I)
_NA = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "<NA>"})


class UnsupportedMediaTypeError(SetpointError):
    """A request body in a content type the protocol does not read."""

    code = "unsupported_media_type"
    http_status = 415


def routes(state: ServingState) -> list[BaseRoute]:
    """The MLflow scoring routes answering for every endpoint ``state`` serves."""

    async def ping(_request: Request) -> Response:
        not_ready = state.not_ready()
        if not_ready is not None:
            return error_response(not_ready)
        return json_response({"status": "ready"})

    async def version(_request: Request) -> Response:
        return json_response({"setpoint": __version__})

    async def default_invocations(request: Request) -> Response:
        # Only a request with a query string comes here: the hot path takes the rest.
        runtime = _default(state)
        _media_type(request.headers.get("content-type", ""))
        return _response(await invoke(state, runtime, request.headers.get("content-type", ""),
                                      await read_body(request, state)))  # fmt: skip

    async def endpoint_invocations(request: Request) -> Response:
        runtime = state.runtime(request.path_params["endpoint"])
        _media_type(request.headers.get("content-type", ""))
        return _response(await invoke(state, runtime, request.headers.get("content-type", ""),
                                      await read_body(request, state)))  # fmt: skip

    return [
        Route("/ping", ping),
        Route("/health", ping),
        Route("/version", version),
        Route("/invocations", default_invocations, methods=["POST"]),
        Route("/endpoints/{endpoint}/invocations", endpoint_invocations, methods=["POST"]),
    ]


_INVOCATIONS = re.compile(r"^/(?:endpoints/([^/]+)/)?invocations$")


def hot_routes(state: ServingState) -> list[HotRoute]:
    """The invocations routes, answered before Starlette's stack (``_hotpath.py``)."""

    async def invocations(
        match: re.Match[str], scope: Scope, body: bytes, key: ApiKey | None
    ) -> Reply:
        named = match.group(1)
        if named is None:
            only = None if key is None else key.endpoint
            if only is not None and state.only_endpoint() != only:  # as the auth middleware
                raise ForbiddenError(
                    f"this key is limited to endpoint {only!r}, which /invocations does not "
                    f"serve here; post to /endpoints/{only}/invocations"
                )
            runtime = _default(state)
        else:
            runtime = state.runtime(named)
        return await invoke(state, runtime, header(scope, b"content-type") or "", body)

    return [HotRoute(_INVOCATIONS, invocations, lambda match: match.group(1))]


async def invoke(
    state: ServingState, runtime: EndpointRuntime, content_type: str, body: bytes
) -> Reply:
    """The answer of ``runtime`` to a scoring request's ``body`` of ``content_type``."""
    started, status, served = time.perf_counter(), 500, None
    try:
        kind = _media_type(content_type)
        if kind == CSV_TYPE:
            request = _request(_decode_csv(body))
        else:
            data = _json(body)
            row = _one_row(data)
            request = PredictRequest(None, row=row) if row else _request(_from_json(data))
        answer = await runtime.predict(request)
        status, served = 200, answer.version
        return 200, orjson.dumps(_encode(answer), option=orjson.OPT_SERIALIZE_NUMPY), []
    except SetpointError as error:
        status = error.http_status
        raise
    finally:
        state.metrics.observe(runtime.name, served, "mlflow", status, time.perf_counter() - started)


def _response(reply: Reply) -> Response:
    return Response(reply[1], status_code=reply[0], media_type=JSON_TYPE)


def _default(state: ServingState) -> EndpointRuntime:
    names = state.names()
    if len(names) == 1:
        return state.runtime(names[0])
    if not names:
        raise NotReadyError("this server has no endpoint yet; deploy one with: setpoint deploy")
    raise MalformedRequestError(
        f"this server has {len(names)} endpoints, so /invocations is ambiguous; post to "
        + ", ".join(f"/endpoints/{n}/invocations" for n in names),
        details={"endpoints": names},
    )


def _media_type(raw: str) -> str:
    kind = raw.split(";", 1)[0].strip().lower()
    if kind not in (JSON_TYPE, CSV_TYPE):
        raise UnsupportedMediaTypeError(
            f"content type {raw or '(none)'!r} is not supported; "
            f"send {JSON_TYPE} ({_SHAPE}) or {CSV_TYPE} with a header row",
            details={"supported": [JSON_TYPE, CSV_TYPE]},
        )
    return kind


def _request(columns: dict[str, list[Any]]) -> PredictRequest:
    return PredictRequest(columns, len(next(iter(columns.values()))))


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequestError(f"the body is not valid JSON ({exc}); {_SHAPE}") from None


def _one_row(data: Any) -> dict[str, Any] | None:
    """The record of the usual body, one row in ``dataframe_split`` (no index) or
    ``dataframe_records``, taken as it is; None for anything else, which
    ``_from_json`` checks and reads."""
    if type(data) is not dict or len(data) != 1:
        return None
    split = data.get("dataframe_split")
    if type(split) is dict and len(split) == 2:
        names, rows = split.get("columns"), split.get("data")
        if type(names) is not list or type(rows) is not list or len(rows) != 1:
            return None
        row = rows[0]
        if type(row) is not list or not names or len(row) != len(names):
            return None
        record = dict(zip(names, row, strict=True))
        if len(record) != len(names) or not all(type(n) is str for n in names):
            return None
        return record
    records = data.get("dataframe_records")
    if type(records) is list and len(records) == 1 and type(records[0]) is dict and records[0]:
        return records[0]
    return None


def _from_json(data: Any) -> dict[str, list[Any]]:
    if not isinstance(data, dict):
        raise MalformedRequestError(f"the body must be a JSON object; {_SHAPE}")
    unknown = sorted(set(data) - {*_FORMATS, "params"})
    given = [f for f in _FORMATS if f in data]
    if unknown or len(given) != 1:
        found = ", ".join(map(repr, sorted(data))) or "no keys"
        raise MalformedRequestError(
            f"the body has {found}; it needs exactly one of {', '.join(_FORMATS)} "
            f"(and optionally params); {_SHAPE}"
        )
    value = data[given[0]]
    if given[0] == "dataframe_split":
        return _from_split(value)
    if given[0] == "dataframe_records":
        return columns_from_records(value)
    if isinstance(value, dict):
        return columns_from_lists(value)
    if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        return columns_from_records(value)
    raise MalformedRequestError(
        f"{given[0]} must be a non-empty list of records or an object of column lists; "
        "tensor inputs are not supported by tabular endpoints"
    )


def _from_split(split: Any) -> dict[str, list[Any]]:
    if not isinstance(split, dict) or set(split) - {"columns", "data", "index"}:
        raise MalformedRequestError(
            'dataframe_split must be {"columns": [...], "data": [[...], ...]} '
            'with an optional "index"'
        )
    names, rows = split.get("columns"), split.get("data")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise MalformedRequestError("dataframe_split.columns must be a non-empty list of names")
    if len(set(names)) != len(names):
        raise MalformedRequestError("dataframe_split.columns has a name more than once")
    if not isinstance(rows, list) or not rows:
        raise MalformedRequestError("dataframe_split.data must be a non-empty list of rows")
    if len(rows) > MAX_ROWS:
        raise MalformedRequestError(f"at most {MAX_ROWS} rows per request; split the batch")
    bad = [i for i, r in enumerate(rows) if not isinstance(r, list) or len(r) != len(names)]
    if bad:
        raise MalformedRequestError(
            f"dataframe_split.data row(s) {', '.join(map(str, bad[:10]))} are not lists "
            f"of {len(names)} values, one per column"
        )
    index = split.get("index")
    if index is not None and (not isinstance(index, list) or len(index) != len(rows)):
        raise MalformedRequestError("dataframe_split.index must list one label per row")
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}


def _decode_csv(body: bytes) -> dict[str, list[Any]]:
    try:
        rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise MalformedRequestError(f"the body is not UTF-8 CSV ({exc})") from None
    rows = [r for r in rows if r]  # blank lines
    if len(rows) < 2:
        raise MalformedRequestError("the CSV needs a header row and at least one data row")
    header, data = rows[0], rows[1:]
    if len(set(header)) != len(header):
        raise MalformedRequestError("the CSV header has a column name more than once")
    if len(data) > MAX_ROWS:
        raise MalformedRequestError(f"at most {MAX_ROWS} rows per request; split the batch")
    bad = [i + 2 for i, r in enumerate(data) if len(r) != len(header)]
    if bad:
        raise MalformedRequestError(
            f"CSV line(s) {', '.join(map(str, bad[:10]))} do not have {len(header)} fields"
        )
    return {name: _typed([r[i] for r in data]) for i, name in enumerate(header)}


def _typed(cells: list[str]) -> list[Any]:
    """A CSV column as numbers when every present cell is one (ints when all are)."""
    present = [c.strip() for c in cells if c.strip() not in _NA]
    if present and all(_INT.fullmatch(c) for c in present):
        return [None if c.strip() in _NA else int(c) for c in cells]
    if present and all(_FLOAT.fullmatch(c) for c in present):
        return [None if c.strip() in _NA else float(c) for c in cells]
    if present and all(c.lower() in ("true", "false") for c in present):
        return [None if c.strip() in _NA else c.strip().lower() == "true" for c in cells]
    return [None if c in _NA else c for c in cells]


def _encode(answer: Answer) -> dict[str, Any]:
    body: dict[str, Any] = {"predictions": answer.predictions}
    if answer.probabilities is not None:
        body["probabilities"] = answer.probabilities
        body["classes"] = answer.classes
    if answer.errors:
        body["errors"] = answer.errors
    if answer.warnings:  # MLflow clients read predictions and ignore other keys
        body["warnings"] = answer.warnings
    return body
