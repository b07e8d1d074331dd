"""Every route the app has, every method it takes, any body: never a 500, never a hang,
every error in the one shape.

The routes are read from the app itself, so a route added later is covered without
editing this test. Path parameters take the served endpoint's name, its version, or
an unknown value. The protocol-specific property tests (test_app, test_oip,
test_mlflow) draw bodies shaped like their protocol; this one draws bodies shaped
like any of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_support import MemoryLog, assert_error_shape
from starlette.routing import Route
from starlette.testclient import TestClient

from setpoint.serving.app import create_app
from setpoint.workspace import Workspace

# Every path parameter the routes use, and the values a caller might put there.
PARAMETERS = {
    "endpoint": ["credit", "nope", "%00", "a" * 300],
    "name": ["credit", "nope"],
    "version": ["1", "2", "x", "-1", "99999999999999999999"],
}


@pytest.fixture(scope="module")
def app_client(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, list[tuple[str, str]]]]:
    from datetime import UTC, datetime

    from serving_support import SPEC

    from setpoint.demo import lending

    workspace = Workspace.init(tmp_path_factory.mktemp("routes") / "ws", actor="test")
    history = lending.applications(600, start=datetime(2026, 1, 1, tzinfo=UTC), seed=2)
    workspace.add_dataset("loans", history)
    version = workspace.train(SPEC)
    workspace.promote(version.name, version.version)
    workspace.deploy("credit", model="credit-risk")
    app = create_app(workspace, MemoryLog(), feedback_log=MemoryLog(), refresh_seconds=3600)
    targets = [
        (method, route.path)
        for route in app.routes
        if isinstance(route, Route)
        for method in sorted(route.methods or {"GET"})
        if method != "HEAD"
    ]
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, targets
    workspace.close()


def _fill(path: str, draw: Any) -> str:
    return re.sub(
        r"\{(\w+)(?::\w+)?\}", lambda m: draw(st.sampled_from(PARAMETERS[m.group(1)])), path
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["records", "columns", "inputs", "instances", "dataframe_split",
                 "dataframe_records", "name", "shape", "datatype", "data", "outputs",
                 "request_id", "label", "age", "grade", "x"]
            ) | st.text(max_size=6),
            inner,
            max_size=4,
        )
    ),
    max_leaves=16,
)  # fmt: skip
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),  # NaN, Infinity, huge integers
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
content_types = st.sampled_from(
    ["application/json", "text/csv", "application/octet-stream", "", "text/plain; charset=x"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), body=bodies, content_type=content_types)
def test_no_route_ever_answers_500(
    app_client: tuple[TestClient, list[tuple[str, str]]],
    data: st.DataObject,
    body: bytes,
    content_type: str,
) -> None:
    client, targets = app_client
    method, path = data.draw(st.sampled_from(targets))
    url = _fill(path, data.draw)
    headers = {"content-type": content_type} if content_type else {}
    if data.draw(st.booleans()):  # the binary tensor extension's header, sometimes wrong
        headers["inference-header-content-length"] = str(data.draw(st.integers(-5, 400)))
    response = client.request(method, url, content=body, headers=headers)
    assert response.status_code < 500, (
        method,
        url,
        response.text,
    )
    if response.status_code >= 400:
        assert_error_shape(response, response.status_code)


def test_the_route_table_is_what_is_tested(
    app_client: tuple[TestClient, list[tuple[str, str]]],
) -> None:
    _, targets = app_client
    paths = {path for _, path in targets}
    # The three protocols, feedback, the probes and the docs are all in the table.
    for expected in (
        "/v1/endpoints/{endpoint}/predict",
        "/v1/endpoints/{endpoint}/feedback",
        "/v2/models/{name}/infer",
        "/invocations",
        "/metrics",
        "/docs",
    ):
        assert expected in paths, sorted(paths)
