"""The API described: ``GET /openapi.json`` (OpenAPI 3.1) and ``GET /docs`` (HTML).

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
from setpoint.serving.app import ServingState, json_response
from setpoint.serving.auth import OPEN_PATHS, limited_to
from setpoint.serving.feedback import MAX_ITEMS
from setpoint.serving.native import MAX_ROWS
from setpoint.serving.runtime import EndpointRuntime

JSON = "application/json"
_TYPES = {"numeric": "number", "integer": "integer", "boolean": "boolean"}
_INT64 = (-(2**63), 2**63 - 1)
_ERRORS = {
    400: "The body is not valid JSON or not the expected shape",
    401: "No API key, or an unknown or revoked one",
    403: "The key's scope or endpoint does not cover this request",
    404: "No such endpoint",
    413: "The body is over max_request_bytes",
    422: "The data breaks the model's contract; details list every violation",
    429: "The key is over its rate limit; see Retry-After",
    503: "The endpoint cannot serve yet",
}
_PREDICT_ERRORS = (400, 401, 403, 404, 413, 422, 429, 503)
_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKeyHeader": []}]
_GENERIC: dict[str, tuple[str, str]] = {  # path -> (method, summary)
    "/healthz": ("get", "Liveness: the process answers"),
    "/readyz": ("get", "Readiness: every endpoint is loaded (503 otherwise)"),
    "/metrics": ("get", "Prometheus metrics"),
    "/v1/endpoints": ("get", "The endpoints this server answers for"),
    "/v1/endpoints/{endpoint}": ("get", "One endpoint: model, version, input and output schema"),
    "/v2/health/live": ("get", "Open Inference Protocol v2: liveness"),
    "/v2/health/ready": ("get", "Open Inference Protocol v2: readiness"),
    "/v2/models/{name}": ("get", "Open Inference Protocol v2: model metadata"),
    "/v2/models/{name}/infer": ("post", "Open Inference Protocol v2: one tensor per column"),
    "/invocations": ("post", "MLflow scoring on the server's only endpoint"),
    "/endpoints/{endpoint}/invocations": ("post", "MLflow scoring on one endpoint"),
    "/ping": ("get", "MLflow scoring: readiness"),
    "/version": ("get", "The setpoint version"),
}


def document(state: ServingState, *, only: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every endpoint ``state`` serves (of ``only`` that one
    when given)."""
    paths: dict[str, Any] = {p: _generic(p, m, s) for p, (m, s) in _GENERIC.items()}
    schemas: dict[str, Any] = {"Error": _ERROR_SCHEMA, "Feedback": _FEEDBACK_SCHEMA}
    for name, runtime in sorted(state.runtimes.items()):
        if only not in (None, name):
            continue
        key = _component(name)
        values = runtime.deployment.config.docs_values
        contract = runtime.model.contract.redacted(values=values)
        schemas[f"{key}.Record"] = record_schema(contract, examples=values)
        schemas[f"{key}.PredictRequest"] = _predict_request(key, contract)
        schemas[f"{key}.PredictResponse"] = _predict_response(runtime, classes=values)
        paths[f"/v1/endpoints/{name}/predict"] = {
            "post": _predict(name, key, runtime, contract, examples=values)
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
    return {str(s): {"description": _ERRORS[s], "content": content} for s in statuses}


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
    records = {"records": {**rows, "items": _ref(f"{key}.Record")}, "request_id": _REQUEST_ID}
    by_column = _object(
        {n: {**rows, "items": column_schema(r)} for n, r in contract.columns.items()},
        *(n for n, r in contract.columns.items() if r.required),
        closed=contract.unknown_columns == "reject",
        description="Column name to its values; every list the same length.",
    )
    columns = {"columns": by_column, "request_id": _REQUEST_ID}
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
    name: str, key: str, runtime: EndpointRuntime, contract: Contract, *, examples: bool
) -> dict[str, Any]:
    version = runtime.model.version
    body: dict[str, Any] = {"schema": _ref(f"{key}.PredictRequest")}
    if examples:
        record = example_record(contract)
        body["examples"] = {
            "records": {"value": {"records": [record]}},
            "columns": {"value": {"columns": {n: [v] for n, v in record.items()}}},
        }
    return {
        "operationId": f"predict_{key}",
        "summary": f"Predict with {version.name} v{version.version} ({version.task})",
        "tags": [name],
        "security": _SECURITY,
        "requestBody": {"required": True, "content": {JSON: body}},
        "responses": {
            "200": _ok("Predictions, one per row", _ref(f"{key}.PredictResponse")),
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
            **_errors(400, 401, 403, 404, 413, 429, 503),
        },
    }


def _generic(path: str, method: str, summary: str) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": re.sub(r"[^a-z0-9]+", "_", f"{method} {path}").strip("_"),
        "summary": summary,
        "tags": ["server"],
        "security": [] if path in OPEN_PATHS else _SECURITY,
        "responses": {
            "200": _ok(summary),
            **_errors(*(_PREDICT_ERRORS if method == "post" else (404, 503))),
        },
    }
    if names := re.findall(r"{(\w+)}", path):
        operation["parameters"] = [
            {"name": n, "in": "path", "required": True, "schema": _STRING} for n in names
        ]
    if method == "post":
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": {}}}}
    return {method: operation}


_ONE_PER_ROW = "One per row; null for a row rejected under on_error: per_row"
_STRING, _INTEGER, _BOOLEAN = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
_REQUEST_ID = {"type": "string", "minLength": 1, "maxLength": 200}
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

    return [Route("/openapi.json", openapi_json), Route("/docs", docs)]


def render(doc: dict[str, Any], *, host: str, keys: bool) -> str:
    """The human page: per endpoint its routes, input columns and a curl example."""
    e = html.escape
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>setpoint "
        f"{e(doc['info']['version'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>setpoint {e(doc['info']['version'])}</h1><p>The machine-readable description "
        "is <a href='openapi.json'>openapi.json</a> (OpenAPI 3.1). "
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
