"""Who may see the dashboard and who may act on it: keys, sessions, scopes, CSRF.

In-process (Starlette's TestClient), on SQLite and PostgreSQL. The decision a person
takes in the dashboard is the loop's own (the alias moves, the audit names them and
their reason); a key without the approve scope sees no button, and a POST it forges
anyway is refused, as is any POST without the form's token.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from starlette.testclient import TestClient
from ui_support import csrf_of, waiting_rollout

from setpoint.loop.rollouts import RolloutStore
from setpoint.ui.app import create_ui_app
from setpoint.ui.session import COOKIE
from setpoint.workspace import Workspace


def sign_in(client: TestClient, key: str, next_page: str = "/ui/") -> None:
    page = client.get("/ui/login", params={"next": next_page})
    answer = client.post(
        "/ui/login",
        data={"key": key, "csrf": csrf_of(page.text), "next": next_page},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == next_page


def test_without_keys_anyone_on_loopback_sees_and_acts(
    client: TestClient, risk_ws: Workspace
) -> None:
    page = client.get("/ui/")
    assert page.status_code == 200
    assert "credit" in page.text
    assert "risk@1" in page.text
    cookie = page.headers["set-cookie"]
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/ui"):
        assert attribute in cookie
    assert "Secure" not in cookie  # plain HTTP here; over HTTPS the cookie is Secure

    rollout = waiting_rollout(risk_ws)
    page = client.get(f"/ui/rollouts/{rollout.id}")
    assert "Approve" in page.text
    assert "waiting for your approval" in client.get("/ui/").text
    answer = client.post(
        f"/ui/rollouts/{rollout.id}/approve",
        data={"csrf": csrf_of(page.text), "reason": "checked the segments"},
        follow_redirects=True,
    )
    assert answer.status_code == 200
    assert "Approved: risk@2 is the champion." in answer.text
    assert risk_ws.model("risk@champion").version == 2
    (event,) = risk_ws.audit(action="rollout.promoted")
    assert event.actor == "ui:tester"
    assert "checked the segments" in event.after["reason"]


def test_a_key_signs_in_once_and_its_scope_decides_the_buttons(risk_ws: Workspace) -> None:
    _, reader = risk_ws.keys.create("read", note="product")
    approver_key, approver = risk_ws.keys.create("approve", note="risk officer")
    first = waiting_rollout(risk_ws, "test:1")
    with TestClient(create_ui_app(risk_ws)) as client:
        # Not signed in: every page leads to the sign-in form, which comes back after.
        answer = client.get(f"/ui/rollouts/{first.id}", follow_redirects=False)
        assert answer.status_code == 303
        target = urlparse(answer.headers["location"])
        assert target.path == "/ui/login"
        assert parse_qs(target.query)["next"] == [f"/ui/rollouts/{first.id}"]

        sign_in(client, reader, f"/ui/rollouts/{first.id}")
        page = client.get(f"/ui/rollouts/{first.id}")
        assert page.status_code == 200
        assert "Approve" not in page.text
        assert "Reject" not in page.text
        token = csrf_of(page.text)  # the sign-out form's: a session's token is one
        forged = client.post(
            f"/ui/rollouts/{first.id}/approve", data={"csrf": token, "reason": "me too"}
        )
        assert forged.status_code == 403
        assert "scope approve" in forged.text
        assert RolloutStore(risk_ws.db, actor="t").get(first.id).state == "awaiting_approval"

    with TestClient(create_ui_app(risk_ws)) as client:
        sign_in(client, approver)
        page = client.get(f"/ui/rollouts/{first.id}")
        assert "Approve" in page.text
        assert "Reject" in page.text
        no_token = client.post(f"/ui/rollouts/{first.id}/approve", data={"reason": "fine"})
        assert no_token.status_code == 403
        assert "security token" in no_token.text
        no_reason = client.post(
            f"/ui/rollouts/{first.id}/approve", data={"csrf": csrf_of(page.text), "reason": " "}
        )
        assert no_reason.status_code == 400
        assert "reason is required" in no_reason.text
        assert risk_ws.model("risk@champion").version == 1

        done = client.post(
            f"/ui/rollouts/{first.id}/approve",
            data={"csrf": csrf_of(page.text), "reason": "segments hold up"},
        )
        assert done.status_code == 200
        assert risk_ws.model("risk@champion").version == 2
        (event,) = risk_ws.audit(action="rollout.promoted")
        assert event.actor == f"key:{approver_key.key_id} (risk officer)"
        assert "segments hold up" in event.after["reason"]
        assert RolloutStore(risk_ws.db, actor="t").get(first.id).decided_by == event.actor

        # Another candidate waits; this one is turned down, and the champion stays.
        second = waiting_rollout(risk_ws, "test:2", candidate="risk@1")
        page = client.get(f"/ui/rollouts/{second.id}")
        rejected = client.post(
            f"/ui/rollouts/{second.id}/reject",
            data={"csrf": csrf_of(page.text), "reason": "no better than today's"},
        )
        assert rejected.status_code == 200
        assert f"Rejected rollout {second.id}." in rejected.text
        assert RolloutStore(risk_ws.db, actor="t").get(second.id).state == "rejected"
        assert risk_ws.model("risk@champion").version == 2
        (event,) = risk_ws.audit(action="rollout.rejected")
        assert (event.actor, event.after["reason"]) == (
            f"key:{approver_key.key_id} (risk officer)",
            "no better than today's",
        )
        # Approving what is no longer waiting says so.
        again = client.post(
            f"/ui/rollouts/{first.id}/approve",
            data={"csrf": csrf_of(page.text), "reason": "twice"},
        )
        assert again.status_code == 409
        assert "only a rollout awaiting approval is approved" in again.text


def test_a_revoked_key_ends_its_sessions(risk_ws: Workspace) -> None:
    key, text = risk_ws.keys.create("read")
    app = create_ui_app(risk_ws)
    with TestClient(app) as client:
        sign_in(client, text)
        assert client.get("/ui/", follow_redirects=False).status_code == 200
        risk_ws.keys.revoke(key.key_id)
        app.state.read_keys()
        answer = client.get("/ui/", follow_redirects=False)
        assert answer.status_code == 303
        assert "no+longer+active" in answer.headers["location"]


@pytest.mark.parametrize(
    ("scope", "endpoint", "said"),
    [
        ("predict", None, "this needs 'read' or 'approve' or 'admin'"),
        ("read", "credit", "limited to endpoint 'credit'"),
    ],
)
def test_sign_in_refuses_keys_the_dashboard_cannot_use(
    risk_ws: Workspace, scope: str, endpoint: str | None, said: str
) -> None:
    _, text = risk_ws.keys.create(scope, endpoint=endpoint)
    with TestClient(create_ui_app(risk_ws)) as client:
        page = client.get("/ui/login")
        answer = client.post("/ui/login", data={"key": text, "csrf": csrf_of(page.text)})
        assert answer.status_code == 403
        assert said in answer.text.replace("&#39;", "'")
        assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_forged_cookies_and_foreign_next_pages_lead_nowhere(risk_ws: Workspace) -> None:
    _, text = risk_ws.keys.create("admin")
    with TestClient(create_ui_app(risk_ws)) as client:
        client.cookies.set(COOKIE, "abc123.sid.9999999999.0000", path="/ui")
        assert client.get("/ui/", follow_redirects=False).status_code == 303
        client.cookies.clear()
        sign_in(client, text)  # lands on the front page
        page = client.get("/ui/login")
        answer = client.post(
            "/ui/login",
            data={"key": text, "csrf": csrf_of(page.text), "next": "//elsewhere.example/x"},
            follow_redirects=False,
        )
        assert answer.headers["location"] == "/ui/"
        login = client.post("/ui/login", data={"key": "sp_nope_nope", "csrf": "x"})
        assert login.status_code == 403  # the sign-in form has its token too


def test_notices_only_show_what_the_server_signed(client: TestClient) -> None:
    page = client.get("/ui/", params={"notice": "Send your key to evil", "sig": "00"})
    assert "Send your key to evil" not in page.text


def test_alerts_are_acknowledged_from_the_alerts_page(
    client: TestClient, risk_ws: Workspace
) -> None:
    alerts = risk_ws.monitors.alerts
    for i in range(3):  # resolved ones do not hide those still open
        alerts.raise_alert("credit", f"drift:feature:old{i}", "warning", "it moved")
        alerts.resolve("credit", f"drift:feature:old{i}")
    alerts.raise_alert("credit", "drift:feature:income", "warning", "income moved")
    page = client.get("/ui/alerts")
    assert "Acknowledge" in page.text
    assert "1 alert not resolved" in client.get("/ui/").text.replace("\n", " ")
    (alert,) = alerts.list(state="open")
    done = client.post(
        f"/ui/alerts/{alert.id}/acknowledge",
        data={"csrf": csrf_of(page.text), "note": "looking into it"},
    )
    assert done.status_code == 200
    assert f"Alert {alert.id} acknowledged" in done.text
    acked = alerts.get(alert.id)
    assert (acked.state, acked.acked_by, acked.note) == (
        "acknowledged",
        "ui:tester",
        "looking into it",
    )
    assert "acknowledged by ui:tester: looking into it" in done.text
