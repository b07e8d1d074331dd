"""The Open Inference Protocol v2 routes: metadata, JSON and binary infer, every mistake."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_support import MemoryLog, assert_error_shape, raw_request, requests_of
from starlette.applications import Starlette
from starlette.testclient import TestClient

from setpoint.serving import oip
from setpoint.serving.app import create_app
from setpoint.serving.log import RecordLog
from setpoint.workspace import Workspace

# The protocol, not the stores: its workspace on SQLite only (conftest.py).
pytestmark = pytest.mark.one_database

INFER = "/v2/models/credit/infer"
INTEGERS = {"age", "term", "credit_lines"}
STRINGS = {"grade", "home_ownership", "purpose", "channel"}


def app_of(workspace: Workspace, log: Any) -> Starlette:
    return create_app(workspace, log, refresh_seconds=0.05)


@pytest.fixture
def client(served: Workspace, memory_log: MemoryLog) -> Iterator[TestClient]:
    with TestClient(app_of(served, memory_log)) as test_client:
        yield test_client


def datatype_of(name: str) -> str:
    return "INT64" if name in INTEGERS else "BYTES" if name in STRINGS else "FP64"


def json_inputs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "shape": [len(rows)],
            "datatype": datatype_of(name),
            "data": [r[name] for r in rows],
        }
        for name in rows[0]
    ]


def binary_request(rows: list[dict[str, Any]], outputs: Any = None) -> tuple[bytes, int]:
    inputs, blobs = [], []
    for name in rows[0]:
        values = [r[name] for r in rows]
        datatype = datatype_of(name)
        if datatype == "BYTES":
            blob = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)
        elif datatype == "INT64":
            blob = np.array(values, dtype="<i8").tobytes()
        else:
            blob = np.array([np.nan if v is None else v for v in values], dtype="<f8").tobytes()
        blobs.append(blob)
        inputs.append(
            {
                "name": name,
                "shape": [len(rows), 1],
                "datatype": datatype,
                "parameters": {"binary_data_size": len(blob)},
            }
        )
    header: dict[str, Any] = {"id": "abc", "inputs": inputs}
    if outputs is not None:
        header["outputs"] = outputs
    head = orjson.dumps(header)
    return head + b"".join(blobs), len(head)


def expected_proba(served: Workspace, rows: list[dict[str, Any]]) -> Any:
    expected = served.load_model("credit-risk@1").predict_proba(pd.DataFrame(rows))
    assert expected is not None
    return expected


def test_health_and_server_metadata(client: TestClient) -> None:
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    meta = client.get("/v2").json()
    assert meta["name"] == "setpoint"
    assert meta["extensions"] == ["binary_tensor_data"]


def test_model_metadata_and_ready(client: TestClient) -> None:
    for path in ("/v2/models/credit", "/v2/models/credit/versions/1"):
        meta = client.get(path).json()
        assert meta["name"] == "credit"
        assert meta["versions"] == ["1"]
        assert meta["platform"] == "setpoint"
        inputs = {i["name"]: i["datatype"] for i in meta["inputs"]}
        assert inputs["income"] == "FP64"
        assert inputs["age"] == "INT64"
        assert inputs["grade"] == "BYTES"
        assert {o["name"]: o["shape"] for o in meta["outputs"]} == {
            "predictions": [-1],
            "probabilities": [-1, 2],
        }
        assert client.get(f"{path}/ready").json() == {"name": "credit", "ready": True}
    assert_error_shape(client.get("/v2/models/nope"), 404)
    assert_error_shape(client.get("/v2/models/credit/versions/2/ready"), 404)


def test_json_infer_matches_the_model(
    client: TestClient, served: Workspace, history: pd.DataFrame, memory_log: MemoryLog
) -> None:
    rows = requests_of(history.tail(20))
    response = client.post(INFER, json={"id": "r1", "inputs": json_inputs(rows)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("credit", "1", "r1")
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["probabilities"]["shape"] == [20, 2]
    proba = np.array(outputs["probabilities"]["data"]).reshape(20, 2)
    np.testing.assert_allclose(proba, expected_proba(served, rows), atol=1e-6)
    # The classes are the integers 0 and 1, so the labels are INT64 integers, not text.
    assert outputs["predictions"]["datatype"] == "INT64"
    assert set(outputs["predictions"]["data"]) <= {0, 1}
    assert len(memory_log.records) == 20


def test_binary_request_and_binary_response(
    client: TestClient, served: Workspace, history: pd.DataFrame
) -> None:
    rows = requests_of(history.head(15))
    body, length = binary_request(
        rows,
        outputs=[
            {"name": "probabilities", "parameters": {"binary_data": True}},
            {"name": "predictions", "parameters": {"binary_data": True}},
        ],
    )
    response = client.post(
        "/v2/models/credit/versions/1/infer",
        content=body,
        headers={oip.HEADER: str(length), "content-type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    head_length = int(response.headers[oip.HEADER])
    head = orjson.loads(response.content[:head_length])
    assert head["id"] == "abc"
    sizes = [o["parameters"]["binary_data_size"] for o in head["outputs"]]
    tail = response.content[head_length:]
    assert len(tail) == sum(sizes)
    proba = np.frombuffer(tail[: sizes[0]], dtype="<f8").reshape(15, 2)
    np.testing.assert_allclose(proba, expected_proba(served, rows), atol=1e-6)
    assert head["outputs"][1]["datatype"] == "INT64"  # the classes are the integers 0, 1
    labels = np.frombuffer(tail[sizes[0] :], dtype="<i8")
    assert len(labels) == 15
    assert set(labels.tolist()) <= {0, 1}


def test_binary_output_by_request_parameter(client: TestClient, history: pd.DataFrame) -> None:
    rows = requests_of(history.head(3))
    response = client.post(
        INFER, json={"inputs": json_inputs(rows), "parameters": {"binary_data_output": True}}
    )
    assert response.status_code == 200, response.text
    assert oip.HEADER in response.headers


def test_a_version_not_served_is_404(client: TestClient, history: pd.DataFrame) -> None:
    rows = requests_of(history.head(2))
    response = client.post("/v2/models/credit/versions/7/infer", json={"inputs": json_inputs(rows)})
    assert_error_shape(response, 404)


def _rows() -> list[dict[str, Any]]:
    return [
        {
            "age": 40,
            "income": 50000.0,
            "loan_amount": 10000.0,
            "term": 36,
            "employment_years": 2.0,
            "credit_lines": 4,
            "debt_to_income": 20.0,
            "grade": "B",
            "home_ownership": "rent",
            "purpose": "car",
            "channel": "web",
        }
    ] * 2


def _json(mutate: Any) -> bytes:
    inputs = json_inputs(_rows())
    mutate(inputs)
    return orjson.dumps({"inputs": inputs})


MALFORMED: dict[str, tuple[bytes, dict[str, str], int]] = {
    "not json": (b"{nope", {}, 400),
    "a list": (b"[1, 2]", {}, 400),
    "no inputs": (b"{}", {}, 400),
    "inputs empty": (b'{"inputs": []}', {}, 400),
    "input not object": (b'{"inputs": [3]}', {}, 400),
    "bad shape": (_json(lambda i: i[0].update(shape=[2, 2])), {}, 400),
    "shape string": (_json(lambda i: i[0].update(shape="2")), {}, 400),
    "shape count wrong": (_json(lambda i: i[0].update(shape=[3])), {}, 400),
    "huge shape": (_json(lambda i: i[0].update(shape=[10**15])), {}, 400),
    "rows differ": (_json(lambda i: i[1].update(shape=[1], data=[1.0])), {}, 400),
    "unknown datatype": (_json(lambda i: i[0].update(datatype="COMPLEX")), {}, 400),
    "data not matching datatype": (_json(lambda i: i[0].update(data=["a", "b"])), {}, 400),
    "int overflow": (_json(lambda i: i[0].update(datatype="INT8", data=[400, 1])), {}, 400),
    "datatype against contract": (
        _json(lambda i: i[7].update(datatype="FP64", data=[1.0, 2.0])),
        {},
        422,
    ),
    "unknown input": (
        _json(lambda i: i.append({"name": "x", "shape": [2], "datatype": "FP64", "data": [1, 2]})),
        {},
        422,
    ),
    "duplicate input": (_json(lambda i: i.append(dict(i[0]))), {}, 400),
    "missing input": (_json(lambda i: i.pop()), {}, 422),
    "no data": (_json(lambda i: i[0].pop("data")), {}, 400),
    "unknown output": (
        orjson.dumps({"inputs": json_inputs(_rows()), "outputs": [{"name": "nope"}]}),
        {},
        400,
    ),
    "header length too big": (b"{}", {oip.HEADER: "99"}, 400),
    "header length not a number": (b"{}", {oip.HEADER: "-1"}, 400),
    "binary sizes do not add up": (
        orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "age",
                        "shape": [2],
                        "datatype": "INT64",
                        "parameters": {"binary_data_size": 16},
                    }
                ]
            }
        )
        + b"\0" * 20,
        {},
        400,
    ),
    "huge binary size": (
        orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "grade",
                        "shape": [1],
                        "datatype": "BYTES",
                        "parameters": {"binary_data_size": 10**12},
                    }
                ]
            }
        )
        + b"\xff\xff\xff\xff",
        {},
        400,
    ),
}


SCALAR = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
TENSOR = st.fixed_dictionaries(
    {
        "name": st.sampled_from([*_rows()[0], "x"]),
        "shape": st.lists(st.integers(min_value=-1, max_value=3), max_size=3),
        "datatype": st.sampled_from(["FP64", "INT64", "BYTES", "BOOL", "INT8", "FP16", "X"]),
        "data": st.lists(SCALAR | st.lists(SCALAR, max_size=2), max_size=4),
    },
    optional={"parameters": st.dictionaries(st.just("binary_data_size"), SCALAR)},
)


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_bodies_are_4xx(client: TestClient, case: str) -> None:
    body, headers, status = MALFORMED[case]
    if oip.HEADER not in headers and "binary" in case:
        head = body[: body.rindex(b"}") + 1]
        headers = {oip.HEADER: str(len(head))}
    assert_error_shape(client.post(INFER, content=body, headers=headers), status)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(
                    st.sampled_from(
                        ["inputs", "name", "shape", "datatype", "data", "parameters", "outputs"]
                    ),
                    inner,
                    max_size=5,
                )
            ),
            max_leaves=20,
        ).map(lambda value: json.dumps(value).encode()),
        st.lists(TENSOR, min_size=1, max_size=12).map(
            lambda inputs: json.dumps({"inputs": inputs}).encode()
        ),
    ),
    header=st.none() | st.integers(min_value=0, max_value=250),
)
def test_arbitrary_bodies_never_break_the_server(
    client: TestClient, body: bytes, header: int | None
) -> None:
    headers = {} if header is None else {oip.HEADER: str(header)}
    response = client.post(INFER, content=body, headers=headers)
    assert response.status_code != 500, response.text
    if response.status_code != 200:
        assert_error_shape(response)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(app: Starlette) -> Iterator[int]:
    """``app`` served by uvicorn on a free loopback port (yielded) in a thread."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "the server stopped"
            assert time.monotonic() < deadline, "the server did not start"
            thread.join(timeout=0.02)  # waits on the thread ending, else polls
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_the_official_triton_client_end_to_end(served: Workspace, history: pd.DataFrame) -> None:
    import tritonclient.http as triton

    app = app_of(served, RecordLog(served.root, kind="predictions"))
    with running(app) as port:
        rows = requests_of(history.tail(25))
        client = triton.InferenceServerClient(url=f"127.0.0.1:{port}")
        try:
            assert client.is_server_live()
            assert client.is_server_ready()
            assert client.is_model_ready("credit")
            inputs = []
            for name in rows[0]:
                datatype = datatype_of(name)
                values = [r[name] for r in rows]
                array = (
                    np.array(values, dtype=np.object_).reshape(-1, 1)
                    if datatype == "BYTES"
                    else np.array(
                        [np.nan if v is None else v for v in values],
                        dtype=np.int64 if datatype == "INT64" else np.float64,
                    ).reshape(-1, 1)
                )
                tensor = triton.InferInput(name, list(array.shape), datatype)
                tensor.set_data_from_numpy(array, binary_data=True)
                inputs.append(tensor)
            result = client.infer(
                "credit",
                inputs,
                outputs=[triton.InferRequestedOutput("probabilities", binary_data=True)],
            )
        finally:
            client.close()
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), expected_proba(served, rows), atol=1e-6
    )


@pytest.mark.parametrize(
    "declared",
    [b"\xb2", b"\xb9", b"\xb3" * 3, b" 12", b"-1", b"1_0", b"9" * 5000],
    ids=["superscript two", "superscript one", "superscripts", "space", "minus", "underscore",
         "5000 digits"],
)  # fmt: skip
def test_a_length_header_that_is_not_ascii_digits_is_400(
    client: TestClient, declared: bytes
) -> None:
    # Latin-1 decodes the byte 0xb2 to "²", which str.isdigit() accepts and int() refuses.
    body = orjson.dumps({"inputs": json_inputs(_rows())})
    header = (oip.HEADER.lower().encode(), declared)
    response = raw_request(client, "POST", INFER, body, [header])
    assert response.status == 400, response.body
    assert response.json()["error"]["code"] == "malformed_request"


IRIS_LABELS: dict[str, tuple[str, Any]] = {
    # target kind -> (the output's datatype, the label of each iris class 0, 1, 2)
    "integer": ("INT64", [0, 1, 2]),
    "float": ("FP64", [1.0, 2.0, 3.0]),
    "boolean": ("BOOL", [True, False, False]),
    "text": ("BYTES", ["setosa", "versicolor", "virginica"]),
}


@pytest.mark.parametrize("kind", list(IRIS_LABELS))
def test_predictions_have_the_datatype_of_the_class_labels(tmp_path: Any, kind: str) -> None:
    """A model trained on integer (float, boolean) classes answers INT64 (FP64, BOOL)
    labels, text classes BYTES; in the metadata, in JSON and in binary, as the official
    Triton client reads them."""
    import tritonclient.http as triton
    from sklearn.datasets import load_iris

    datatype, labels = IRIS_LABELS[kind]
    iris = load_iris(as_frame=True).frame
    iris.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    iris["species"] = [labels[i] for i in iris["species"]]
    workspace = Workspace.init(tmp_path / "ws", actor="tester")
    workspace.add_dataset("iris", iris)
    spec = {
        "model": "iris",
        "dataset": "iris@latest",
        "target": "species",
        "task": "classification",
        "estimator": {"class": "sklearn.tree.DecisionTreeClassifier", "params": {}},
        "seed": 1,
    }
    version = workspace.train(spec)
    workspace.promote(version.name, version.version)
    workspace.deploy("iris", model="iris")
    features = iris.drop(columns="species")
    expected = workspace.load_model("iris@1").predict(features)
    try:
        with running(app_of(workspace, MemoryLog())) as port:
            metadata = httpx.get(f"http://127.0.0.1:{port}/v2/models/iris").json()
            described = {o["name"]: o["datatype"] for o in metadata["outputs"]}
            assert described == {"predictions": datatype, "probabilities": "FP64"}
            inputs = [
                {
                    "name": c,
                    "shape": [len(features)],
                    "datatype": "FP64",
                    "data": features[c].tolist(),
                }
                for c in features
            ]
            body = httpx.post(
                f"http://127.0.0.1:{port}/v2/models/iris/infer", json={"inputs": inputs}
            )
            assert body.status_code == 200, body.text
            predictions = next(o for o in body.json()["outputs"] if o["name"] == "predictions")
            assert predictions["datatype"] == datatype
            assert predictions["data"] == list(expected)
            assert all(type(v) is type(labels[0]) for v in predictions["data"])

            client = triton.InferenceServerClient(url=f"127.0.0.1:{port}")
            try:
                tensors = []
                for column in features:
                    tensor = triton.InferInput(column, [len(features)], "FP64")
                    tensor.set_data_from_numpy(
                        features[column].to_numpy(np.float64), binary_data=True
                    )
                    tensors.append(tensor)
                for binary in (True, False):
                    result = client.infer(
                        "iris",
                        tensors,
                        outputs=[triton.InferRequestedOutput("predictions", binary_data=binary)],
                    )
                    got = result.as_numpy("predictions")
                    assert result.get_output("predictions")["datatype"] == datatype
                    if datatype == "BYTES":
                        got = np.array([v.decode() if isinstance(v, bytes) else v for v in got])
                    np.testing.assert_array_equal(got, np.asarray(expected))
            finally:
                client.close()
    finally:
        workspace.close()


class _Endpoint:
    name = "credit"


_LABELS = st.one_of(
    st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=3, unique=True),
    st.lists(st.floats(allow_nan=False), min_size=1, max_size=3, unique=True),
    st.lists(st.text(max_size=5), min_size=1, max_size=3, unique=True),
    st.just([False, True]),
)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), classes=_LABELS)
def test_the_usual_json_answer_holds_what_the_general_encoding_does(
    data: st.DataObject, classes: list[Any]
) -> None:
    """``_encode`` answers the usual request (JSON outputs, none named) without arrays:
    the same values as when the outputs are named, refused rows and fallbacks included."""
    n = data.draw(st.integers(1, 4))
    fallback = data.draw(st.booleans())
    label = st.sampled_from(classes) if not fallback else st.sampled_from([*classes, "other"])
    predictions = [data.draw(st.one_of(st.none(), label)) for _ in range(n)]
    width = len(classes)
    probabilities = [
        [] if p is None else data.draw(st.lists(st.floats(0, 1), min_size=width, max_size=width))
        for p in predictions
    ]
    answer = oip.Answer("r-1", "m", 2, predictions, probabilities, classes, [], fallback=fallback)
    usual, headers = oip._encode(answer, _Endpoint(), {"inputs": []}, None)  # type: ignore[arg-type]
    named = [{"name": "predictions"}, {"name": "probabilities"}]
    general, _ = oip._encode(answer, _Endpoint(), {"inputs": []}, named)  # type: ignore[arg-type]
    assert headers == [(b"content-type", b"application/json")]
    assert orjson.loads(usual) == orjson.loads(general)
