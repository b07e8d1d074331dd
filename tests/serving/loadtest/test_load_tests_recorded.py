"""Load tests recorded and listed (serving/loadtest/runs.py), on every database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from setpoint.errors import NotFoundError
from setpoint.serving.loadtest.schedule import StepResult
from setpoint.workspace import Workspace


def _step(rate: float, met: bool) -> StepResult:
    return StepResult(
        rate=rate, seconds=5, sent=int(rate * 5), answered=int(rate * 5), ok=int(rate * 5),
        errors=0, statuses={}, achieved=rate, p50_ms=2.0, p90_ms=3.0, p99_ms=9.5 if met else 80,
        p999_ms=12.0, max_ms=15.0, lag_p99_ms=0.4, met=met, stopped_early=not met,
    )  # fmt: skip


def _record(ws: Workspace, endpoint: str, version: int, sustainable: float | None) -> int:
    at = datetime(2026, 12, 6, 7, 0, tzinfo=UTC)
    return ws.load_tests.record(
        endpoint=endpoint,
        model="credit-risk",
        version=version,
        url="http://127.0.0.1:8000",
        settings={"p99_ms": 50, "workers": 1},
        steps=[_step(100, True), _step(200, sustainable is not None)],
        sustainable_rps=sustainable,
        plan={"sustainable_rps": sustainable},
        started_at=at,
        finished_at=at,
    ).id


def test_runs_are_recorded_and_listed_newest_first(workspace: Workspace) -> None:
    first = _record(workspace, "credit", 1, 200.0)
    second = _record(workspace, "credit", 2, None)
    _record(workspace, "other", 1, 100.0)
    listed = workspace.load_tests.list("credit")
    assert [t.id for t in listed] == [second, first]
    back = workspace.load_tests.get(first)
    assert back.ref == "credit-risk@1"
    assert back.sustainable_rps == 200.0
    assert [s.rate for s in back.steps] == [100, 200]
    assert back.steps[1] == _step(200, True)
    assert back.started_at == datetime(2026, 12, 6, 7, 0, tzinfo=UTC)
    assert workspace.load_tests.get(second).sustainable_rps is None
    assert len(workspace.load_tests.list()) == 3
    events = workspace.audit(action="loadtest.record")
    assert [e.entity for e in events] == ["other", "credit", "credit"]


def test_an_unknown_run_is_not_found(workspace: Workspace) -> None:
    with pytest.raises(NotFoundError, match="--history"):
        workspace.load_tests.get(99)
