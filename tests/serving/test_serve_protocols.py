"""Every protocol of the real server (`setpoint serve` on a socket) answers what the model
says in-process: native JSON, OIP v2 through the official Triton client, MLflow scoring."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from serving_support import SPEC, csv_body, requests_of, setpoint_serve

from setpoint.workspace import Workspace

pytestmark = pytest.mark.slow

ESTIMATORS: dict[str, Any] = {
    "sklearn": SPEC["estimator"],
    "lightgbm": {
        "class": "lightgbm.LGBMClassifier",
        "params": {"n_estimators": 20, "verbose": -1},
    },
}
TOLERANCE = 1e-6


@dataclass(frozen=True)
class Server:
    url: str
    rows: list[dict[str, Any]]  # 50 requests with nulls, as a JSON client sends them
    proba: np.ndarray  # what the champion says in-process
    labels: list[Any]
    classes: list[Any]


@pytest.fixture(scope="module", params=list(ESTIMATORS))
def server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    history: pd.DataFrame,
) -> Iterator[Server]:
    flavor: str = request.param
    tmp = tmp_path_factory.mktemp(flavor)
    ws = Workspace.init(tmp / "ws", actor="tester")
    try:
        ws.add_dataset("loans", history)
        version = ws.train({**SPEC, "estimator": ESTIMATORS[flavor]})
        ws.promote(version.name, version.version)
        ws.deploy("credit", model="credit-risk")
        predictor = ws.load_model("credit-risk@champion")
        assert predictor.flavor == flavor
        rows = requests_of(history.tail(50))
        assert any(v is None for r in rows for v in r.values())  # nulls cross every protocol
        proba = predictor.predict_proba(pd.DataFrame(rows))
        assert proba is not None
        assert predictor.classes is not None
        labels = np.asarray(predictor.predict(pd.DataFrame(rows))).tolist()
        with setpoint_serve(ws.root, tmp / "server.log") as served:
            yield Server(served.url, rows, np.asarray(proba), labels, list(predictor.classes))
    finally:
        ws.close()


def test_native_json(server: Server) -> None:
    response = httpx.post(
        f"{server.url}/v1/endpoints/credit/predict", json={"records": server.rows}, timeout=30
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["endpoint"], body["model"], body["version"]) == ("credit", "credit-risk", 1)
    assert body["classes"] == server.classes
    np.testing.assert_allclose(body["probabilities"], server.proba, rtol=0, atol=TOLERANCE)
    assert body["predictions"] == server.labels


@pytest.mark.parametrize("requested", ["all_outputs", "probabilities"])
def test_oip_with_the_official_triton_client_defaults(server: Server, requested: str) -> None:
    """The client as a user writes it: datatypes from the model metadata, binary input
    tensors and binary outputs as the client defaults them (all outputs binary when
    none is named; binary_data=True for a named one)."""
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        assert client.is_server_ready()
        assert client.is_model_ready("credit")
        metadata = client.get_model_metadata("credit")
        inputs = []
        for tensor in metadata["inputs"]:
            name, datatype = tensor["name"], tensor["datatype"]
            values = [r[name] for r in server.rows]
            array = (
                np.array(values, dtype=np.object_)
                if datatype == "BYTES"
                else np.array(
                    [np.nan if v is None else v for v in values],
                    dtype=triton.triton_to_np_dtype(datatype),
                )
            ).reshape(-1, 1)
            infer_input = triton.InferInput(name, list(array.shape), datatype)
            infer_input.set_data_from_numpy(array)
            inputs.append(infer_input)
        outputs = (
            None if requested == "all_outputs" else [triton.InferRequestedOutput("probabilities")]
        )
        result = client.infer("credit", inputs, outputs=outputs)
    finally:
        client.close()
    response = result.get_response()
    assert (response["model_name"], response["model_version"]) == ("credit", "1")
    assert all(o["parameters"]["binary_data_size"] > 0 for o in response["outputs"])
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), server.proba, rtol=0, atol=TOLERANCE
    )
    predictions = result.as_numpy("predictions")
    if requested == "all_outputs":
        assert predictions is not None
        assert predictions.dtype == np.int64  # integer classes come back as integers
        assert predictions.ravel().tolist() == list(server.labels)
    else:
        assert predictions is None  # only what was asked for


def _mlflow_request(rows: list[dict[str, Any]], fmt: str) -> dict[str, Any]:
    """httpx keyword arguments posting ``rows`` in MLflow scoring format ``fmt``."""
    if fmt == "csv":
        return {"content": csv_body(rows), "headers": {"content-type": "text/csv"}}
    if fmt == "dataframe_records":
        return {"json": {"dataframe_records": rows}}
    names = list(rows[0])
    split = {"columns": names, "data": [[r[n] for n in names] for r in rows]}
    return {"json": {"dataframe_split": split}}


@pytest.mark.parametrize("fmt", ["dataframe_split", "dataframe_records", "csv"])
@pytest.mark.parametrize("route", ["/invocations", "/endpoints/credit/invocations"])
def test_mlflow_scoring(server: Server, route: str, fmt: str) -> None:
    response = httpx.post(f"{server.url}{route}", timeout=30, **_mlflow_request(server.rows, fmt))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["classes"] == server.classes
    np.testing.assert_allclose(body["probabilities"], server.proba, rtol=0, atol=TOLERANCE)
    assert body["predictions"] == server.labels
