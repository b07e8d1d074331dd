"""The API described: ``GET /openapi.json`` (OpenAPI 3.1) and ``GET /docs/plain`` (HTML;
``/docs`` is Swagger UI on the same document, see ``serving.swagger``).

Each endpoint gets concrete predict and feedback paths whose request schema is made
from its model's data contract, so a client generator or a person sees the columns
and their types. The ranges and categories learnt from the training data, and example
rows made from them, are shown only for a deployment that allows it (``setpoint deploy
NAME --docs-values``), and never for a column of personal data: they describe the
training data to whoever can read the docs (a key with the ``read`` or ``admin`` scope
once the server needs keys; a key limited to one endpoint sees only that one). A range
or category list the server enforces
(``enforce: reject``) is a JSON Schema ``minimum``/``maximum``/``enum``; one it only
warns about (the default: the row is answered, marked in ``warnings``) is an
annotation, ``x-soft``, so that a client validating against the schema does not
refuse values the server answers. The document is rebuilt only when the set of
endpoints, model versions or deployment revisions changes. The HTML page is rendered
on the server from the same document, with no script and nothing fetched from
elsewhere, so it works on an offline network.
"""

from __future__ import annotations

import html
import json
import math
import re
import shlex
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from setpoint import __version__
from setpoint.data.contract import ColumnRule, Contract
from setpoint.data.kinds import DATETIME_TEXT
from setpoint.serving._responses import json_response
from setpoint.serving.auth import OPEN_PATHS, limited_to
from setpoint.serving.feedback import MAX_ITEMS
from setpoint.serving.native import MAX_ROWS, TOP
from setpoint.serving.runtime import EndpointRuntime
from setpoint.serving.state import ServingState

JSON = "application/json"
_TYPES = {"numeric": "number", "integer": "integer", "boolean": "boolean"}

_INT64 = (-(2**63), 2**63 - 1)
_ERRORS = {
    400: "The body or a header is malformed: not JSON, or not the expected shape",
    401: "No API key, or an unknown or revoked one (only once the workspace has keys)",
    403: "The key's scope or endpoint does not cover this request",
    404: "No such endpoint (or model version)",
    408: "The body did not arrive within body_timeout_seconds",
    409: "The request id was already used on this endpoint (send a new one, or none), or "
    "explanations were asked of a model that cannot give them (the message says why)",
    413: "The body is over max_request_bytes",
    415: "The content type is not one this route reads",
    422: "The data breaks the model's contract; details list every violation",
    429: "The key is over its rate limit; see Retry-After",
    503: "The endpoint cannot serve now: not loaded, over capacity, its model failing, or "
    "its log cannot be written (nothing was stored); retry after Retry-After when given",
}
# Every status a route can answer besides 200, by what the route does: a key is checked
# (not on the open probes), a body is read, an endpoint is named, a model predicts.
_AUTH = (401, 403, 429)
_BODY = (400, 408, 413)
_PREDICTS = (422, 503)
_PREDICT_ERRORS = (*_AUTH, *_BODY, 404, 409, *_PREDICTS)
_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKeyHeader": []}]
_JSON_ONLY = (JSON,)
_GENERIC: dict[str, tuple[str, str, tuple[int, ...], tuple[str, ...]]] = {
    # path -> (method, summary, statuses besides 200 and the key's, request media types)
    "/healthz": ("get", "Liveness: the process answers", (), ()),
    "/readyz": ("get", "Readiness: every endpoint is loaded (503 otherwise)", (503,), ()),
    "/metrics": ("get", "Prometheus metrics (text exposition format)", (), ()),
    "/v1/endpoints": ("get", "The endpoints this server answers for", (), ()),
    "/v1/endpoints/{endpoint}": (
        "get", "One endpoint: model, version, input and output schema", (404, 503), ()
    ),
    "/v2/health/live": ("get", "Open Inference Protocol v2: liveness", (), ()),
    "/v2/health/ready": ("get", "Open Inference Protocol v2: readiness", (503,), ()),
    "/v2/models/{name}": ("get", "Open Inference Protocol v2: model metadata", (404, 503), ()),
    "/v2/models/{name}/infer": (
        "post", "Open Inference Protocol v2: one tensor per column (JSON; the binary tensor "
        "extension with Inference-Header-Content-Length)", (*_BODY, 404, 409, *_PREDICTS),
        _JSON_ONLY,
    ),
    "/invocations": (
        "post", "MLflow scoring on the server's only endpoint (400 when it has several)",
        (*_BODY, 415, *_PREDICTS), (JSON, "text/csv"),
    ),
    "/endpoints/{endpoint}/invocations": (
        "post", "MLflow scoring on one endpoint", (*_BODY, 404, 415, *_PREDICTS),
        (JSON, "text/csv"),
    ),
    "/ping": ("get", "MLflow scoring: readiness", (503,), ()),
    "/health": ("get", "MLflow scoring: readiness", (503,), ()),
    "/version": ("get", "The setpoint version", (), ()),
}  # fmt: skip
_PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


def document(state: ServingState, *, only: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every endpoint ``state`` serves (of ``only`` that one
    when given)."""
    paths: dict[str, Any] = {p: _generic(p, *spec) for p, spec in _GENERIC.items()}
    schemas: dict[str, Any] = {
        "Error": _ERROR_SCHEMA,
        "Feedback": _FEEDBACK_SCHEMA,
        "Explanation": _EXPLANATION_SCHEMA,
    }
    for name, runtime in sorted(state.runtimes.items()):
        if only not in (None, name):
            continue
        key = _component(name)
        values = runtime.deployment.config.docs_values
        contract = runtime.model.contract.redacted(values=values)
        schemas[f"{key}.Record"] = record_schema(contract, examples=values)
        schemas[f"{key}.PredictRequest"] = _predict_request(key, contract)
        schemas[f"{key}.PredictResponse"] = _predict_response(runtime, classes=values)
        for route in ("predict", "explain"):
            paths[f"/v1/endpoints/{name}/{route}"] = {
                "post": _predict(name, key, runtime, contract, examples=values, route=route)
            }
        paths[f"/v1/endpoints/{name}/feedback"] = {"post": _feedback(name)}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "setpoint",
            "version": __version__,
            "description": "Model serving. Send a key as 'Authorization: Bearer sp_...' "
            "when the server needs keys (setpoint keys create).",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "sp_..."},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }


def record_schema(contract: Contract, *, examples: bool = True) -> dict[str, Any]:
    """The JSON Schema of one record (row) the contract accepts, with an example made
    from its ranges and categories when ``examples``."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {n: column_schema(r) for n, r in contract.columns.items()},
        "required": [n for n, r in contract.columns.items() if r.required],
        "additionalProperties": contract.unknown_columns != "reject",
    }
    if examples:
        schema["examples"] = [example_record(contract)]
    return schema


def column_schema(rule: ColumnRule) -> dict[str, Any]:
    """The JSON Schema of one value of a column."""
    kind = _TYPES.get(rule.kind, "string")
    out: dict[str, Any] = {"type": [kind, "null"] if rule.nullable else kind}
    bounds: dict[str, Any] = {}
    if rule.min is not None and math.isfinite(rule.min):
        bounds["minimum"] = rule.min
    if rule.max is not None and math.isfinite(rule.max):
        bounds["maximum"] = rule.max
    if rule.categories is not None:
        bounds["enum"] = [*rule.categories, *([None] if rule.nullable else [])]
    if rule.kind == "integer":  # what the column can hold at all: 64-bit integers
        out["minimum"], out["maximum"] = _INT64
    if bounds and rule.enforce == "reject":
        out.update(bounds)
    elif bounds:
        out["x-soft"] = bounds  # what the model saw: answered outside it, with a warning
    if rule.kind == "datetime":
        out["pattern"] = DATETIME_TEXT
    kept = "left out of the logs" if rule.pii_mode == "drop" else "the logs keep a keyed hash"
    description = rule.kind + (f" (personal data: {kept})" if rule.pii else "")
    if bounds and rule.enforce != "reject":
        description += "; a value outside the range or categories is answered with a warning"
    out["description"] = description
    if rule.pii:
        out["x-pii"] = True
    return out


def example_record(contract: Contract) -> dict[str, Any]:
    """A record the contract accepts: midpoints of ranges, first categories."""
    return {n: _example(r) for n, r in contract.columns.items() if r.required}


def _example(rule: ColumnRule) -> Any:
    low = rule.min if rule.min is not None and math.isfinite(rule.min) else None
    high = rule.max if rule.max is not None and math.isfinite(rule.max) else None
    if rule.kind == "integer":
        low = None if low is None else math.ceil(low)
        high = None if high is None else math.floor(high)
        return (low + high) // 2 if low is not None and high is not None else low or high or 0
    if rule.kind == "numeric":
        return (low + high) / 2 if low is not None and high is not None else low or high or 0.0
    if rule.kind == "boolean":
        return False
    if rule.kind == "datetime":
        return "2026-01-01T00:00:00Z"
    return rule.categories[0] if rule.categories else "text"


def _component(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*statuses: int) -> dict[str, Any]:
    content = {JSON: {"schema": _ref("Error")}}
    out: dict[str, Any] = {}
    for status in sorted(set(statuses)):
        response: dict[str, Any] = {"description": _ERRORS[status], "content": content}
        if status in (429, 503):
            response["headers"] = {"Retry-After": _RETRY_AFTER}
        if status == 401:
            response["headers"] = {"WWW-Authenticate": _WWW_AUTHENTICATE}
        out[str(status)] = response
    return out


def _object(
    properties: dict[str, Any], *required: str, closed: bool = True, **extra: Any
) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": not closed,
        **extra,
    }


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema or {}}}}


def _predict_request(key: str, contract: Contract) -> dict[str, Any]:
    rows = {"type": "array", "minItems": 1, "maxItems": MAX_ROWS}
    records = {"records": {**rows, "items": _ref(f"{key}.Record")}, "request_id": _CHOSEN_ID}
    by_column = _object(
        {n: {**rows, "items": column_schema(r)} for n, r in contract.columns.items()},
        *(n for n, r in contract.columns.items() if r.required),
        closed=contract.unknown_columns == "reject",
        description="Column name to its values; every list the same length.",
    )
    columns = {"columns": by_column, "request_id": _CHOSEN_ID}
    return {
        "oneOf": [
            _object(records, "records", title="records"),
            _object(columns, "columns", title="columns"),
        ]
    }


def _predict_response(runtime: EndpointRuntime, *, classes: bool) -> dict[str, Any]:
    """The answer's schema; the class labels (the target's categories) when ``classes``."""
    labels = runtime.model.predictor.classes if classes else None
    prediction: dict[str, Any] = (
        {"enum": [*labels, None]}
        if labels is not None
        else {"description": "A class label"}
        if runtime.model.predictor.classes is not None
        else {"type": ["number", "null"]}
    )
    properties: dict[str, Any] = {
        "request_id": _STRING,
        "endpoint": {"type": "string", "const": runtime.name},
        "model": _STRING,
        "version": _INTEGER,
        "predictions": {"type": "array", "items": prediction, "description": _ONE_PER_ROW},
        "errors": {"type": "array", "items": _VIOLATION, "description": "Rejected rows"},
        "warnings": {
            "type": "array",
            "items": _VIOLATION,
            "description": "Rows answered although a value is outside the range or "
            "categories the model was trained on (soft contract rules); present only then",
        },
        "flags": _object({"fallback": _BOOLEAN, "cached": _BOOLEAN}, closed=False),
        "explanations": {
            "type": "array",
            "items": {"anyOf": [_ref("Explanation"), {"type": "null"}]},
            "description": "Asked for (the explain route, or explain=true): per row, its "
            "explanation; null for a rejected row",
        },
    }
    if runtime.model.predictor.classes is not None:
        properties["classes"] = {"type": "array"} | ({"const": labels} if labels else {})
        properties["probabilities"] = {
            "type": "array",
            "items": {"type": "array", "items": {"type": "number"}},
            "description": "Per row, one probability per class in classes order",
        }
    required = ("request_id", "endpoint", "model", "version", "predictions", "flags")
    return _object(properties, *required, closed=False)


def _predict(
    name: str,
    key: str,
    runtime: EndpointRuntime,
    contract: Contract,
    *,
    examples: bool,
    route: str = "predict",
) -> dict[str, Any]:
    """The predict route, or the explain route (the same with explanations)."""
    version = runtime.model.version
    body: dict[str, Any] = {"schema": _ref(f"{key}.PredictRequest")}
    if examples:
        record = example_record(contract)
        body["examples"] = {
            "records": {"value": {"records": [record]}},
            "columns": {"value": {"columns": {n: [v] for n, v in record.items()}}},
        }
    explains = route == "explain"
    summary = (
        f"Predict with {version.name} v{version.version} ({version.task}) and explain "
        "each prediction: every feature's additive contribution"
        if explains
        else f"Predict with {version.name} v{version.version} ({version.task})"
    )
    return {
        "operationId": f"{route}_{key}",
        "summary": summary,
        "tags": [name],
        "security": _SECURITY,
        "parameters": [_TOP] if explains else [_EXPLAIN, _TOP],
        "requestBody": {"required": True, "content": {JSON: body}},
        "responses": {
            "200": _ok(
                "Predictions with their explanations, one per row"
                if explains
                else "Predictions, one per row",
                _ref(f"{key}.PredictResponse"),
            ),
            **_errors(*_PREDICT_ERRORS),
        },
    }


def _feedback(name: str) -> dict[str, Any]:
    return {
        "operationId": f"feedback_{_component(name)}",
        "summary": "Ground truth for earlier predictions, by request id (and row)",
        "tags": [name],
        "security": _SECURITY,
        "requestBody": {"required": True, "content": {JSON: {"schema": _ref("Feedback")}}},
        "responses": {
            "200": _ok(
                "The labels are stored", _object({"endpoint": _STRING, "accepted": _INTEGER})
            ),
            **_errors(*_AUTH, *_BODY, 404, 503),
        },
    }


def _generic(
    path: str, method: str, summary: str, statuses: tuple[int, ...], media: tuple[str, ...]
) -> dict[str, Any]:
    secured = path not in OPEN_PATHS
    ok = (
        {"description": summary, "content": {_PROMETHEUS: {"schema": _STRING}}}
        if path == "/metrics"
        else _ok(summary)
    )
    operation: dict[str, Any] = {
        "operationId": re.sub(r"[^a-z0-9]+", "_", f"{method} {path}").strip("_"),
        "summary": summary,
        "tags": ["server"],
        "security": _SECURITY if secured else [],
        "responses": {"200": ok, **_errors(*statuses, *(_AUTH if secured else ()))},
    }
    if names := re.findall(r"{(\w+)}", path):
        operation["parameters"] = [
            {"name": n, "in": "path", "required": True, "schema": _STRING} for n in names
        ]
    if method == "post":
        body = _BODIES.get(path.rpartition("/")[2], {})
        operation["requestBody"] = {
            "required": True,
            "content": {kind: {"schema": body if kind == JSON else _STRING} for kind in media},
        }
    return {method: operation}


_ROWS = {"type": "array", "minItems": 1}
_RECORDS_OR_COLUMNS = {
    "anyOf": [
        {**_ROWS, "items": {"type": "object"}},
        {"type": "object", "minProperties": 1, "additionalProperties": {"type": "array"}},
    ]
}
# The JSON bodies of the routes shared by every endpoint, by the path's last part: their
# shape (the columns are each endpoint's, described under its own routes).
_BODIES: dict[str, dict[str, Any]] = {
    "invocations": {
        "description": "Exactly one of MLflow's inputs, and optionally params.",
        "oneOf": [
            _object(
                {
                    name: schema,
                    "params": {"type": "object"},
                },
                name,
                title=name,
            )
            for name, schema in (
                (
                    "dataframe_split",
                    _object(
                        {
                            "columns": {**_ROWS, "items": {"type": "string"}},
                            "data": {**_ROWS, "items": {"type": "array"}},
                            "index": {"type": "array"},
                        },
                        "columns",
                        "data",
                    ),
                ),
                ("dataframe_records", {**_ROWS, "items": {"type": "object"}}),
                ("instances", _RECORDS_OR_COLUMNS),
                ("inputs", _RECORDS_OR_COLUMNS),
            )
        ],
    },
    "infer": _object(
        {
            "id": {"type": "string"},
            "inputs": {**_ROWS, "items": {"type": "object"}},
            "outputs": {"type": "array", "items": {"type": "object"}},
            "parameters": {"type": "object"},
        },
        "inputs",
    ),
}


_ONE_PER_ROW = "One per row; null for a row rejected under on_error: per_row"
_STRING, _INTEGER, _BOOLEAN = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
_RETRY_AFTER = {"description": "Seconds after which a retry may succeed", "schema": _INTEGER}
_WWW_AUTHENTICATE = {"description": "Bearer", "schema": _STRING}
_REQUEST_ID = {"type": "string", "minLength": 1, "maxLength": 200}
_CHOSEN_ID = {
    **_REQUEST_ID,
    # null is read as no id (``native.py``), as clients that always send the key do.
    "type": ["string", "null"],
    "description": "Your id for this prediction, which feedback names; omit it (or send "
    "null) and the server makes one. Unique per endpoint: an id the endpoint answered "
    "recently (its last 100,000 chosen ids in this server process, or its prediction "
    "log's last hour at start-up) is refused with 409.",
}
_ERROR_SCHEMA = _object(
    {
        "error": _object(
            {"code": _STRING, "message": _STRING, "details": {}}, "code", "message", "details"
        )
    },
    "error",
    description="The one error shape; details may be null, or e.g. {'violations': [...]}",
)
_VIOLATION = _object(
    {"row": {"type": ["integer", "null"]}, "column": _STRING, "rule": _STRING, "value": {}},
    closed=False,
)
_EXPLAIN = {
    "name": "explain",
    "in": "query",
    "required": False,
    # No "default" in the schemas: Swagger UI would send it with every try.
    "schema": {"type": "boolean"},
    "description": "true: answer each row's explanation too, as the explain route does "
    "(default false)",
}
_TOP = {
    "name": "top",
    "in": "query",
    "required": False,
    # A pattern, not an integer: JSON Schema's integers include 5.0, a query's do not.
    "schema": {"type": "string", "pattern": "^([1-9][0-9]{0,5}|all)$"},
    "description": "The contributions answered per row and output, largest first: a "
    f"number of features, or all (default {TOP})",
}
# null: not a number, where inputs far out of range overflow the model's arithmetic.
_NUMBER = {"type": ["number", "null"]}
_EXPLANATION_SCHEMA = _object(
    {
        "space": {
            "type": "string",
            "description": "What the numbers are in: log-odds, raw score, decision "
            "function, probability",
        },
        "outputs": {
            "type": "array",
            "items": _object(
                {
                    "output": _STRING,
                    "base": {**_NUMBER, "description": "The mean output (base value)"},
                    "raw": {**_NUMBER, "description": "base + all contributions"},
                    "contributions": {
                        "type": "object",
                        "additionalProperties": _NUMBER,
                        "description": "Feature to its contribution, largest |value| first",
                    },
                },
                "output",
                "base",
                "raw",
                "contributions",
            ),
        },
    },
    "space",
    "outputs",
    description="One row's explanation: per model output (the positive class's for a "
    "binary classifier), the base value and each feature's additive contribution.",
)
_LABEL = _object(
    {
        "request_id": _REQUEST_ID,
        "row": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
        "label": {"type": ["string", "number", "boolean", "null"]},
    },
    "request_id",
    "label",
)
_FEEDBACK_SCHEMA = {
    "oneOf": [
        _LABEL,
        _object(
            {"feedback": {"type": "array", "items": _LABEL, "minItems": 1, "maxItems": MAX_ITEMS}},
            "feedback",
        ),
    ]
}


def routes(state: ServingState) -> list[BaseRoute]:
    """``GET /openapi.json`` and ``GET /docs``, rebuilt when the endpoints change; a key
    limited to one endpoint gets the document of that endpoint only."""
    served: list[tuple[tuple[str, str, int], ...]] = []
    cache: dict[str | None, dict[str, Any]] = {}

    def current(request: Request) -> dict[str, Any]:
        now = tuple(
            sorted(
                (n, str(r.model.version.id), r.deployment.revision)
                for n, r in state.runtimes.items()
            )
        )
        if served != [now]:
            served[:] = [now]
            cache.clear()
        only = limited_to(request.scope)
        if only not in cache:
            cache[only] = document(state, only=only)
        return cache[only]

    async def openapi_json(request: Request) -> Response:
        return json_response(current(request))

    async def docs(request: Request) -> Response:
        page = render(current(request), host=request.url.netloc, keys=state.guard.required)
        return HTMLResponse(page)

    return [Route("/openapi.json", openapi_json), Route("/docs/plain", docs)]


def render(doc: dict[str, Any], *, host: str, keys: bool) -> str:
    """The human page: per endpoint its routes, input columns and a curl example."""
    e = html.escape
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>setpoint "
        f"{e(doc['info']['version'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>setpoint {e(doc['info']['version'])}</h1><p>The machine-readable description "
        "is <a href='../openapi.json'>openapi.json</a> (OpenAPI 3.1). "
        + ("This server needs an API key: " if keys else "When the server needs API keys, send ")
        + "<code>Authorization: Bearer sp_...</code>.</p>",
    ]
    schemas = doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        if not path.endswith("/predict"):
            continue
        operation = item["post"]
        name, key = operation["tags"][0], operation["operationId"].removeprefix("predict_")
        record = schemas[f"{key}.Record"]
        examples = operation["requestBody"]["content"][JSON].get("examples")
        body = examples["records"]["value"] if examples else _template(record)
        curl = " ".join(
            ["curl -s -X POST", shlex.quote(f"{host}{path}"), "-H 'Content-Type: application/json'"]
            + (["-H 'Authorization: Bearer sp_...'"] if keys else [])
            + ["-d", shlex.quote(json.dumps(body))]
        )
        parts += [
            f"<h2>{e(name)}</h2><p>{e(operation['summary'])}</p><ul>",
            f"<li><code>POST {e(path)}</code> — records or columns</li>",
            f"<li><code>POST {e(path.removesuffix('/predict'))}/explain</code> — the same, "
            "with each feature's contribution (<code>?top=K|all</code>)</li>",
            f"<li><code>POST {e(path.removesuffix('/predict'))}/feedback</code> — labels</li>",
            f"<li><code>POST /v2/models/{e(name)}/infer</code> — Open Inference Protocol v2</li>",
            f"<li><code>POST /endpoints/{e(name)}/invocations</code> — MLflow scoring</li></ul>",
            "<table><tr><th>column</th><th>type</th><th>required</th><th>nullable</th>"
            "<th>range / categories</th><th>PII</th></tr>",
        ]
        hidden = "" if examples else _HIDDEN
        for column, schema in record["properties"].items():
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            cells = [
                column,
                schema["description"].split(" ")[0],
                "yes" if column in record["required"] else "no",
                "yes" if "null" in types else "no",
                hidden if hidden and not schema.get("x-pii") else _allowed(schema),
                "yes" if schema.get("x-pii") else "",
            ]
            parts.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in cells) + "</tr>")
        parts += [
            "</table><h3>" + ("Example request" if examples else "Request shape") + "</h3>",
            f"<pre>{e(json.dumps(body, indent=2))}</pre><pre>{e(curl)}</pre>",
        ]
    generic = [(p, m) for p, i in doc["paths"].items() for m in i if p in _GENERIC]
    parts.append("<h2>Server routes</h2><ul>")
    for path, method in generic:
        summary = doc["paths"][path][method]["summary"]
        parts.append(f"<li><code>{e(method.upper())} {e(path)}</code> — {e(summary)}</li>")
    parts.append("</ul></body></html>")
    return "\n".join(parts)


_HIDDEN = "not shown (setpoint deploy NAME --docs-values)"


def _template(record: dict[str, Any]) -> dict[str, Any]:
    """A request body naming each required column's type where a value goes: what the
    page shows when the deployment keeps its values out of the docs."""
    kinds = {n: p["description"].split(" ")[0].rstrip(";") for n, p in record["properties"].items()}
    return {"records": [{n: f"<{kinds[n]}>" for n in record["required"]}]}


def _allowed(schema: dict[str, Any]) -> str:
    soft = schema.get("x-soft")
    bounds = soft or schema
    if "enum" in bounds:
        shown = ", ".join(str(v) for v in bounds["enum"] if v is not None)
    else:
        low, high = bounds.get("minimum"), bounds.get("maximum")
        if (low is None and high is None) or (low, high) == _INT64:
            return ""
        shown = f"{'' if low is None else low} … {'' if high is None else high}"
    return shown + (" (outside: answered, warned)" if soft else " (outside: refused)")


_CSS = (
    "body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem;"
    "text-align:left}pre{background:#f4f4f4;padding:.5rem;overflow-x:auto}"
)
