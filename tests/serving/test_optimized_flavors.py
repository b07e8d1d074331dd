"""Versions made by ``setpoint optimize`` (compiled, ONNX) serve like any other."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from serving_support import SPEC, MemoryLog, requests_of
from starlette.testclient import TestClient

from setpoint.models.optimize import optimize
from setpoint.serving.app import create_app
from setpoint.workspace import Workspace

# Model formats, not the stores: on SQLite only (conftest.py).
pytestmark = pytest.mark.one_database


@pytest.mark.parametrize("candidate", ["compiled", "onnx"])
def test_an_optimized_version_serves_what_the_original_does(
    workspace: Workspace, history: pd.DataFrame, candidate: str
) -> None:
    workspace.add_dataset("loans", history)
    lightgbm = SPEC | {
        "estimator": {"class": "lightgbm.LGBMClassifier", "params": {"n_estimators": 30}}
    }
    original = workspace.train(lightgbm)
    report = optimize(workspace, original.ref, only=[candidate], calls=5)
    ref = report.rows[1].ref
    assert ref is not None
    workspace.deploy("credit", model=ref)

    app = create_app(workspace, MemoryLog(), feedback_log=MemoryLog(), refresh_seconds=0.05)
    rows = requests_of(history.tail(20))
    with TestClient(app) as client:
        response = client.post("/v1/endpoints/credit/predict", json={"records": rows})
        one = client.post("/v1/endpoints/credit/predict", json={"records": rows[3:4]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["version"]) == ("credit-risk", int(ref.partition("@")[2]))
    expected = workspace.load_model(original.ref).predict_proba(pd.DataFrame(rows))
    assert expected is not None
    np.testing.assert_allclose(body["probabilities"], expected, atol=1e-5)
    assert body["predictions"] == np.argmax(expected, axis=1).tolist()
    np.testing.assert_allclose(one.json()["probabilities"], body["probabilities"][3:4], atol=1e-7)
