"""The server's clock: every timestamp the app logs comes from ``create_app(clock=...)``.

The demo runs the real server with a simulated clock, so these tests check that no
record (answered, cached, fallback, shadow, feedback) is stamped with the system's time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from serving_support import SPEC, MemoryLog, requests_of
from starlette.testclient import TestClient

from setpoint.serving.app import create_app
from setpoint.serving.config import Fallback
from setpoint.serving.lane import utc_clock, utc_now
from setpoint.serving.log import RecordLog, read_log
from setpoint.workspace import Workspace

PREDICT = "/v1/endpoints/credit/predict"
FEEDBACK = "/v1/endpoints/credit/feedback"
WHEN = datetime(2031, 5, 17, 9, 30, 0, 123456, tzinfo=UTC)  # nowhere near the real time


class Clock:
    """A fixed time that counts how often it is read."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.reads = 0

    def __call__(self) -> datetime:
        self.reads += 1
        return self.now


@pytest.fixture
def rows(history: pd.DataFrame) -> list[dict[str, Any]]:
    return requests_of(history.head(50))


def test_predictions_and_feedback_are_stamped_by_the_apps_clock(
    served: Workspace, memory_log: MemoryLog, rows: list[dict[str, Any]]
) -> None:
    served.deploy("credit", cache_enabled=True)
    feedback_log = MemoryLog()
    clock = Clock(WHEN)
    app = create_app(served, memory_log, feedback_log=feedback_log, clock=clock)
    with TestClient(app) as client:
        one = client.post(PREDICT, json={"records": [rows[0]]}).json()
        cached = client.post(PREDICT, json={"records": [rows[0]]}).json()
        assert cached["flags"]["cached"] is True
        reads = clock.reads
        many = client.post(PREDICT, json={"records": rows[1:40]}).json()
        assert clock.reads == reads + 1  # once per batch, not per row
        columns = {k: [r[k] for r in rows[40:45]] for k in rows[40]}
        client.post(PREDICT, json={"columns": columns}).raise_for_status()
        labels = client.post(FEEDBACK, json={"request_id": one["request_id"], "label": 1})
        assert labels.status_code == 200, labels.text
        client.post(
            FEEDBACK,
            json={
                "feedback": [
                    {"request_id": many["request_id"], "row": r, "label": 0} for r in (0, 1)
                ]
            },
        ).raise_for_status()
    assert len(memory_log.records) == 1 + 1 + 39 + 5
    assert {r["ts"] for r in memory_log.records} == {WHEN}
    assert any(r["cached"] for r in memory_log.records)
    assert len(feedback_log.records) == 3
    assert {r["ts"] for r in feedback_log.records} == {WHEN}


def test_fallback_and_shadow_records_are_stamped_by_the_apps_clock(
    served: Workspace, memory_log: MemoryLog, rows: list[dict[str, Any]]
) -> None:
    spec = {**SPEC, "estimator": {**SPEC["estimator"], "params": {"max_iter": 500, "C": 0.01}}}
    served.train(spec)  # version 2
    served.deploy("credit", challenger="credit-risk@2", mode="shadow")
    with TestClient(create_app(served, memory_log, clock=Clock(WHEN))) as client:
        for row in rows[:5]:
            client.post(PREDICT, json={"records": [row]}).raise_for_status()
    assert {r["route"] for r in memory_log.records} == {"champion", "shadow"}
    assert {r["ts"] for r in memory_log.records} == {WHEN}

    memory_log.records.clear()
    served.deploy("credit", no_challenger=True, fallback=Fallback(value=0))
    with TestClient(create_app(served, memory_log, clock=Clock(WHEN))) as client:
        runtime = client.app.state.serving.runtimes["credit"]  # type: ignore[attr-defined]
        for _ in range(runtime.champion.breaker.threshold):
            runtime.champion.breaker.failure()  # the circuit is open: the constant answers
        body = client.post(PREDICT, json={"records": [rows[0]]}).json()
        assert body["flags"]["fallback"] is True
    assert [(r["route"], r["ts"]) for r in memory_log.records] == [("fallback", WHEN)]


def test_a_clock_in_another_zone_or_naive_is_logged_in_utc(
    served: Workspace, tmp_path: Path, rows: list[dict[str, Any]]
) -> None:
    local = WHEN.astimezone(timezone(timedelta(hours=2)))
    log = RecordLog(tmp_path / "predictions")
    feedback_log = RecordLog(tmp_path / "feedback", kind="feedback")
    app = create_app(served, log, feedback_log=feedback_log, clock=lambda: local)
    with TestClient(app) as client:
        answer = client.post(PREDICT, json={"records": rows[:3]}).json()
        client.post(
            FEEDBACK, json={"request_id": answer["request_id"], "label": 1}
        ).raise_for_status()
    assert read_log(tmp_path / "predictions").column("ts").to_pylist() == [WHEN] * 3
    assert read_log(tmp_path / "feedback", kind="feedback").column("ts").to_pylist() == [WHEN]

    naive = utc_clock(lambda: WHEN.replace(tzinfo=None))
    assert naive() == WHEN
    assert naive().tzinfo is UTC
    assert utc_clock(None) is utc_now
    assert utc_clock(naive) is naive  # wrapped once, however often it is handed on
