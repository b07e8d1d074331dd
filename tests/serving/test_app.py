"""The server in-process: every route, every kind of mistake, the model swap."""

from __future__ import annotations

import asyncio
import errno
import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_support import SPEC, MemoryLog, assert_error_shape, raw_request, requests_of
from starlette.testclient import TestClient

from setpoint.serving.app import create_app
from setpoint.workspace import Workspace


@pytest.fixture
def feedback_log() -> MemoryLog:
    return MemoryLog()


@pytest.fixture
def refused_log() -> MemoryLog:
    return MemoryLog()


@pytest.fixture
def client(
    served: Workspace, memory_log: MemoryLog, feedback_log: MemoryLog, refused_log: MemoryLog
) -> Iterator[TestClient]:
    app = create_app(
        served,
        memory_log,
        feedback_log=feedback_log,
        refused_log=refused_log,
        refresh_seconds=0.05,
    )
    with TestClient(app) as test_client:
        yield test_client


def test_predictions_match_the_model_in_process(
    client: TestClient, served: Workspace, history: pd.DataFrame, memory_log: MemoryLog
) -> None:
    rows = requests_of(history.tail(20))
    response = client.post("/v1/endpoints/credit/predict", json={"records": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["endpoint"], body["model"], body["version"]) == ("credit", "credit-risk", 1)
    expected = served.load_model("credit-risk@1").predict_proba(pd.DataFrame(rows))
    assert expected is not None
    np.testing.assert_allclose(body["probabilities"], expected, atol=1e-6)
    assert body["classes"] == [0, 1]
    assert body["flags"] == {"fallback": False, "cached": False}
    assert len(memory_log.records) == 20
    assert {r["request_id"] for r in memory_log.records} == {body["request_id"]}

    columns = {k: [r[k] for r in rows] for k in rows[0]}
    by_columns = client.post("/v1/endpoints/credit/predict", json={"columns": columns}).json()
    assert by_columns["probabilities"] == body["probabilities"]


def test_pii_columns_are_kept_as_a_keyed_hash_in_the_log(
    workspace: Workspace, history: pd.DataFrame, memory_log: MemoryLog
) -> None:
    workspace.add_dataset("loans", history, pii_columns=["age"])
    version = workspace.train({**SPEC})
    workspace.promote(version.name, version.version)
    workspace.deploy("credit", model="credit-risk")
    with TestClient(create_app(workspace, memory_log)) as client:
        response = client.post(
            "/v1/endpoints/credit/predict", json={"records": requests_of(history.head(2))}
        )
    assert response.status_code == 200, response.text
    ages = history["age"].head(2).tolist()
    policy = workspace.pii_policy(workspace.contract("loans@1"))
    # The same age always gives the same hash (joins and erasure find it), never the age.
    assert [r["inputs"]["age"] for r in memory_log.records] == [policy.hash(a) for a in ages]
    assert all(r["inputs"]["age"].startswith("pii:") for r in memory_log.records)
    secret = workspace.root / "secrets" / "pii.key"
    assert secret.stat().st_mode & 0o777 == 0o600


def test_bad_rows_get_every_violation(
    client: TestClient, history: pd.DataFrame, refused_log: MemoryLog, memory_log: MemoryLog
) -> None:
    rows = requests_of(history.head(3))
    rows[1]["grade"] = "Z"
    rows[2]["income"] = "lots"
    rows[2]["term"] = None
    error = assert_error_shape(
        client.post("/v1/endpoints/credit/predict", json={"records": rows}),
        422,
        "contract_violation",
    )
    found = {(v["row"], v["column"], v["rule"]) for v in error["details"]["violations"]}
    assert found == {(1, "grade", "category"), (2, "income", "type"), (2, "term", "not_null")}
    # The row refused for its values is kept, with what refused it.
    (kept,) = refused_log.records
    assert (kept["row"], kept["model"], kept["version"]) == (2, "credit-risk", 1)
    assert kept["inputs"] == rows[2]
    assert kept["reasons"] == [
        {"column": "income", "rule": "type", "value": "lots"},
        {"column": "term", "rule": "not_null", "value": None},
    ]
    assert memory_log.records == []


def test_a_request_refused_for_its_columns_keeps_every_row(
    client: TestClient, history: pd.DataFrame, refused_log: MemoryLog
) -> None:
    rows = [{k: v for k, v in r.items() if k != "income"} for r in requests_of(history.head(2))]
    rows[0]["colour"] = "blue"
    response = client.post("/v1/endpoints/credit/predict", json={"records": rows})
    assert_error_shape(response, 422, "contract_violation")
    request_id = {r["request_id"] for r in refused_log.records}
    assert len(request_id) == 1
    assert [r["row"] for r in refused_log.records] == [0, 1]
    assert refused_log.records[1]["reasons"] == [
        {"column": "income", "rule": "missing_column", "value": None},
        {"column": "colour", "rule": "unknown_column", "value": None},
    ]
    assert refused_log.records[0]["inputs"]["colour"] == "blue"


def test_per_row_mode_answers_the_good_rows(
    client: TestClient, served: Workspace, history: pd.DataFrame
) -> None:
    served.deploy("credit", on_error="per_row")
    deadline = time.monotonic() + 10
    while client.get("/v1/endpoints/credit").json()["revision"] != 2:
        assert time.monotonic() < deadline, "the server did not follow the deployment"
    rows = requests_of(history.head(3))
    rows[1]["income"] = "lots"
    rows[2]["grade"] = "Z"
    body = client.post("/v1/endpoints/credit/predict", json={"records": rows}).json()
    assert body["predictions"][1] is None
    assert body["predictions"][0] is not None
    assert body["predictions"][2] is not None  # an unseen category is scored, and marked
    assert body["errors"] == [{"row": 1, "column": "income", "rule": "type", "value": "lots"}]
    assert body["warnings"] == [{"row": 2, "column": "grade", "rule": "category", "value": "Z"}]


def test_a_bad_request_does_not_fail_its_batch_neighbours(
    client: TestClient, history: pd.DataFrame
) -> None:
    good = requests_of(history.head(1))
    bad = [{**good[0], "income": "lots"}]
    responses = [
        client.post("/v1/endpoints/credit/predict", json={"records": rows})
        for rows in (good, bad, good)
    ]
    assert [r.status_code for r in responses] == [200, 422, 200]


def test_rows_past_the_training_range_are_answered_and_marked(
    client: TestClient, served: Workspace, history: pd.DataFrame, memory_log: MemoryLog
) -> None:
    contract = served.registry.get("credit-risk@champion").contract
    assert contract is not None
    top = contract["columns"]["loan_amount"]["max"]
    rows = requests_of(history.head(3))
    rows[0]["loan_amount"] = top * 1.2
    rows[2]["grade"] = "Z"
    response = client.post("/v1/endpoints/credit/predict", json={"records": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    assert None not in body["predictions"]
    assert "errors" not in body
    assert [(w["row"], w["column"], w["rule"]) for w in body["warnings"]] == [
        (0, "loan_amount", "max"),
        (2, "grade", "category"),
    ]
    logged = {r["row"]: r.get("violations") for r in memory_log.records}
    assert logged == {
        0: [{"column": "loan_amount", "rule": "max"}],
        1: None,
        2: [{"column": "grade", "rule": "category"}],
    }
    clean = client.post("/v1/endpoints/credit/predict", json={"records": rows[1:2]}).json()
    assert "warnings" not in clean


MALFORMED: list[tuple[bytes, int, str]] = [
    (b"{not json", 400, "malformed_request"),
    (b"[1, 2]", 400, "malformed_request"),
    (b'{"records": []}', 400, "malformed_request"),
    (b'{"records": [1]}', 400, "malformed_request"),
    (b'{"rows": [{}]}', 400, "malformed_request"),
    (b'{"columns": {"a": [1], "b": [1, 2]}}', 400, "malformed_request"),
    (b'{"records": [{"age": NaN}]}', 400, "malformed_request"),
    (b'{"records": [{"age": 1e999}]}', 400, "malformed_request"),
    (b'{"records": [{"nope": 1}]}', 422, "contract_violation"),
    (b'{"records": null}', 400, "malformed_request"),
    (b'{"columns": null}', 400, "malformed_request"),
    (b'{"records": null, "request_id": "a"}', 400, "malformed_request"),
    ('{"records": [{"\u00e9": "\u2603"}]}'.encode(), 422, "contract_violation"),
]


def test_malformed_bodies_get_a_clear_4xx(client: TestClient) -> None:
    for body, status, code in MALFORMED:
        response = client.post(
            "/v1/endpoints/credit/predict",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert_error_shape(response, status, code)


def test_metrics_count_requests_batches_and_the_served_version(
    client: TestClient, history: pd.DataFrame
) -> None:
    rows = {"records": requests_of(history.head(2))}
    for _ in range(3):
        assert client.post("/v1/endpoints/credit/predict", json=rows).status_code == 200
    client.post("/v1/endpoints/credit/predict", json={"records": [{"x": 1}]})
    text = client.get("/metrics").text
    assert (
        'setpoint_requests_total{endpoint="credit",protocol="native",status="200",version="1"} 3.0'
        in text
    )
    assert 'status="422"' in text
    assert 'setpoint_served_version{endpoint="credit",model="credit-risk"} 1.0' in text
    assert 'setpoint_batched_requests_total{endpoint="credit"} 3.0' in text
    assert "setpoint_request_seconds_bucket" in text


def test_feedback_is_stored_one_or_many_at_a_time(
    client: TestClient, feedback_log: MemoryLog, history: pd.DataFrame
) -> None:
    answer = client.post(
        "/v1/endpoints/credit/predict", json={"records": requests_of(history.head(2))}
    ).json()
    one = client.post(
        "/v1/endpoints/credit/feedback", json={"request_id": answer["request_id"], "label": 1}
    )
    assert one.json() == {"endpoint": "credit", "accepted": 1}
    many = client.post(
        "/v1/endpoints/credit/feedback",
        json={
            "feedback": [{"request_id": answer["request_id"], "row": r, "label": 0} for r in (0, 1)]
        },
    )
    assert many.json()["accepted"] == 2
    assert [(r["row"], r["label"]) for r in feedback_log.records] == [(0, 1), (0, 0), (1, 0)]
    bad = client.post(
        "/v1/endpoints/credit/feedback",
        json={"feedback": [{"request_id": "", "label": 1}, {"label": [1]}, 3]},
    )
    error = assert_error_shape(bad, 400, "malformed_request")
    assert len(error["details"]) == 3
    assert len(feedback_log.records) == 3  # nothing of a refused request is kept
    assert_error_shape(
        client.post("/v1/endpoints/nope/feedback", json={"request_id": "r", "label": 1}), 404
    )


def test_routes_and_limits(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "alive"
    assert client.get("/readyz").json() == {
        "status": "ready",
        "endpoints": {"credit": "credit-risk@1"},
    }
    assert [e["endpoint"] for e in client.get("/v1/endpoints").json()] == ["credit"]
    shown = client.get("/v1/endpoints/credit").json()
    assert "income" in shown["inputs"]["columns"]
    assert_error_shape(client.get("/v1/endpoints/nope"), 404, "not_found")
    assert_error_shape(
        client.post("/v1/endpoints/nope/predict", json={"records": [{}]}), 404, "not_found"
    )
    assert_error_shape(client.get("/nowhere"), 404, "not_found")
    assert_error_shape(client.get("/v1/endpoints/credit/predict"), 405, "method_not_allowed")
    huge = b'{"records": [' + b'{"age": 1},' * 500_000 + b'{"age": 1}]}'
    assert_error_shape(
        client.post("/v1/endpoints/credit/predict", content=huge), 413, "payload_too_large"
    )


def test_an_unexpected_failure_is_a_500_in_the_error_shape_and_is_logged(
    client: TestClient,
    history: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from setpoint.serving import native

    def broken(_body: bytes) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(native, "decode", broken)
    rows = {"records": requests_of(history.head(1))}
    with caplog.at_level("ERROR", logger="setpoint.serving"):
        answer = client.post("/v1/endpoints/credit/predict", json=rows)
    assert_error_shape(answer, 500, "internal")
    assert any(r.exc_info and "a bug" in str(r.exc_info[1]) for r in caplog.records)
    assert client.get("/healthz").status_code == 200  # the server goes on


def test_a_promotion_is_followed_without_a_restart(
    client: TestClient, served: Workspace, history: pd.DataFrame
) -> None:
    rows = {"records": requests_of(history.head(1))}
    assert client.post("/v1/endpoints/credit/predict", json=rows).json()["version"] == 1
    second = served.train({**SPEC, "seed": 2})
    served.promote("credit-risk", second.version)
    deadline = time.monotonic() + 10
    while client.post("/v1/endpoints/credit/predict", json=rows).json()["version"] != 2:
        assert time.monotonic() < deadline, "the server did not follow the promotion"


def _dumps(value: Any) -> bytes:
    # The standard library writes what orjson refuses (huge integers, Infinity): good input.
    return json.dumps(value).encode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(_dumps),
    st.fixed_dictionaries(
        {
            "records": st.lists(
                st.dictionaries(
                    st.sampled_from(["age", "income", "grade", "term", "x"]),
                    json_values,
                    max_size=5,
                ),
                max_size=4,
            )
        }
    ).map(_dumps),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=bodies,
    route=st.sampled_from(
        [
            "/v1/endpoints/credit/predict",
            "/v1/endpoints/credit/feedback",
            "/v1/endpoints/credit",
            "/metrics",
            "/healthz",
            "/readyz",
            "/v1/endpoints",
        ]
    ),
)
def test_no_body_ever_gets_a_500(client: TestClient, body: bytes, route: str) -> None:
    response = client.post(route, content=body, headers={"content-type": "application/json"})
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_error_shape(response, response.status_code)


def test_a_native_tree_model_answers_labels_and_probabilities_from_one_call(
    workspace: Workspace, history: pd.DataFrame, memory_log: MemoryLog
) -> None:
    workspace.add_dataset("loans", history)
    spec = {
        **SPEC,
        "estimator": {"class": "lightgbm.LGBMClassifier", "params": {"n_estimators": 20}},
    }
    version = workspace.train(spec)
    workspace.promote(version.name, version.version)
    workspace.deploy("credit", model="credit-risk")
    rows = requests_of(history.tail(30))
    with TestClient(create_app(workspace, memory_log)) as client:
        body = client.post("/v1/endpoints/credit/predict", json={"records": rows}).json()
    model = workspace.load_model("credit-risk")
    frame = pd.DataFrame(rows)
    assert body["predictions"] == model.predict(frame).tolist()
    np.testing.assert_allclose(body["probabilities"], model.predict_proba(frame), atol=1e-6)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/endpoints/credit/predict",
        "/v1/endpoints/credit/feedback",
        "/v2/models/credit/infer",
        "/endpoints/credit/invocations",
    ],
)
def test_a_stalled_body_is_a_408_not_a_held_connection(served: Workspace, path: str) -> None:
    # A client that sends headers and then nothing: its receive() never returns.
    async def stalled() -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    app = create_app(served, MemoryLog(), feedback_log=MemoryLog(), body_timeout_seconds=0.01)
    assert served.settings.body_timeout_seconds == 30.0  # the default, overridden here
    with TestClient(app) as client:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"10")]
        response = raw_request(client, "POST", path, headers=headers, receive=stalled)
    assert response.status == 408, response.body
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "request_timeout"
    assert "body_timeout_seconds" in error["message"]


def test_probes_say_what_failed_without_paths(
    served: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    # The model's artifact is gone: the store's error names where it looked.
    for artifact in (served.root / "artifacts").rglob("*"):
        if artifact.is_file():
            artifact.unlink()
    app = create_app(served, MemoryLog(), refresh_seconds=3600)
    with caplog.at_level("ERROR", logger="setpoint.serving"), TestClient(app) as client:
        answers = {
            path: client.get(path) for path in ("/readyz", "/v2/health/ready", "/ping", "/health")
        }
        answers["predict"] = client.post(
            "/v1/endpoints/credit/predict", json={"records": [{"age": 1}]}
        )
    for where, response in answers.items():
        error = assert_error_shape(response, 503)
        text = response.text
        assert str(served.root) not in text, (where, text)
        assert "artifacts" not in text, (where, text)
        assert "could not be loaded" in text, (where, text)
        assert "server log" in text, (where, text)
    details = answers["/readyz"].json()["error"]["details"]
    assert details == {
        "endpoints": [
            {
                "endpoint": "credit",
                "ready": False,
                "reason": "its model could not be loaded: an artifact of the model is missing "
                "or damaged (see the server log)",
            }
        ]
    }
    assert error["code"] == "not_ready"
    # The full story, with the path, is in the server's log.
    assert any(str(served.root) in r.getMessage() for r in caplog.records), caplog.text


def test_a_full_disk_is_a_503_with_retry_after_and_no_path(
    served: Workspace, history: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    from setpoint.serving import _logfiles
    from setpoint.serving.log import RecordLog

    def full(segment: _logfiles.SegmentFile, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    log = RecordLog(served.root, clock=lambda: 0.0)  # the backoff never ends in this test
    app = create_app(served, log, refresh_seconds=3600)
    row = requests_of(history.head(1))[0]
    with TestClient(app) as client:
        assert client.post("/v1/endpoints/credit/predict", json={"records": [row]}).is_success
        monkeypatch.setattr(_logfiles.SegmentFile, "write", full)
        segments = sorted(_logfiles.segments_dir(served.root, "predictions").iterdir())
        for route in ("/v1/endpoints/credit/predict", "/v1/endpoints/credit/predict"):
            response = client.post(route, json={"records": [row]})
            error = assert_error_shape(response, 503, "log_unavailable")
            assert response.headers["retry-after"] == "1"
            assert "disk is full" in error["message"]
            assert str(served.root) not in response.text
        assert sorted(_logfiles.segments_dir(served.root, "predictions").iterdir()) == segments
        monkeypatch.undo()


def test_a_repeated_request_id_is_refused(client: TestClient, history: pd.DataFrame) -> None:
    row = requests_of(history.head(1))[0]
    predict = "/v1/endpoints/credit/predict"
    first = client.post(predict, json={"records": [row], "request_id": "order-1"})
    assert first.json()["request_id"] == "order-1"
    again = client.post(predict, json={"records": [row], "request_id": "order-1"})
    error = assert_error_shape(again, 409, "conflict")
    assert "order-1" in error["message"]
    assert "already" in error["message"]
    # The OIP id is the same request id: the feedback route joins on both.
    datatypes = {str: "BYTES", int: "INT64", float: "FP64"}
    infer = {"id": "order-1", "inputs": [
        {"name": n, "shape": [1], "datatype": datatypes[type(v)], "data": [v]}
        for n, v in row.items() if v is not None
    ]}  # fmt: skip
    assert_error_shape(client.post("/v2/models/credit/infer", json=infer), 409, "conflict")
    infer["id"] = "order-2"
    assert client.post("/v2/models/credit/infer", json=infer).is_success
    # A request refused for its data was not logged: its id is still free.
    bad = client.post(predict, json={"records": [{"age": 1}], "request_id": "order-3"})
    assert_error_shape(bad, 422)
    assert client.post(predict, json={"records": [row], "request_id": "order-3"}).is_success
    # Without an id the server makes a fresh one each time.
    ids = {client.post(predict, json={"records": [row]}).json()["request_id"] for _ in range(3)}
    assert len(ids) == 3


def test_request_ids_stay_taken_across_a_restart(served: Workspace, history: pd.DataFrame) -> None:
    from setpoint.serving.log import RecordLog

    row = requests_of(history.head(1))[0]
    body = {"records": [row], "request_id": "order-9"}
    for attempt in range(2):
        app = create_app(served, RecordLog(served.root), refresh_seconds=3600)
        with TestClient(app) as client:
            response = client.post("/v1/endpoints/credit/predict", json=body)
        if attempt == 0:
            assert response.is_success, response.text
        else:
            assert_error_shape(response, 409, "conflict")


def test_an_integer_beyond_64_bits_is_refused_not_rounded(
    client: TestClient, history: pd.DataFrame
) -> None:
    # JSON parsing turns an integer beyond 64 bits into a float; it is still no int64.
    row = requests_of(history.head(1))[0]
    body = json.dumps({"records": [row]}).replace(f'"age": {row["age"]}', '"age": -' + "9" * 25)
    response = client.post("/v1/endpoints/credit/predict", content=body.encode())
    error = assert_error_shape(response, 422, "contract_violation")
    assert error["details"]["violations"][0]["column"] == "age"
