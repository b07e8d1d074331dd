"""Explanations served: ``POST .../explain`` and ``?explain=true`` on predict.

One workspace for the module (a LightGBM and a scikit-learn model on 600 rows), served
in-process; the explanations go through the same lane as predictions, so they are
checked, batched and logged the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from serving_support import SPEC, MemoryLog, assert_error_shape, requests_of
from sklearn.linear_model import LogisticRegression
from starlette.testclient import TestClient

from setpoint.demo import lending
from setpoint.serving.app import create_app
from setpoint.workspace import Workspace

GBM = {
    **SPEC,
    "model": "credit-gbm",
    "estimator": {"class": "lightgbm.LGBMClassifier", "params": {"n_estimators": 20}},
}


OUTSIDE = ["age", "income", "loan_amount"]


@pytest.fixture(scope="module")
def explained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, Any]]:
    ws = Workspace.init(tmp_path_factory.mktemp("explain") / "ws", actor="test")
    history = lending.applications(600, start=datetime(2026, 1, 1, tzinfo=UTC), seed=5)
    ws.add_dataset("loans", history)
    for spec in (GBM, SPEC):
        version = ws.train(spec)
        ws.promote(version.name, version.version)
    ws.deploy("gbm", model="credit-gbm")
    ws.deploy("linear", model="credit-risk")
    # Registered from outside (as every version was before versions kept a background
    # sample): a model without TreeSHAP and nothing to explain it against.
    reference = history[[*OUTSIDE, lending.TARGET]]
    model = LogisticRegression().fit(reference[OUTSIDE], reference[lending.TARGET])
    ws.register_model("outside", model, reference=reference, target=lending.TARGET)
    ws.promote("outside", 1)
    ws.deploy("outside", model="outside")
    yield ws, history
    ws.close()


@pytest.fixture(scope="module")
def served(explained: tuple[Workspace, Any]) -> Iterator[tuple[TestClient, MemoryLog, Any]]:
    ws, history = explained
    log = MemoryLog()
    with TestClient(create_app(ws, log)) as client:
        yield client, log, history


def _check_additive(row: dict[str, Any], probability: float) -> None:
    """base + contributions is the raw output, and the raw output (log-odds) is what
    the served probability of the positive class says."""
    (output,) = row["outputs"]
    assert output["output"] == "1"
    total = output["base"] + sum(output["contributions"].values())
    assert total == pytest.approx(output["raw"], abs=1e-6)
    assert 1.0 / (1.0 + math.exp(-output["raw"])) == pytest.approx(probability, abs=1e-9)


def test_a_lightgbm_endpoint_explains_in_log_odds_and_logs_the_explanation(
    served: tuple[TestClient, MemoryLog, Any],
) -> None:
    client, log, history = served
    rows = requests_of(history.head(3))
    every = client.post("/v1/endpoints/gbm/explain?top=all", json={"records": rows})
    assert every.status_code == 200, every.text
    body = every.json()
    plain = client.post("/v1/endpoints/gbm/predict", json={"records": rows}).json()
    assert "explanations" not in plain
    assert body["predictions"] == plain["predictions"]
    assert len(body["explanations"]) == 3
    for row, probabilities in zip(body["explanations"], body["probabilities"], strict=True):
        assert row["space"] == "log-odds"
        assert len(row["outputs"][0]["contributions"]) == len(rows[0])  # every feature
        _check_additive(row, probabilities[1])

    # The explanation is logged with the record, as it was answered (top 2 here).
    top = client.post("/v1/endpoints/gbm/predict?explain=true&top=2", json={"records": rows[:1]})
    assert top.status_code == 200, top.text
    (answer,) = top.json()["explanations"]
    contributions = answer["outputs"][0]["contributions"]
    full = body["explanations"][0]["outputs"][0]["contributions"]
    largest = sorted(full, key=lambda name: -abs(full[name]))[:2]
    assert list(contributions) == largest
    record = log.records[-1]
    assert record["request_id"] == top.json()["request_id"]
    assert record["outputs"]["explanation"] == answer
    assert "explanation" not in log.records[-2]["outputs"]  # the plain predict's

    default = client.post("/v1/endpoints/gbm/explain", json={"records": rows[:1]}).json()
    assert len(default["explanations"][0]["outputs"][0]["contributions"]) == min(10, len(rows[0]))


def test_explain_refuses_what_predict_refuses_and_says_why_it_cannot_explain(
    served: tuple[TestClient, MemoryLog, Any],
) -> None:
    client, _, history = served
    row = requests_of(history.head(1))[0]
    missing = dict(list(row.items())[1:])
    for route in ("predict", "explain"):
        assert_error_shape(
            client.post(f"/v1/endpoints/gbm/{route}", json={"records": [missing]}),
            422,
            "contract_violation",
        )
    assert_error_shape(
        client.post("/v1/endpoints/gbm/explain?top=some", json={"records": [row]}),
        400,
        "malformed_request",
    )
    # A model without TreeSHAP and no background sample: a 409 that says to retrain,
    # while it still predicts.
    record = {name: row[name] for name in OUTSIDE}
    predicted = client.post("/v1/endpoints/outside/predict", json={"records": [record]})
    assert predicted.status_code == 200, predicted.text
    error = assert_error_shape(
        client.post("/v1/endpoints/outside/explain", json={"records": [record]}),
        409,
        "not_explainable",
    )
    assert "retrain" in error["message"]


def test_a_scikit_learn_endpoint_explains_against_its_background_sample(
    served: tuple[TestClient, MemoryLog, Any],
) -> None:
    client, _, history = served
    rows = requests_of(history.iloc[10:12])
    answer = client.post("/v1/endpoints/linear/explain?top=all", json={"records": rows})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    for row, probabilities in zip(body["explanations"], body["probabilities"], strict=True):
        assert row["space"] == "decision function"  # a logistic regression's: log-odds
        _check_additive(row, probabilities[1])
