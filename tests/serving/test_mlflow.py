"""The MLflow scoring protocol: every input format answers as the native route does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_support import MemoryLog, assert_error_shape, csv_body, requests_of
from starlette.applications import Starlette
from starlette.testclient import TestClient

from setpoint import __version__
from setpoint.serving import mlflow
from setpoint.serving.app import create_app
from setpoint.workspace import Workspace

# The protocol, not the stores: its workspace on SQLite only (conftest.py).
pytestmark = pytest.mark.one_database


def _app(workspace: Workspace, log: MemoryLog) -> Starlette:
    return create_app(workspace, log, refresh_seconds=0.05)


@pytest.fixture
def client(served: Workspace, memory_log: MemoryLog) -> Iterator[TestClient]:
    with TestClient(_app(served, memory_log)) as test_client:
        yield test_client


@pytest.fixture
def rows(history: pd.DataFrame) -> list[dict[str, Any]]:
    return requests_of(history.tail(25))


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {k: [r[k] for r in rows] for k in rows[0]}


def _bodies(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    names = list(rows[0])
    return {
        "dataframe_split": {
            "dataframe_split": {
                "columns": names,
                "data": [[r[n] for n in names] for r in rows],
                "index": list(range(len(rows))),
            }
        },
        "dataframe_split_no_index": {
            "dataframe_split": {"columns": names, "data": [[r[n] for n in names] for r in rows]}
        },
        "dataframe_records": {"dataframe_records": rows},
        "instances_records": {"instances": rows},
        "instances_columns": {"instances": _columns(rows)},
        "inputs_columns": {"inputs": _columns(rows)},
        "inputs_records": {"inputs": rows, "params": {"threshold": 0.3}},
        "with_null_params": {"dataframe_records": rows, "params": None},
    }


FORMATS = list(_bodies([{"a": 1}]))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("route", ["/invocations", "/endpoints/credit/invocations"])
def test_every_format_matches_native_and_in_process(
    client: TestClient, served: Workspace, rows: list[dict[str, Any]], fmt: str, route: str
) -> None:
    native = client.post("/v1/endpoints/credit/predict", json={"records": rows}).json()
    response = client.post(route, json=_bodies(rows)[fmt])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"predictions", "probabilities", "classes"}
    assert body["predictions"] == native["predictions"]
    assert body["classes"] == native["classes"] == [0, 1]
    np.testing.assert_allclose(body["probabilities"], native["probabilities"], atol=1e-6)
    expected = served.load_model("credit-risk").predict_proba(pd.DataFrame(rows))
    assert expected is not None
    np.testing.assert_allclose(body["probabilities"], expected, atol=1e-6)


@pytest.mark.parametrize("content_type", ["text/csv", "text/csv; charset=utf-8", "TEXT/CSV"])
def test_csv_matches_native(
    client: TestClient, served: Workspace, rows: list[dict[str, Any]], content_type: str
) -> None:
    native = client.post("/v1/endpoints/credit/predict", json={"records": rows}).json()
    response = client.post(
        "/invocations", content=csv_body(rows), headers={"content-type": content_type}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predictions"] == native["predictions"]
    np.testing.assert_allclose(body["probabilities"], native["probabilities"], atol=1e-6)
    expected = served.load_model("credit-risk").predict_proba(pd.DataFrame(rows))
    assert expected is not None
    np.testing.assert_allclose(body["probabilities"], expected, atol=1e-6)


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/json; format=pandas-split"]
)
def test_json_content_type_parameters_are_ignored(
    client: TestClient, rows: list[dict[str, Any]], content_type: str
) -> None:
    body = orjson.dumps({"dataframe_records": rows})
    response = client.post("/invocations", content=body, headers={"content-type": content_type})
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == len(rows)


def test_csv_reads_numbers_as_numbers() -> None:
    body = b"a,b,c,d,e\n1,1.5,x,true,\n-2,,2,False,\n"
    assert mlflow._decode_csv(body) == {
        "a": [1, -2],
        "b": [1.5, None],
        "c": ["x", "2"],
        "d": [True, False],
        "e": [None, None],
    }


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "application/x-www-form-urlencoded", ""]
)
def test_other_content_types_are_415(
    client: TestClient, rows: list[dict[str, Any]], content_type: str
) -> None:
    body = orjson.dumps({"dataframe_records": rows})
    response = client.post("/invocations", content=body, headers={"content-type": content_type})
    error = assert_error_shape(response, 415, "unsupported_media_type")
    assert "text/csv" in error["message"]


MALFORMED: list[tuple[str, bytes]] = [
    ("application/json", b""),
    ("application/json", b"{not json"),
    ("application/json", b"[1, 2]"),
    ("application/json", b'"text"'),
    ("application/json", b"{}"),
    ("application/json", b'{"params": {}}'),
    ("application/json", b'{"dataframe_records": [], "instances": []}'),
    ("application/json", b'{"dataframe_records": [{"a": 1}], "extra": 1}'),
    ("application/json", b'{"dataframe_records": []}'),
    ("application/json", b'{"dataframe_records": [1, 2]}'),
    ("application/json", b'{"dataframe_records": {"a": [1]}}'),
    ("application/json", b'{"dataframe_split": []}'),
    ("application/json", b'{"dataframe_split": {"data": [[1]]}}'),
    ("application/json", b'{"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}'),
    ("application/json", b'{"dataframe_split": {"columns": ["a", "a"], "data": [[1, 2]]}}'),
    ("application/json", b'{"dataframe_split": {"columns": [1], "data": [[1]]}}'),
    ("application/json", b'{"dataframe_split": {"columns": ["a"], "data": []}}'),
    ("application/json", b'{"dataframe_split": {"columns": ["a"], "data": [1]}}'),
    ("application/json", b'{"dataframe_split": {"columns": ["a"], "data": [[1]], "index": 3}}'),
    ("application/json", b'{"dataframe_split": {"columns": ["a"], "data": [[1]], "x": 1}}'),
    ("application/json", b'{"instances": [1, 2, 3]}'),
    ("application/json", b'{"instances": [[1, 2], [3, 4]]}'),
    ("application/json", b'{"instances": []}'),
    ("application/json", b'{"inputs": {"a": [1], "b": [1, 2]}}'),
    ("application/json", b'{"inputs": {"a": 1}}'),
    ("application/json", b'{"inputs": "text"}'),
    ("application/json", b'{"inputs": null}'),
    ("application/json", b"[" * 5000),
    ("text/csv", b""),
    ("text/csv", b"a,b\n"),
    ("text/csv", b"a,b\n1\n"),
    ("text/csv", b"a,a\n1,2\n"),
    ("text/csv", b"\xff\xfe,\x00\n1,2\n"),
    ("text/csv", b'a,b\n"1,2\n'),
]


@pytest.mark.parametrize(("content_type", "body"), MALFORMED)
def test_malformed_bodies_are_400(client: TestClient, content_type: str, body: bytes) -> None:
    response = client.post("/invocations", content=body, headers={"content-type": content_type})
    assert_error_shape(response, 400, "malformed_request")


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_records": [{"nonsense": 1}]},
        {"inputs": {"nonsense": [1, 2]}},
    ],
)
def test_data_the_model_cannot_take_is_422(client: TestClient, body: dict[str, Any]) -> None:
    assert_error_shape(client.post("/invocations", json=body), 422)


def test_csv_with_the_wrong_columns_is_422(client: TestClient) -> None:
    response = client.post(
        "/invocations", content=b"x,y\n1,2\n", headers={"content-type": "text/csv"}
    )
    assert_error_shape(response, 422)


def test_unknown_endpoint_is_404(client: TestClient, rows: list[dict[str, Any]]) -> None:
    response = client.post("/endpoints/nope/invocations", json={"dataframe_records": rows})
    assert_error_shape(response, 404, "not_found")


def test_too_large_body_is_413(served: Workspace, memory_log: MemoryLog) -> None:
    limit = served.settings.max_request_bytes
    with TestClient(_app(served, memory_log)) as client:
        body = b" " * (limit + 1)
        response = client.post("/invocations", content=body, headers={"content-type": "text/csv"})
    assert_error_shape(response, 413, "payload_too_large")


def test_several_endpoints_make_invocations_ambiguous(
    served: Workspace, memory_log: MemoryLog, rows: list[dict[str, Any]]
) -> None:
    served.deploy("credit2", model="credit-risk")
    with TestClient(_app(served, memory_log)) as client:
        error = assert_error_shape(
            client.post("/invocations", json={"dataframe_records": rows}), 400, "malformed_request"
        )
        assert "/endpoints/credit/invocations" in error["message"]
        assert "/endpoints/credit2/invocations" in error["message"]
        first = client.post("/endpoints/credit/invocations", json={"dataframe_records": rows})
        second = client.post("/endpoints/credit2/invocations", json={"dataframe_records": rows})
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json() == second.json()


def test_ping_health_and_version(client: TestClient) -> None:
    for path in ("/ping", "/health"):
        response = client.get(path)
        assert response.status_code == 200, response.text
    version = client.get("/version")
    assert version.status_code == 200
    assert version.json() == {"setpoint": __version__}


def test_ping_is_503_when_an_endpoint_cannot_serve(
    served: Workspace, memory_log: MemoryLog
) -> None:
    app = _app(served, memory_log)
    with TestClient(app) as client:
        app.state.serving.failures["broken"] = "the model failed to load"
        try:
            for path in ("/ping", "/health"):
                assert_error_shape(client.get(path), 503, "not_ready")
        finally:
            app.state.serving.failures.pop("broken")
        assert client.get("/ping").status_code == 200


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value)


_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats() | st.text()
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
_names = st.sampled_from(["income", "age", "amount", "x", ""]) | st.text(max_size=6)
bodies = st.one_of(
    st.binary(max_size=200),
    _json.map(lambda v: orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS)),
    st.builds(
        lambda key, value, params: {key: value, **params},
        st.sampled_from(mlflow._FORMATS),
        _json
        | st.dictionaries(_names, st.lists(_scalars, max_size=3), max_size=3)
        | st.lists(st.dictionaries(_names, _scalars, max_size=3), max_size=3)
        | st.fixed_dictionaries(
            {"columns": st.lists(_names, max_size=3), "data": st.lists(st.lists(_scalars))}
        ),
        st.sampled_from([{}, {"params": {"a": 1}}, {"params": 3}]),
    ).map(_dumps),
    st.lists(st.lists(st.text(max_size=5) | st.integers().map(str), max_size=4), max_size=4).map(
        lambda rows: "\n".join(",".join(r) for r in rows).encode()
    ),
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=bodies,
    content_type=st.sampled_from(
        ["application/json", "text/csv", "text/plain", "", "application/json; format=pandas"]
    )
    | st.text(max_size=20).filter(lambda t: t.isascii() and t.isprintable()),
)
def test_no_body_ever_gets_a_500(client: TestClient, body: bytes, content_type: str) -> None:
    response = client.post("/invocations", content=body, headers={"content-type": content_type})
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_error_shape(response, response.status_code)
