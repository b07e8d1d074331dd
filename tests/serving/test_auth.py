"""API keys: 401 without a valid one, 403 outside its scope, 429 over its rate."""

from __future__ import annotations

import json
import time
from typing import Any

import pandas as pd
from serving_support import requests_of
from starlette.testclient import TestClient
from typer.testing import CliRunner

from setpoint.cli.main import app as cli_app
from setpoint.workspace import Workspace

PREDICT = "/v1/endpoints/credit/predict"


def wait_for(condition: Any) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the server did not pick up the key change"


def test_keys_guard_every_route_but_the_probes(
    client: TestClient, served: Workspace, history: pd.DataFrame
) -> None:
    body = {"records": requests_of(history.head(1))}
    assert client.post(PREDICT, json=body).status_code == 200  # no keys yet: open
    _, predict_key = served.keys.create("predict", endpoint="credit")
    _, feedback_key = served.keys.create("feedback")
    wait_for(lambda: client.post(PREDICT, json=body).status_code == 401)

    missing = client.post(PREDICT, json=body)
    assert missing.json()["error"]["code"] == "unauthorized"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert (
        client.post(
            PREDICT, json=body, headers={"Authorization": "Bearer sp_nope_nope"}
        ).status_code
        == 401
    )
    assert (
        client.post(
            PREDICT, json=body, headers={"Authorization": f"Bearer {predict_key}"}
        ).status_code
        == 200
    )
    assert client.post(PREDICT, json=body, headers={"X-API-Key": predict_key}).status_code == 200
    wrong_scope = client.post(
        PREDICT, json=body, headers={"Authorization": f"Bearer {feedback_key}"}
    )
    assert wrong_scope.status_code == 403
    assert wrong_scope.json()["error"]["code"] == "forbidden"
    label = {"request_id": "r1", "label": 1}
    assert (
        client.post(
            "/v1/endpoints/credit/feedback", json=label, headers={"X-API-Key": feedback_key}
        ).status_code
        == 200
    )
    for probe in ("/healthz", "/readyz", "/metrics"):
        assert client.get(probe).status_code == 200

    served.keys.revoke(predict_key.split("_")[1])
    wait_for(
        lambda: (
            client.post(PREDICT, json=body, headers={"X-API-Key": predict_key}).status_code == 401
        )
    )


def test_a_rate_limited_key_gets_429_with_retry_after(
    client: TestClient, served: Workspace, history: pd.DataFrame
) -> None:
    body = {"records": requests_of(history.head(1))}
    _, key = served.keys.create("predict", rate_per_second=2)
    headers = {"X-API-Key": key}
    wait_for(lambda: client.post(PREDICT, json=body).status_code == 401)
    statuses = [client.post(PREDICT, json=body, headers=headers) for _ in range(6)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    assert int(limited[0].headers["retry-after"]) >= 1
    assert limited[0].json()["error"]["code"] == "rate_limited"


def test_keys_from_the_cli_are_shown_once_and_stored_hashed(served: Workspace) -> None:
    runner = CliRunner()
    created = runner.invoke(
        cli_app, ["-w", str(served.root), "keys", "create", "--scope", "predict", "--json"]
    )
    assert created.exit_code == 0, created.output
    token = json.loads(created.stdout)["key"]
    listed = runner.invoke(cli_app, ["-w", str(served.root), "keys", "list", "--json"])
    assert token not in listed.stdout
    assert token.split("_")[2] not in listed.stdout
    bad = runner.invoke(cli_app, ["-w", str(served.root), "keys", "create", "--scope", "root"])
    assert bad.exit_code == 2
    assert "scope" in bad.stderr
    assert [e.action for e in served.audit(entity_type="api_key")] == ["key.create"]
