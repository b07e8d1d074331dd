"""/openapi.json and /docs: request schemas made from the contract, and the server agrees."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_support import MemoryLog, assert_error_shape
from starlette.testclient import TestClient

from setpoint import __version__
from setpoint.data.contract import ColumnRule, Contract
from setpoint.serving.app import create_app
from setpoint.serving.openapi import column_schema, example_record, render
from setpoint.serving.openapi import record_schema as record_schema_of
from setpoint.workspace import Workspace

# The document and the server, not the stores: on SQLite only (conftest.py).
pytestmark = pytest.mark.one_database

PREDICT = "/v1/endpoints/credit/predict"


@pytest.fixture
def served(served: Workspace) -> Workspace:
    """The served workspace, its endpoint showing values in the docs (most tests here
    check them); test_by_default_the_docs_show_columns_and_types_only checks the default."""
    served.deploy("credit", docs_values=True)
    return served


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the server did not pick up the change"


@pytest.fixture
def doc(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200, response.text
    return dict(response.json())


def record_schema(doc: dict[str, Any]) -> dict[str, Any]:
    return dict(doc["components"]["schemas"]["credit.Record"])


def example(doc: dict[str, Any]) -> dict[str, Any]:
    content = doc["paths"][PREDICT]["post"]["requestBody"]["content"]["application/json"]
    return dict(content["examples"]["records"]["value"]["records"][0])


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def test_the_document_is_openapi_3_1(doc: dict[str, Any]) -> None:
    # openapi-spec-validator is not a dependency here: check what it would check.
    assert doc["openapi"] == "3.1.0"
    assert doc["info"] == {**doc["info"], "title": "setpoint", "version": __version__}
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"], ref
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    operation_ids = []
    for path, item in doc["paths"].items():
        assert path.startswith("/")
        for method, operation in item.items():
            assert method in ("get", "post")
            operation_ids.append(operation["operationId"])
            assert operation["responses"], path
            for status, response in operation["responses"].items():
                assert re.fullmatch(r"[1-5]\d\d", status)
                assert response["description"]
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), path
            for name in sorted(scheme for req in operation["security"] for scheme in req):
                assert name in schemes
    assert len(operation_ids) == len(set(operation_ids))
    assert {"/v1/endpoints/credit/feedback", "/v2/models/{name}/infer", "/invocations"} <= set(
        doc["paths"]
    )


def test_the_record_schema_follows_the_contract(doc: dict[str, Any], served: Workspace) -> None:
    contract = served.registry.get("credit-risk@champion").contract
    assert contract is not None
    schema = record_schema(doc)
    assert list(schema["properties"]) == list(contract["columns"])
    assert schema["additionalProperties"] is False  # the contract rejects unknown columns
    # Ranges and categories are soft by default: annotations, not constraints, since
    # the server answers values outside them (with a warning).
    age = schema["properties"]["age"]
    assert age["type"] == "integer"
    assert age["x-soft"] == {"minimum": 11, "maximum": 87}
    assert (age["minimum"], age["maximum"]) == (-(2**63), 2**63 - 1)  # all it can hold
    assert "warning" in age["description"]
    assert schema["properties"]["employment_years"]["type"] == ["number", "null"]
    assert schema["properties"]["grade"]["x-soft"] == {"enum": list("ABCDEFG")}
    request = doc["components"]["schemas"]["credit.PredictRequest"]
    assert [form["required"] for form in request["oneOf"]] == [["records"], ["columns"]]


def test_the_examples_are_accepted(client: TestClient, doc: dict[str, Any]) -> None:
    content = doc["paths"][PREDICT]["post"]["requestBody"]["content"]["application/json"]
    for form in ("records", "columns"):
        response = client.post(PREDICT, json=content["examples"][form]["value"])
        assert response.status_code == 200, response.text
        body = response.json()
        response_schema = doc["components"]["schemas"]["credit.PredictResponse"]
        assert set(response_schema["required"]) <= set(body)
        assert set(body) <= set(response_schema["properties"])


def test_values_outside_the_schema_are_rejected(client: TestClient, doc: dict[str, Any]) -> None:
    record = {**example(doc), "term": "lots"}
    error = assert_error_shape(client.post(PREDICT, json={"records": [record]}), 422)
    assert [v["column"] for v in error["details"]["violations"]] == ["term"]


@pytest.mark.parametrize(
    ("column", "value"), [("age", "maximum"), ("income", "minimum"), ("grade", "enum")]
)
def test_values_outside_the_soft_bounds_are_answered_with_a_warning(
    client: TestClient, doc: dict[str, Any], column: str, value: str
) -> None:
    soft = record_schema(doc)["properties"][column]["x-soft"]
    outside: Any = {
        "maximum": soft.get("maximum", 0) + 1,
        "minimum": soft.get("minimum", 0) - 1,
        "enum": "not-a-category",
    }[value]
    response = client.post(PREDICT, json={"records": [{**example(doc), column: outside}]})
    assert response.status_code == 200, response.text
    assert [w["column"] for w in response.json()["warnings"]] == [column]
    assert "warnings" in doc["components"]["schemas"]["credit.PredictResponse"]["properties"]


def test_enforced_bounds_are_schema_constraints() -> None:
    rule = ColumnRule(kind="integer", min=18, max=90, enforce="reject")
    assert {k: v for k, v in column_schema(rule).items() if k in ("minimum", "maximum")} == {
        "minimum": 18,
        "maximum": 90,
    }
    assert "x-soft" not in column_schema(rule)
    grade = column_schema(ColumnRule(kind="categorical", categories=("A",), enforce="reject"))
    assert grade["enum"] == ["A", None]


def test_an_unknown_column_is_rejected(client: TestClient, doc: dict[str, Any]) -> None:
    record = {**example(doc), "surprise": 1}
    assert_error_shape(client.post(PREDICT, json={"records": [record]}), 422)


def test_docs_list_every_column_and_load_nothing_from_elsewhere(
    client: TestClient, doc: dict[str, Any]
) -> None:
    response = client.get("/docs/plain")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for column in record_schema(doc)["properties"]:
        assert f"<td>{column}</td>" in page
    assert "<script" not in page.lower()
    assert "http://" not in page
    assert "https://" not in page
    assert "openapi.json" in page
    assert "curl" in page
    assert "(outside: answered, warned)" in page


def test_docs_and_document_need_a_read_key(client: TestClient, served: Workspace) -> None:
    _, predict = served.keys.create("predict")
    _, read = served.keys.create("read")
    _, admin = served.keys.create("admin")
    # The server follows the keys on its own schedule: it may have read them between
    # two of the creations, so wait until it knows the last one.
    admin_header = {"Authorization": f"Bearer {admin}"}
    wait_for(
        lambda: (
            client.get("/openapi.json").status_code == 401
            and client.get("/openapi.json", headers=admin_header).status_code == 200
        )
    )
    for path in ("/openapi.json", "/docs/plain"):
        assert_error_shape(client.get(path), 401, "unauthorized")
        denied = client.get(path, headers={"Authorization": f"Bearer {predict}"})
        assert_error_shape(denied, 403, "forbidden")
        for key in (read, admin):
            assert client.get(path, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    page = client.get("/docs/plain", headers={"X-API-Key": read})
    assert "This server needs an API key" in page.text
    # The Swagger UI page and its files are open: they hold no data, and ask for a key.
    shell = client.get("/docs")
    assert shell.status_code == 200
    assert "needs an API key" in shell.text
    assert "income" not in shell.text
    assert client.get("/docs/static/swagger-ui-bundle.js").status_code == 200


def test_a_key_limited_to_one_endpoint_reads_only_its_docs(
    client: TestClient, served: Workspace
) -> None:
    served.deploy("second", model="credit-risk")
    _, read = served.keys.create("read", endpoint="second")
    headers = {"Authorization": f"Bearer {read}"}
    # Until the server has read the new key it needs none and shows every endpoint.
    wait_for(lambda: client.get("/openapi.json").status_code == 401)
    wait_for(lambda: client.get("/openapi.json", headers=headers).status_code == 200)
    wait_for(
        lambda: (
            "/v1/endpoints/second/predict"
            in client.get("/openapi.json", headers=headers).json()["paths"]
        )
    )
    doc = client.get("/openapi.json", headers=headers).json()
    assert not any(p.startswith("/v1/endpoints/credit") for p in doc["paths"])
    assert not any(s.startswith("credit.") for s in doc["components"]["schemas"])
    assert "<h2>credit</h2>" not in client.get("/docs/plain", headers=headers).text


def test_by_default_the_docs_show_columns_and_types_only(
    served: Workspace, memory_log: MemoryLog
) -> None:
    served.deploy("credit", docs_values=False)
    with TestClient(create_app(served, memory_log)) as fresh:
        text = fresh.get("/openapi.json").text
        doc = fresh.get("/openapi.json").json()
        page = fresh.get("/docs/plain").text
        described = fresh.get("/v1/endpoints/credit").json()["inputs"]["columns"]
    schema = record_schema(doc)
    assert set(schema["properties"]) >= {"age", "grade", "income"}
    assert schema["properties"]["age"]["type"] == "integer"
    for forbidden in ('"x-soft"', '"enum"', '"examples"', '"const":["'):
        assert forbidden not in text.replace(" ", ""), forbidden
    for rule in schema["properties"].values():
        assert (rule.get("minimum"), rule.get("maximum")) in ((None, None), (-(2**63), 2**63 - 1))
    assert "(outside:" not in page
    assert "A, B, C" not in page
    assert "&lt;integer&gt;" in page  # the request's shape, no values
    assert all(
        set(rule) <= {"kind", "nullable", "required", "enforce", "pii"}
        for rule in described.values()
    )


def test_personal_data_never_shows_values() -> None:
    contract = Contract(
        columns={
            "age": ColumnRule(kind="integer", min=18, max=90, pii=True),
            "zip": ColumnRule(kind="categorical", categories=("75001", "75002"), pii=True),
            "income": ColumnRule(kind="numeric", min=0.0, max=10.0),
        }
    )
    shown = record_schema_of(contract.redacted(values=True))
    assert "x-soft" not in shown["properties"]["age"]
    assert "x-soft" not in shown["properties"]["zip"]
    assert shown["properties"]["income"]["x-soft"] == {"minimum": 0.0, "maximum": 10.0}
    assert shown["examples"][0]["zip"] not in ("75001", "75002")
    assert shown["examples"][0]["age"] not in range(18, 91)
    hidden = record_schema_of(contract.redacted(values=False), examples=False)
    assert "examples" not in hidden
    assert not any("x-soft" in p for p in hidden["properties"].values())


def test_docs_escape_what_they_show() -> None:
    contract = Contract(columns={"<b>x": ColumnRule(kind="categorical", categories=("<i>y",))})
    path = "/v1/endpoints/e/predict"
    body = {"records": [example_record(contract)]}
    operation = {
        "tags": ["e"],
        "operationId": "predict_e",
        "summary": "<script>",
        "requestBody": {
            "content": {"application/json": {"examples": {"records": {"value": body}}}}
        },
    }
    page = render(
        {
            "info": {"version": "<v>"},
            "paths": {path: {"post": operation}},
            "components": {"schemas": {"e.Record": record_schema_of(contract)}},
        },
        host="<h>",
        keys=False,
    )
    assert not re.search(r"<(b|i|v|h|script)>", page), page
    assert "&lt;b&gt;x" in page
    assert "&lt;i&gt;y" in page


def values(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values one property schema of the document allows (the subset it uses)."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    low, high = schema.get("minimum"), schema.get("maximum")
    choices: list[st.SearchStrategy[Any]] = []
    for type_ in types:
        if type_ == "null":
            choices.append(st.none())
        elif type_ == "integer":
            choices.append(
                st.integers(
                    None if low is None else math.ceil(low),
                    None if high is None else math.floor(high),
                )
            )
        elif type_ == "number":
            choices.append(st.floats(low, high, allow_nan=False, allow_infinity=False))
        elif type_ == "boolean":
            choices.append(st.booleans())
        else:
            choices.append(st.text(max_size=20))
    return st.one_of(choices)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_every_record_the_schema_allows_is_accepted(
    client: TestClient, doc: dict[str, Any], data: st.DataObject
) -> None:
    schema = record_schema(doc)
    record = st.fixed_dictionaries(
        {name: values(schema["properties"][name]) for name in schema["required"]},
        optional={
            n: values(p) for n, p in schema["properties"].items() if n not in schema["required"]
        },
    )
    rows = data.draw(st.lists(record, min_size=1, max_size=5))
    response = client.post(PREDICT, json={"records": rows})
    assert response.status_code == 200, (rows, response.text)


def test_every_response_is_documented_with_its_media_type(
    client: TestClient, doc: dict[str, Any]
) -> None:
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == [client.get("/metrics").headers["content-type"]]
    paths = doc["paths"]
    for path, item in paths.items():
        for method, operation in item.items():
            statuses = set(operation["responses"])
            if operation["security"]:
                assert {"401", "403", "429"} <= statuses, (method, path)
            if method == "post":
                assert {"400", "408", "413", "503"} <= statuses, (method, path)
    for path in ("/invocations", "/endpoints/{endpoint}/invocations"):
        operation = paths[path]["post"]
        assert "415" in operation["responses"]
        assert set(operation["requestBody"]["content"]) == {"application/json", "text/csv"}
    assert "409" in paths["/v1/endpoints/credit/predict"]["post"]["responses"]
    assert "409" in paths["/v2/models/{name}/infer"]["post"]["responses"]
    retry = paths["/v1/endpoints/credit/predict"]["post"]["responses"]["503"]["headers"]
    assert "Retry-After" in retry
