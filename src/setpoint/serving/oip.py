"""The Open Inference Protocol v2 (KServe / Triton REST) over the setpoint endpoints.

An OIP *model* is a setpoint endpoint, its one *version* the model version it serves.
Routes: ``/v2/health/live``, ``/v2/health/ready``, ``/v2`` (server metadata),
``/v2/models/{name}[/versions/{v}]`` (model metadata), ``.../ready`` and ``.../infer``.
Each input tensor is one feature column (shape ``[N]`` or ``[N, 1]``). ``infer`` takes
JSON tensors and the binary tensor data extension (``Inference-Header-Content-Length``:
a JSON header, then the raw tensors in input order; numbers little-endian, BYTES
elements as a 4-byte little-endian length and the bytes) and answers the same way.
Outputs: ``predictions`` (FP64 for regression; for a classifier the datatype of its
class labels: INT64 for integers, FP64 for other numbers, BOOL, BYTES for text, so a
client gets back the labels it trained on, not their text) and, for classifiers,
``probabilities`` (FP64 ``[N, n_classes]``). Rows a per-row endpoint rejected come back
as a placeholder (``""``, NaN, 0 or false), with the violations under the response's
``parameters.errors``; rows
answered outside the contract's soft rules are listed (JSON text, like errors) under
``parameters.warnings``.
Every malformed request is a MalformedRequestError (400); data the model cannot take
is a contract error (422).
"""

from __future__ import annotations

import math
import re
import struct
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from setpoint import __version__
from setpoint.errors import (
    ContractViolationError,
    MalformedRequestError,
    NotFoundError,
    SetpointError,
)
from setpoint.serving._hotpath import HotRoute, Reply, header, parse_length
from setpoint.serving._responses import error_response, json_response, read_body
from setpoint.serving.native import MAX_ROWS
from setpoint.serving.runtime import Answer, EndpointRuntime, PredictRequest
from setpoint.serving.state import ServingState

HEADER = "Inference-Header-Content-Length"
_HEADER_KEY = HEADER.lower().encode()
_DTYPES: dict[str, str] = {
    "BOOL": "<?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
_INTEGERS = frozenset(d for d in _DTYPES if "INT" in d)
_FLOATS = frozenset({"FP16", "FP32", "FP64"})
_DATATYPE_OF_KIND: dict[str, str] = {
    "numeric": "FP64",
    "integer": "INT64",
    "boolean": "BOOL",
    "categorical": "BYTES",
    "string": "BYTES",
    "datetime": "BYTES",
}
_ACCEPTS: dict[str, frozenset[str]] = {
    "numeric": _INTEGERS | _FLOATS,
    "integer": _INTEGERS,
    "boolean": frozenset({"BOOL"}),
    "categorical": frozenset({"BYTES"}),
    "string": frozenset({"BYTES"}),
    "datetime": frozenset({"BYTES"}),
}
_SHAPE = (
    'send {"inputs": [{"name": COLUMN, "shape": [N], "datatype": TYPE, "data": [...]}, ...]}'
    " with one tensor per feature column; see GET /v2/models/{name} for the inputs"
)


def routes(state: ServingState) -> list[BaseRoute]:
    """The OIP v2 routes answering for every endpoint ``state`` serves."""

    async def live(_request: Request) -> Response:
        return json_response({"live": True})

    async def ready(_request: Request) -> Response:
        not_ready = state.not_ready()
        if not_ready is not None:
            return error_response(not_ready)
        return json_response({"ready": True})

    async def server_metadata(_request: Request) -> Response:
        return json_response(
            {"name": "setpoint", "version": __version__, "extensions": ["binary_tensor_data"]}
        )

    async def model_metadata(request: Request) -> Response:
        return json_response(_metadata(_model(state, request)))

    async def model_ready(request: Request) -> Response:
        runtime = _model(state, request)
        return json_response({"name": runtime.name, "ready": True})

    async def infer(request: Request) -> Response:
        # Only a request with a query string comes here: the hot path takes the rest.
        params = request.path_params
        _model_named(state, params["name"], params.get("version"))  # 404 before the body
        body = await read_body(request, state)
        _, payload, headers = await answer(
            state, params["name"], params.get("version"), request.headers.get(HEADER), body
        )
        return Response(payload, headers={k.decode(): v.decode() for k, v in headers})

    paths = ("/v2/models/{name}", "/v2/models/{name}/versions/{version}")
    found: list[BaseRoute] = [
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2", server_metadata),
    ]
    for path in paths:
        found.append(Route(path, model_metadata))
        found.append(Route(f"{path}/ready", model_ready))
        found.append(Route(f"{path}/infer", infer, methods=["POST"]))
    return found


_INFER = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")


def hot_routes(state: ServingState) -> list[HotRoute]:
    """The infer routes, answered before Starlette's stack (``_hotpath.py``)."""

    async def infer(match: re.Match[str], scope: Scope, body: bytes, _key: object) -> Reply:
        declared = header(scope, _HEADER_KEY)
        return await answer(state, match.group(1), match.group(2), declared, body)

    return [HotRoute(_INFER, infer, lambda match: match.group(1))]


async def answer(
    state: ServingState, name: str, version: str | None, declared: str | None, body: bytes
) -> Reply:
    """The answer to an infer request for model ``name`` (at ``version``, when named)
    with ``body`` (``declared``: its Inference-Header-Content-Length)."""
    started, status, served = time.perf_counter(), 500, None
    runtime = _model_named(state, name, version)
    try:
        head, tensors = _split(body, declared)
        predict, outputs = _decode(head, tensors, runtime)
        if outputs is not None:
            _check_outputs(outputs, runtime)
        answered = await runtime.predict(predict)
        payload, headers = _encode(answered, runtime, head, outputs)
        status, served = 200, answered.version
        return 200, payload, headers
    except SetpointError as error:
        status = error.http_status
        raise
    finally:
        state.metrics.observe(runtime.name, served, "oip", status, time.perf_counter() - started)


def _model(state: ServingState, request: Request) -> EndpointRuntime:
    params = request.path_params
    return _model_named(state, params["name"], params.get("version"))


def _model_named(state: ServingState, name: str, version: str | None) -> EndpointRuntime:
    runtime = state.runtime(name)
    served = str(runtime.model.version.version)
    if version is not None and version != served:
        raise NotFoundError(
            f"model {runtime.name!r} has no version {version!r}; it serves version {served}"
        )
    return runtime


def _check_outputs(outputs: list[dict[str, Any]] | None, runtime: EndpointRuntime) -> None:
    names = [o["name"] for o in _metadata(runtime)["outputs"]]
    for output in outputs or []:
        if output["name"] not in names:
            raise MalformedRequestError(
                f"output {output['name'][:40]!r} does not exist; model {runtime.name!r} has "
                + ", ".join(names)
            )
        _parameters(output)


def _metadata(runtime: EndpointRuntime) -> dict[str, Any]:
    model = runtime.model
    classes = model.predictor.classes
    outputs: list[dict[str, Any]] = [
        {"name": "predictions", "datatype": label_datatype(classes), "shape": [-1]}
    ]
    if classes is not None:
        outputs.append({"name": "probabilities", "datatype": "FP64", "shape": [-1, len(classes)]})
    return {
        "name": runtime.name,
        "versions": [str(model.version.version)],
        "platform": "setpoint",
        "inputs": [
            {"name": name, "datatype": _DATATYPE_OF_KIND.get(rule.kind, "BYTES"), "shape": [-1]}
            for name, rule in model.contract.columns.items()
        ],
        "outputs": outputs,
    }


# -- request --------------------------------------------------------------------------


def _split(body: bytes, declared: str | None) -> tuple[dict[str, Any], bytes]:
    """The JSON header and the binary tail (empty without the extension)."""
    if declared is None:
        head, tail = body, b""
    else:
        length = parse_length(declared)
        if length is None or length > len(body):
            raise MalformedRequestError(
                f"{HEADER} is {declared[:40]!r}; it must be the byte length of the JSON "
                f"header, at most the body's {len(body)} bytes"
            )
        head, tail = body[:length], body[length:]
    try:
        header = orjson.loads(head)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequestError(
            f"the JSON header is not valid JSON ({exc}); {_SHAPE}"
        ) from None
    if not isinstance(header, dict):
        raise MalformedRequestError(f"the JSON header is not an object; {_SHAPE}")
    return header, tail


def _decode(
    header: dict[str, Any], tail: bytes, runtime: EndpointRuntime
) -> tuple[PredictRequest, list[dict[str, Any]] | None]:
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise MalformedRequestError(f"the request has no inputs list; {_SHAPE}")
    request_id = header.get("id")
    if request_id is not None and (not isinstance(request_id, str) or len(request_id) > 200):
        raise MalformedRequestError("id must be text of at most 200 characters")
    outputs = header.get("outputs")
    if outputs is not None and (
        not isinstance(outputs, list)
        or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs)
    ):
        raise MalformedRequestError('outputs must be a list of {"name": ..., "parameters": {...}}')
    _parameters(header)
    rules = runtime.model.contract.columns
    if not tail:
        usual = _usual_columns(inputs, rules)
        if usual is not None:
            return PredictRequest(usual[0], usual[1], request_id or None), outputs
    columns: dict[str, list[Any]] = {}
    n_rows: int | None = None
    offset = 0
    for index, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise MalformedRequestError(f"input {index} is not an object; {_SHAPE}")
        name, datatype, n = _describe(tensor, index)
        if name in columns:
            raise MalformedRequestError(f"input {name!r} is given twice")
        if n_rows is not None and n != n_rows:
            raise MalformedRequestError(
                f"input {name!r} has {n} rows but the inputs before it have {n_rows}; "
                "every input is one column of the same rows"
            )
        n_rows = n
        size = _parameters(tensor).get("binary_data_size")
        if size is None:
            if "data" not in tensor:
                raise MalformedRequestError(f"input {name!r} has neither data nor binary_data_size")
            values = _from_json(tensor["data"], datatype, n, name)
        else:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise MalformedRequestError(f"input {name!r}: binary_data_size must be a count")
            if offset + size > len(tail):
                raise MalformedRequestError(
                    f"input {name!r} declares {size} bytes but only {len(tail) - offset} "
                    "are left after the JSON header"
                )
            values = _from_binary(tail[offset : offset + size], datatype, n, name)
            offset += size
        rule = rules.get(name)
        if rule is None:
            raise ContractViolationError(
                f"input {name!r} is not a column the model takes; it takes {', '.join(rules)}",
                details={"violations": [_violation(name, "unknown_column")]},
            )
        if datatype not in _ACCEPTS.get(rule.kind, frozenset({datatype})):
            raise ContractViolationError(
                f"input {name!r} is {datatype} but the column is {rule.kind}; send it as "
                f"{_DATATYPE_OF_KIND.get(rule.kind, 'BYTES')}",
                details={"violations": [_violation(name, "datatype")]},
            )
        if size is not None and datatype in _FLOATS:  # JSON holds no NaN; binary may
            values = [None if v != v else v for v in values]
        if rule.kind == "numeric":
            values = [None if v is None else float(v) for v in values]
        columns[name] = values
    if offset != len(tail):
        raise MalformedRequestError(
            f"the binary data after the JSON header is {len(tail)} bytes but the inputs' "
            f"binary_data_size add up to {offset}"
        )
    assert n_rows is not None
    return PredictRequest(columns, n_rows, request_id or None), outputs


def _usual_columns(
    inputs: list[Any], rules: Mapping[str, Any]
) -> tuple[dict[str, list[Any]], int] | None:
    """The columns and row count of JSON tensors in the usual form (one column each,
    shape ``[N]``, ``data`` a flat list of N values of a datatype the column takes, no
    parameters), checked in one pass; None for anything else, which ``_decode`` then
    reads value by value and, when it is wrong, says why."""
    columns: dict[str, list[Any]] = {}
    n_rows = -1
    for tensor in inputs:
        if type(tensor) is not dict or "parameters" in tensor:
            return None
        name, shape, data = tensor.get("name"), tensor.get("shape"), tensor.get("data")
        if type(name) is not str or name in columns or type(data) is not list:
            return None
        if type(shape) is not list or len(shape) != 1 or type(shape[0]) is not int:
            return None
        if shape[0] != len(data):
            return None
        rule = rules.get(name)
        if rule is None:
            return None
        take = _USUAL.get((rule.kind, tensor.get("datatype")))
        values = None if take is None else take(data)
        if values is None or (n_rows >= 0 and len(values) != n_rows):
            return None
        n_rows = len(values)
        columns[name] = values
    if not 1 <= n_rows <= MAX_ROWS:
        return None
    return columns, n_rows


def _numbers(data: list[Any]) -> list[Any] | None:
    for v in data:
        kind = type(v)
        if kind is not float and kind is not int and v is not None:
            return None
    return [None if v is None else float(v) for v in data]


def _of(kind: type) -> Callable[[list[Any]], list[Any] | None]:
    def take(data: list[Any]) -> list[Any] | None:
        for v in data:
            if type(v) is not kind and v is not None:
                return None
        return data

    return take


def _int64s(data: list[Any]) -> list[Any] | None:
    low, high = _INT_RANGES["INT64"]
    for v in data:
        if v is not None and (type(v) is not int or not low <= v <= high):
            return None
    return data


def _int64_numbers(data: list[Any]) -> list[Any] | None:
    return None if _int64s(data) is None else [None if v is None else float(v) for v in data]


_USUAL: dict[tuple[str, Any], Callable[[list[Any]], list[Any] | None]] = {
    ("numeric", "FP64"): _numbers,
    ("numeric", "FP32"): _numbers,
    ("numeric", "INT64"): _int64_numbers,
    ("integer", "INT64"): _int64s,
    ("boolean", "BOOL"): _of(bool),
    ("categorical", "BYTES"): _of(str),
    ("string", "BYTES"): _of(str),
    ("datetime", "BYTES"): _of(str),
}


def _violation(column: str, rule: str) -> dict[str, Any]:
    return {"row": None, "column": column, "rule": rule, "value": None}


def _parameters(obj: dict[str, Any]) -> dict[str, Any]:
    found = obj.get("parameters")
    if found is None:
        return {}
    if not isinstance(found, dict):
        raise MalformedRequestError("parameters must be a JSON object")
    return found


def _describe(tensor: dict[str, Any], index: int) -> tuple[str, str, int]:
    name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
    if not isinstance(name, str) or not name:
        raise MalformedRequestError(f"input {index} has no name; {_SHAPE}")
    if datatype != "BYTES" and datatype not in _DTYPES:
        raise MalformedRequestError(
            f"input {name!r} has datatype {str(datatype)[:40]!r}; use one of BYTES, "
            + ", ".join(_DTYPES)
        )
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 2
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        or (len(shape) == 2 and shape[1] != 1)
    ):
        raise MalformedRequestError(
            f"input {name!r} has shape {str(shape)[:60]}; an input is one column: [N] or [N, 1]"
        )
    n = int(shape[0])
    if not 1 <= n <= MAX_ROWS:
        raise MalformedRequestError(f"input {name!r} has {n} rows; send 1 to {MAX_ROWS:,}")
    return name, str(datatype), n


def _from_json(data: Any, datatype: str, n: int, name: str) -> list[Any]:
    if not isinstance(data, list):
        raise MalformedRequestError(f"input {name!r}: data must be a list")
    flat: list[Any] = data
    if any(type(item) is list for item in data):  # [[v], [v]]: a shape of [N, 1]
        flat = []
        for item in data:
            if isinstance(item, list):
                flat.extend(item)
            else:
                flat.append(item)
    if len(flat) != n:
        raise MalformedRequestError(f"input {name!r} has {len(flat)} values but its shape says {n}")
    for value in flat:
        if value is not None and not _fits(value, datatype):
            raise MalformedRequestError(
                f"input {name!r} is {datatype} but holds {str(value)[:40]!r} "
                f"({type(value).__name__})"
            )
    return flat


def _fits(value: Any, datatype: str) -> bool:
    kind = type(value)  # orjson gives exact types: bool is never taken for an int here
    if datatype in _FLOATS:
        return kind is float or kind is int
    if datatype == "BYTES":
        return kind is str
    if datatype == "BOOL":
        return kind is bool
    low, high = _INT_RANGES[datatype]
    return kind is int and low <= value <= high


_INT_RANGES = {
    name: (int(np.iinfo(np.dtype(dtype)).min), int(np.iinfo(np.dtype(dtype)).max))
    for name, dtype in _DTYPES.items()
    if name in _INTEGERS
}


def _from_binary(raw: bytes, datatype: str, n: int, name: str) -> list[Any]:
    if datatype != "BYTES":
        dtype = np.dtype(_DTYPES[datatype])
        if len(raw) != n * dtype.itemsize:
            raise MalformedRequestError(
                f"input {name!r} has {len(raw)} bytes but {n} {datatype} values take "
                f"{n * dtype.itemsize}"
            )
        values: list[Any] = np.frombuffer(raw, dtype=dtype).tolist()
        return values
    out: list[Any] = []
    at = 0
    while at < len(raw):
        if len(out) == n or at + 4 > len(raw):
            raise MalformedRequestError(f"input {name!r}: the BYTES data do not hold {n} elements")
        (length,) = struct.unpack_from("<I", raw, at)
        at += 4
        if at + length > len(raw):
            raise MalformedRequestError(f"input {name!r}: a BYTES element runs past its data")
        try:
            out.append(raw[at : at + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise MalformedRequestError(f"input {name!r}: a BYTES element is not UTF-8") from None
        at += length
    if len(out) != n:
        raise MalformedRequestError(
            f"input {name!r} has {len(out)} BYTES elements but its shape says {n}"
        )
    return out


# -- response -------------------------------------------------------------------------


def label_datatype(labels: list[Any] | None) -> str:
    """The OIP datatype that holds every one of ``labels`` as it is (None: regression,
    FP64): BOOL, INT64 (within 64 bits), FP64 (numbers), else BYTES (their text)."""
    if labels is None:
        return "FP64"
    if all(isinstance(v, bool) for v in labels):
        return "BOOL"
    if all(type(v) is int and _INT64[0] <= v <= _INT64[1] for v in labels):
        return "INT64"
    if all(type(v) in (int, float) for v in labels):
        return "FP64"
    return "BYTES"


_INT64 = (-(2**63), 2**63 - 1)
# What a row a per-row endpoint rejected holds in each output datatype (its violations
# are in the response's parameters.errors).
_PLACEHOLDER: dict[str, Any] = {"FP64": math.nan, "INT64": 0, "BOOL": False}
_LABEL_DTYPES = {"FP64": "<f8", "INT64": "<i8", "BOOL": "?"}


def _encode(
    answer: Answer,
    runtime: EndpointRuntime,
    header: dict[str, Any],
    requested: list[dict[str, Any]] | None,
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The response body and its headers (content-type, the JSON header's length when
    binary outputs follow it)."""
    n = len(answer.predictions)
    tensors: dict[str, tuple[str, list[int], np.ndarray | list[str]]] = {}
    datatype = _labels_datatype(answer)
    default_binary = _parameters(header).get("binary_data_output") is True
    if requested is None and not default_binary:
        return _encode_json(answer, runtime, header, datatype), _JSON_ONLY
    if datatype == "BYTES":
        labels = ["" if p is None else str(p) for p in answer.predictions]
        tensors["predictions"] = ("BYTES", [n], labels)
    else:
        blank = _PLACEHOLDER[datatype]
        values = [blank if p is None else p for p in answer.predictions]
        tensors["predictions"] = (datatype, [n], np.array(values, dtype=_LABEL_DTYPES[datatype]))
    if answer.probabilities is not None:
        width = len(answer.classes or [])
        rows = [row if row else [math.nan] * width for row in answer.probabilities]
        tensors["probabilities"] = ("FP64", [n, width], np.array(rows, dtype="<f8"))
    wanted: list[tuple[str, bool]] = []
    for output in requested if requested is not None else [{"name": t} for t in tensors]:
        name = output["name"]
        binary = _parameters(output).get("binary_data", default_binary)
        wanted.append((name, binary is True))
    described: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, binary in wanted:
        datatype, shape, data = tensors[name]
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
        if binary:
            blob = _to_binary(data)
            blobs.append(blob)
            entry["parameters"] = {"binary_data_size": len(blob)}
        elif isinstance(data, np.ndarray) and data.dtype.kind == "f":
            entry["data"] = [None if math.isnan(v) else v for v in data.reshape(-1).tolist()]
        elif isinstance(data, np.ndarray):
            entry["data"] = data.reshape(-1).tolist()
        else:
            entry["data"] = data
        described.append(entry)
    head = _body(answer, runtime, header, described)
    if not blobs:
        return head, _JSON_ONLY
    return head + b"".join(blobs), [
        (b"content-type", b"application/octet-stream"),
        (_HEADER_KEY, str(len(head)).encode()),
    ]


_JSON_ONLY = [(b"content-type", b"application/json")]


def _labels_datatype(answer: Answer) -> str:
    """The predictions' datatype: the classes' (a fallback's constant answer need not
    be one of them: then text holds all)."""
    datatype = label_datatype(answer.classes)
    if answer.classes is not None and answer.fallback:
        answered = [p for p in answer.predictions if p is not None]
        if datatype != label_datatype([*answer.classes, *answered]):
            return "BYTES"
    return datatype


def _encode_json(
    answer: Answer, runtime: EndpointRuntime, header: dict[str, Any], datatype: str
) -> bytes:
    """Every output as JSON, the usual answer, without the arrays ``_encode`` makes for
    binary outputs: the same values (a refused row's placeholder, NaN as null)."""
    predictions = answer.predictions
    n = len(predictions)
    if datatype == "BYTES":
        labels: list[Any] = ["" if p is None else str(p) for p in predictions]
    elif datatype == "FP64":
        labels = [None if p is None or p != p else float(p) for p in predictions]
    elif datatype == "INT64":
        labels = [0 if p is None else int(p) for p in predictions]
    else:  # BOOL
        labels = [False if p is None else bool(p) for p in predictions]
    outputs: list[dict[str, Any]] = [
        {"name": "predictions", "datatype": datatype, "shape": [n], "data": labels}
    ]
    if answer.probabilities is not None:
        width = len(answer.classes or [])
        flat = [
            None if v != v else float(v)
            for row in answer.probabilities
            for v in (row if row else [math.nan] * width)
        ]
        outputs.append(
            {"name": "probabilities", "datatype": "FP64", "shape": [n, width], "data": flat}
        )
    return _body(answer, runtime, header, outputs)


def _body(
    answer: Answer, runtime: EndpointRuntime, header: dict[str, Any], outputs: list[dict[str, Any]]
) -> bytes:
    """The response's JSON (its header, when binary outputs follow)."""
    body: dict[str, Any] = {
        "model_name": runtime.name,
        "model_version": str(answer.version),
        "id": header.get("id") or answer.request_id,
        "outputs": outputs,
    }
    # OIP parameters hold scalars, so the violations go as JSON text.
    parameters: dict[str, str] = {}
    if answer.errors:
        parameters["errors"] = orjson.dumps(answer.errors).decode()
    if answer.warnings:
        parameters["warnings"] = orjson.dumps(answer.warnings).decode()
    if parameters:
        body["parameters"] = parameters
    return orjson.dumps(body)


def _to_binary(data: np.ndarray | list[str]) -> bytes:
    if isinstance(data, np.ndarray):  # already in its little-endian wire dtype
        return data.tobytes()
    parts: list[bytes] = []
    for text in data:
        encoded = text.encode("utf-8")
        parts.append(struct.pack("<I", len(encoded)) + encoded)
    return b"".join(parts)
