"""Alerts and webhook delivery, on SQLite and PostgreSQL, with real HTTP on loopback.

Time is injected (``now``); nothing sleeps. Receivers are ``http.server`` servers in a
thread that record what they get and can answer, fail, or hang until released.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from webhook_support import Receiver

from setpoint.errors import ConfigError, ConflictError, NotFoundError, UsageError
from setpoint.monitoring.alerts import AlertStore
from setpoint.monitoring.settings import WebhookConfig
from setpoint.monitoring.webhooks import Notifier
from setpoint.store.schema import alerts
from setpoint.workspace import Workspace

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
DRIFT = "drift:feature:income"


@pytest.fixture
def alert_store(workspace: Workspace) -> AlertStore:
    return AlertStore(workspace.db, actor="monitor")


@pytest.fixture
def notifier_for(alert_store: AlertStore) -> Iterator[Callable[..., Notifier]]:
    made: list[Notifier] = []

    def make(*webhooks: WebhookConfig, **options: Any) -> Notifier:
        made.append(Notifier(alert_store, list(webhooks), **options))
        return made[-1]

    yield make
    for notifier in made:
        notifier.flush(timeout=10)
        notifier.close()


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def raise_drift(notifier: Notifier | AlertStore, now: datetime, **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "severity": "warning",
        "message": "income drifted (KS 0.31, Wasserstein/std 0.42)",
        "evidence": {"ks": 0.31, "window": now.isoformat()},
        **kwargs,
    }
    return notifier.raise_alert("credit", DRIFT, now=now, cooldown=HOUR, **options)


# -- raising, dedupe, cooldown ----------------------------------------------------------


def test_an_alert_reaches_a_json_webhook(
    webhook_receiver: Receiver, notifier_for: Callable[..., Notifier]
) -> None:
    notifier = notifier_for(WebhookConfig(url=webhook_receiver.url))
    alert = raise_drift(notifier, T0)
    assert alert is not None
    assert notifier.flush(timeout=10)

    assert webhook_receiver.content_types == ["application/json"]
    assert webhook_receiver.bodies == [
        {
            "id": alert.id,
            "endpoint": "credit",
            "key": DRIFT,
            "severity": "warning",
            "message": "income drifted (KS 0.31, Wasserstein/std 0.42)",
            "evidence": {"ks": 0.31, "window": T0.isoformat()},
            "state": "open",
            "first_seen": T0.isoformat(),
            "last_seen": T0.isoformat(),
            "noticed_at": T0.isoformat(),
            "count": 1,
            "acked_by": None,
            "acked_at": None,
            "note": None,
            "resolved_at": None,
        }
    ]
    [delivery] = notifier.store.list_deliveries(alert.id)
    assert (delivery.status, delivery.attempts, delivery.delivered_at) == ("delivered", 1, T0)


def test_a_slack_webhook_gets_one_readable_line(
    webhook_receiver: Receiver, notifier_for: Callable[..., Notifier]
) -> None:
    notifier = notifier_for(WebhookConfig(url=webhook_receiver.url, format="slack"))
    alert = raise_drift(notifier, T0, severity="critical")
    assert notifier.flush(timeout=10)

    [body] = webhook_receiver.bodies
    assert list(body) == ["text"]
    assert body["text"] == (
        f"[CRITICAL] credit: {DRIFT}: income drifted (KS 0.31, Wasserstein/std 0.42) "
        f"(alert {alert.id}, open, seen once since 2026-03-01 12:00 UTC)"
    )


def test_raising_again_updates_the_alert_and_notifies_only_after_the_cooldown(
    webhook_receiver: Receiver, notifier_for: Callable[..., Notifier]
) -> None:
    notifier = notifier_for(WebhookConfig(url=webhook_receiver.url))
    first = raise_drift(notifier, T0)
    assert raise_drift(notifier, T0 + 10 * MINUTE, evidence={"ks": 0.4}) is None
    assert raise_drift(notifier, T0 + HOUR - timedelta(seconds=1)) is None
    again = raise_drift(notifier, T0 + HOUR + timedelta(minutes=5), evidence={"ks": 0.5})
    assert notifier.flush(timeout=10)

    assert again is not None
    assert again.id == first.id
    assert (again.count, again.first_seen, again.last_seen) == (4, T0, T0 + 65 * MINUTE)
    assert again.evidence == {"ks": 0.5}
    assert [b["count"] for b in webhook_receiver.bodies] == [1, 4]
    assert [a.id for a in notifier.store.list()] == [first.id]
    # the cooldown runs from the last notification, not from the first one
    assert raise_drift(notifier, T0 + 2 * HOUR) is None


def test_a_resolved_condition_that_comes_back_is_a_new_alert(alert_store: AlertStore) -> None:
    first = raise_drift(alert_store, T0)
    resolved = alert_store.resolve("credit", DRIFT, now=T0 + MINUTE)
    assert resolved is not None
    assert (resolved.state, resolved.resolved_at) == ("resolved", T0 + MINUTE)
    assert alert_store.resolve("credit", DRIFT) is None

    second = raise_drift(alert_store, T0 + 2 * MINUTE)
    assert second is not None
    assert second.id != first.id
    assert (second.count, second.state) == (1, "open")
    assert [(a.id, a.state) for a in alert_store.list()] == [
        (second.id, "open"),
        (first.id, "resolved"),
    ]


def test_the_data_s_time_and_the_clock_s_are_kept_apart(alert_store: AlertStore) -> None:
    # A backfill or late labels: the data is from March, the clock says June.
    june = T0 + 90 * 24 * HOUR
    first = raise_drift(alert_store, june, seen=T0 + 2 * HOUR)
    assert (first.first_seen, first.last_seen, first.noticed_at) == (T0 + 2 * HOUR,) * 2 + (june,)
    # Labels that came late show the condition held a window earlier.
    assert raise_drift(alert_store, june + MINUTE, seen=T0 + HOUR) is None  # cooldown: clock
    again = alert_store.get(first.id)
    assert (again.first_seen, again.last_seen, again.noticed_at) == (T0 + HOUR, T0 + 2 * HOUR, june)
    assert again.count == 2


def test_evidence_is_stored_as_plain_json_on_every_backend(alert_store: AlertStore) -> None:
    evidence = {"ks": np.float64(0.25), "psi": float("nan"), "n": np.int64(3), "q": (1.0, -np.inf)}
    alert = alert_store.raise_alert("credit", DRIFT, "warning", "drifted", evidence, now=T0)
    assert alert is not None
    assert alert.evidence == {"ks": 0.25, "psi": None, "n": 3, "q": [1.0, None]}
    assert alert_store.get(alert.id).evidence == alert.evidence


def test_alerts_are_listed_by_endpoint_and_state(alert_store: AlertStore) -> None:
    raise_drift(alert_store, T0)
    alert_store.raise_alert("credit", "freshness", "critical", "no traffic for 2h", now=T0)
    alert_store.raise_alert("fraud", DRIFT, "warning", "drifted", now=T0 + MINUTE)
    alert_store.resolve("credit", "freshness", now=T0 + MINUTE)

    assert [a.endpoint for a in alert_store.list()] == ["fraud", "credit", "credit"]
    assert [a.key for a in alert_store.list(endpoint="credit", state="open")] == [DRIFT]
    assert [a.key for a in alert_store.list(state="resolved")] == ["freshness"]
    assert len(alert_store.list(limit=1)) == 1
    with pytest.raises(UsageError, match="alert state 'closed'"):
        alert_store.list(state="closed")
    with pytest.raises(UsageError, match="severity 'info'"):
        alert_store.raise_alert("credit", DRIFT, "info", "x", now=T0)


def test_an_acknowledged_alert_is_silenced_until_its_severity_rises(
    alert_store: AlertStore, workspace: Workspace
) -> None:
    alert = raise_drift(alert_store, T0)
    acked = alert_store.acknowledge(alert.id, "ana", "retraining on March data", now=T0 + MINUTE)
    assert (acked.state, acked.acked_by, acked.acked_at, acked.note) == (
        "acknowledged",
        "ana",
        T0 + MINUTE,
        "retraining on March data",
    )

    assert raise_drift(alert_store, T0 + 3 * HOUR) is None  # cooldown passed, but acked
    escalated = raise_drift(alert_store, T0 + 3 * HOUR + MINUTE, severity="critical")
    assert escalated is not None
    assert (escalated.id, escalated.state, escalated.severity) == (alert.id, "open", "critical")
    assert escalated.acked_by is None

    actions = [e.action for e in workspace.audit(entity_type="alert")]
    assert actions == ["alert.escalate", "alert.acknowledge", "alert.open"]
    assert workspace.audit(action="alert.acknowledge")[0].actor == "ana"


def test_acknowledging_an_unknown_or_resolved_alert_says_why(alert_store: AlertStore) -> None:
    with pytest.raises(NotFoundError, match="there is no alert 999"):
        alert_store.acknowledge(999, "ana")
    alert = raise_drift(alert_store, T0)
    alert_store.resolve("credit", DRIFT, now=T0)
    with pytest.raises(ConflictError, match="already resolved"):
        alert_store.acknowledge(alert.id, "ana")


def test_the_database_keeps_one_unresolved_alert_per_key(
    alert_store: AlertStore, workspace: Workspace
) -> None:
    raise_drift(alert_store, T0)
    row = {
        "endpoint": "credit",
        "key": DRIFT,
        "severity": "warning",
        "message": "",
        "evidence": {},
        "first_seen": T0,
        "last_seen": T0,
        "count": 1,
    }
    with pytest.raises(sa.exc.IntegrityError), workspace.db.engine.begin() as conn:
        conn.execute(alerts.insert().values(**row, state="acknowledged"))
    with workspace.db.engine.begin() as conn:  # resolved ones may pile up
        conn.execute(alerts.insert().values(**row, state="resolved"))


def test_concurrent_raises_of_one_condition_make_one_alert(alert_store: AlertStore) -> None:
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: raise_drift(alert_store, T0), range(8)))
    assert sum(result is not None for result in results) == 1
    [alert] = alert_store.list()
    assert alert.count == 8


# -- delivery ----------------------------------------------------------------------------


def test_a_receiver_that_is_down_is_retried_with_backoff_and_gets_it_once(
    start_webhook_receiver: Callable[..., Receiver], notifier_for: Callable[..., Notifier]
) -> None:
    port = unused_port()
    notifier = notifier_for(WebhookConfig(url=f"http://127.0.0.1:{port}/hook", timeout=5))
    alert = raise_drift(notifier, T0)
    assert alert is not None
    assert notifier.flush(timeout=10)

    [delivery] = notifier.store.list_deliveries(alert.id)
    assert (delivery.status, delivery.attempts) == ("retrying", 1)
    assert "Connection refused" in (delivery.last_error or "")
    assert delivery.next_attempt_at == T0 + timedelta(seconds=30)
    assert notifier.deliver_due(now=T0 + timedelta(seconds=29)) == 0

    receiver = start_webhook_receiver(port)
    assert notifier.deliver_due(now=T0 + timedelta(seconds=31)) == 1
    assert notifier.flush(timeout=10)
    assert notifier.deliver_due(now=T0 + 5 * HOUR) == 0
    assert notifier.flush(timeout=10)

    assert [body["id"] for body in receiver.bodies] == [alert.id]
    [delivery] = notifier.store.list_deliveries(alert.id)
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    assert delivery.delivered_at == T0 + timedelta(seconds=31)


def test_a_failing_receiver_is_given_up_on_after_max_attempts(
    start_webhook_receiver: Callable[..., Receiver], notifier_for: Callable[..., Notifier]
) -> None:
    receiver = start_webhook_receiver(mode="fail")
    notifier = notifier_for(WebhookConfig(url=receiver.url), max_attempts=3)
    alert = raise_drift(notifier, T0)
    assert notifier.flush(timeout=10)
    retry_times = []
    for _ in range(2):
        [delivery] = notifier.store.list_deliveries(alert.id)
        assert delivery.last_error == "HTTP 500 Internal Server Error: boom"
        assert delivery.next_attempt_at is not None
        retry_times.append(delivery.next_attempt_at)
        assert notifier.deliver_due(now=delivery.next_attempt_at) == 1
        assert notifier.flush(timeout=10)

    assert retry_times == [T0 + timedelta(seconds=30), T0 + timedelta(seconds=90)]
    [delivery] = notifier.store.list_deliveries(alert.id, undelivered=True)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 3, None)
    assert notifier.deliver_due(now=T0 + 10 * HOUR) == 0


def test_a_hanging_receiver_does_not_block_raising(
    start_webhook_receiver: Callable[..., Receiver], notifier_for: Callable[..., Notifier]
) -> None:
    receiver = start_webhook_receiver(mode="hang")
    notifier = notifier_for(WebhookConfig(url=receiver.url, timeout=30))
    alert = raise_drift(notifier, T0)
    # raise_alert has returned while the receiver still holds the request unanswered
    assert receiver.arrived.wait(timeout=10)
    assert notifier.flush(timeout=0.05) is False
    assert notifier.store.list_deliveries(alert.id)[0].status == "pending"

    receiver.mode = "ok"
    receiver.release.set()
    assert notifier.flush(timeout=10)
    assert notifier.store.list_deliveries(alert.id)[0].status == "delivered"


def test_a_receiver_that_never_answers_times_out_as_a_failure(
    start_webhook_receiver: Callable[..., Receiver], notifier_for: Callable[..., Notifier]
) -> None:
    receiver = start_webhook_receiver(mode="hang")
    notifier = notifier_for(WebhookConfig(url=receiver.url, timeout=0.5))
    alert = raise_drift(notifier, T0)
    assert notifier.flush(timeout=30)

    [delivery] = notifier.store.list_deliveries(alert.id)
    assert (delivery.status, delivery.attempts) == ("retrying", 1)
    assert "timed out" in (delivery.last_error or "")


def test_a_closed_notifier_leaves_deliveries_in_the_outbox(
    alert_store: AlertStore, webhook_receiver: Receiver
) -> None:
    hook = WebhookConfig(url=webhook_receiver.url)
    raise_drift(alert_store, T0, notify=[hook.url])  # queued by a run that exited
    notifier = Notifier(alert_store, [hook])
    notifier.close()
    with pytest.raises(UsageError, match="closed"):
        notifier.deliver_due(now=T0)

    later = Notifier(alert_store, [hook])
    assert later.deliver_due(now=T0) == 1
    assert later.flush(timeout=10)
    later.close()
    assert len(webhook_receiver.bodies) == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "file:///etc/passwd"}, "http:// or https://"),
        ({"url": "http://x", "format": "xml"}, "format: must be 'json' or 'slack', got 'xml'"),
        ({"url": "http://x", "timeout": 0}, "timeout: must be greater than 0, got 0"),
    ],
)
def test_webhook_configs_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WebhookConfig(**options)
