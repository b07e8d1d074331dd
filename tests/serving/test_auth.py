"""API keys: 401 without a valid one, 403 outside its scope, 429 over its rate."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from serving_support import MemoryLog, free_port, requests_of
from starlette.testclient import TestClient
from typer.testing import CliRunner

from setpoint.cli.main import app as cli_app
from setpoint.serving.app import create_app
from setpoint.serving.server import app_from_environment
from setpoint.store.schema import api_keys
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
    # The refresh may have come between the two keys: wait until it knows the second.
    wait_for(
        lambda: (
            client.post(
                PREDICT, json=body, headers={"Authorization": f"Bearer {feedback_key}"}
            ).status_code
            != 401
        )
    )

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


def headers_of(token: str, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {token}"}


def test_revoking_the_last_key_keeps_the_server_closed(
    client: TestClient, served: Workspace, history: pd.DataFrame
) -> None:
    body = {"records": requests_of(history.head(1))}
    key, token = served.keys.create("predict")
    wait_for(lambda: client.post(PREDICT, json=body).status_code == 401)
    served.keys.revoke(key.key_id)
    # The revoked key is refused once the server re-read the keys...
    wait_for(lambda: client.post(PREDICT, json=body, headers=headers_of(token)).status_code == 401)
    # ...and no key at all is not a way in either: the server stays closed.
    for path, sent in ((PREDICT, body), ("/invocations", {"dataframe_records": body["records"]})):
        refused = client.post(path, json=sent)
        assert refused.status_code == 401, refused.text
        assert "setpoint keys create" in refused.json()["error"]["message"]


def test_a_workspace_that_ever_had_a_key_needs_one(
    served: Workspace, history: pd.DataFrame
) -> None:
    key, _ = served.keys.create("predict")
    served.keys.revoke(key.key_id)
    body = {"records": requests_of(history.head(1))}
    with TestClient(create_app(served, MemoryLog())) as fresh:
        refused = fresh.post(PREDICT, json=body)
    assert refused.status_code == 401, refused.text
    assert "no active API key" in refused.json()["error"]["message"]


def test_require_keys_closes_a_workspace_without_keys(
    served: Workspace, history: pd.DataFrame
) -> None:
    body = {"records": requests_of(history.head(1))}
    with (
        Workspace.open(served.root, require_keys=True) as required,
        TestClient(create_app(required, MemoryLog(), refresh_seconds=0.05)) as closed,
    ):
        refused = closed.post(PREDICT, json=body)
        assert refused.status_code == 401, refused.text
        assert "setpoint keys create" in refused.json()["error"]["message"]
        _, token = served.keys.create("predict")
        wait_for(
            lambda: closed.post(PREDICT, json=body, headers=headers_of(token)).status_code == 200
        )


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer", "beArer"])
def test_the_authorization_scheme_is_case_insensitive(
    client: TestClient, served: Workspace, history: pd.DataFrame, scheme: str
) -> None:
    body = {"records": requests_of(history.head(1))}
    _, token = served.keys.create("predict")
    wait_for(lambda: client.post(PREDICT, json=body).status_code == 401)
    answered = client.post(PREDICT, json=body, headers=headers_of(token, scheme))
    assert answered.status_code == 200, answered.text


def test_another_authorization_scheme_is_a_clear_401(
    client: TestClient, served: Workspace, history: pd.DataFrame
) -> None:
    body = {"records": requests_of(history.head(1))}
    _, token = served.keys.create("predict")
    wait_for(lambda: client.post(PREDICT, json=body).status_code == 401)
    refused = client.post(PREDICT, json=body, headers=headers_of(token, "Basic"))
    assert refused.status_code == 401
    assert "Bearer" in refused.json()["error"]["message"]
    assert "'Basic'" in refused.json()["error"]["message"]


def test_invocations_checks_the_endpoint_it_would_serve(
    client: TestClient, served: Workspace, history: pd.DataFrame
) -> None:
    records = requests_of(history.head(1))
    _, elsewhere = served.keys.create("predict", endpoint="other")
    _, here = served.keys.create("predict", endpoint="credit")
    wait_for(lambda: client.post(PREDICT, json={"records": records}).status_code == 401)
    body = {"dataframe_records": records}
    for path in ("/invocations", "/endpoints/credit/invocations"):
        refused = client.post(path, json=body, headers=headers_of(elsewhere))
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["error"]["code"] == "forbidden"
        assert client.post(path, json=body, headers=headers_of(here)).status_code == 200


def test_oip_routes_check_the_key_endpoint(
    client: TestClient, served: Workspace, history: pd.DataFrame
) -> None:
    _, elsewhere = served.keys.create("predict", endpoint="other")
    wait_for(lambda: client.get("/v2/models/credit").status_code == 401)
    for path in ("/v2/models/credit", "/v2/models/credit/ready", "/v2/models/credit/versions/1"):
        assert client.get(path, headers=headers_of(elsewhere)).status_code == 403, path
    infer = client.post(
        "/v2/models/credit/infer", json={"inputs": []}, headers=headers_of(elsewhere)
    )
    assert infer.status_code == 403


def test_a_key_limited_to_one_endpoint_lists_only_that_one(
    client: TestClient, served: Workspace
) -> None:
    served.deploy("second", model="credit-risk")
    _, second = served.keys.create("predict", endpoint="second")
    _, every = served.keys.create("predict")
    wait_for(lambda: client.get("/v1/endpoints").status_code == 401)
    wait_for(lambda: len(client.get("/v1/endpoints", headers=headers_of(every)).json()) == 2)
    listed = client.get("/v1/endpoints", headers=headers_of(second))
    assert [e["endpoint"] for e in listed.json()] == ["second"]
    assert client.get("/v1/endpoints/credit", headers=headers_of(second)).status_code == 403
    ambiguous = client.post("/invocations", json={}, headers=headers_of(second))
    assert ambiguous.status_code == 403
    assert "/endpoints/second/invocations" in ambiguous.json()["error"]["message"]
    assert "credit" not in ambiguous.text


def test_read_keys_from_the_cli(served: Workspace) -> None:
    runner = CliRunner()
    created = runner.invoke(
        cli_app, ["-w", str(served.root), "keys", "create", "--scope", "read", "--json"]
    )
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["scope"] == "read"
    assert "read" in runner.invoke(cli_app, ["keys", "create", "--help"]).output


class InProcessServer:
    """Stands in for uvicorn.run under ``setpoint serve``: builds the app the way each
    worker does (from the environment ``serve`` sets) and calls it in-process."""

    def __init__(self, calls: Callable[[TestClient], None]) -> None:
        self.calls = calls
        self.ran = False

    def __call__(self, target: str, **_options: Any) -> None:
        assert target == "setpoint.serving.server:app_from_environment"
        app = app_from_environment()
        try:
            with TestClient(app) as running:
                self.calls(running)
        finally:
            app.state.serving.workspace.close()
        self.ran = True


@pytest.fixture
def serve_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("SETPOINT_WORKSPACE", "SETPOINT_SERVE_OVERRIDES", "SETPOINT_SERVE_BACKGROUND"):
        monkeypatch.setenv(name, "")  # restored after the test; serve sets them
    return monkeypatch


def test_serve_require_keys_on_a_keyless_workspace(
    served: Workspace, history: pd.DataFrame, serve_env: pytest.MonkeyPatch
) -> None:
    body = {"records": requests_of(history.head(1))}
    statuses: list[int] = []
    server = InProcessServer(lambda c: statuses.append(c.post(PREDICT, json=body).status_code))
    serve_env.setattr("setpoint.serving.server.uvicorn.run", server)
    result = CliRunner().invoke(
        cli_app,
        ["-w", str(served.root), "serve", "--require-keys", "--background", "off"],
    )
    assert result.exit_code == 0, result.output
    assert server.ran
    assert statuses == [401]
    said = " ".join(result.stderr.split())
    assert "API keys are required and none is active" in said
    assert "setpoint keys create" in said


def test_serve_beyond_loopback_refuses_requests_once_no_key_is_active(
    served: Workspace, history: pd.DataFrame, serve_env: pytest.MonkeyPatch
) -> None:
    body = {"records": requests_of(history.head(1))}
    key, token = served.keys.create("predict")
    statuses: list[int] = []

    def calls(running: TestClient) -> None:
        statuses.append(running.post(PREDICT, json=body, headers=headers_of(token)).status_code)
        served.keys.revoke(key.key_id)
        # What the running server does on its next refresh, done now.
        running.app.state.serving.refresh()  # type: ignore[attr-defined]
        statuses.append(running.post(PREDICT, json=body).status_code)
        # Even with no key left in the workspace's history (the table emptied by
        # hand), the address alone keeps requests refused.
        with served.db.write() as conn:
            conn.execute(api_keys.delete())
        running.app.state.serving.refresh()  # type: ignore[attr-defined]
        statuses.append(running.post(PREDICT, json=body).status_code)

    serve_env.setattr("setpoint.serving.server.uvicorn.run", InProcessServer(calls))
    result = CliRunner().invoke(
        cli_app, ["-w", str(served.root), "serve", "--host", "0.0.0.0", "--background", "off"]
    )
    assert result.exit_code == 0, result.output
    assert statuses == [200, 401, 401]


@pytest.mark.parametrize("where", ["before", "after"])
def test_serve_says_what_it_serves_as_json(
    served: Workspace, serve_env: pytest.MonkeyPatch, where: str
) -> None:
    server = InProcessServer(lambda _client: None)
    serve_env.setattr("setpoint.serving.server.uvicorn.run", server)
    port = free_port()  # serve checks it can bind the port first
    args = ["serve", "--port", str(port), "--background", "off"]
    args = ["--json", *args] if where == "before" else [*args, "--json"]
    result = CliRunner().invoke(cli_app, ["-w", str(served.root), *args])
    assert result.exit_code == 0, result.output
    assert server.ran
    assert json.loads(result.stdout) == {
        "endpoints": ["credit"],
        "url": f"http://127.0.0.1:{port}",
        "workers": 1,
        "keys_required": False,
        "active_keys": 0,
    }
    assert "Serving" not in result.stderr
