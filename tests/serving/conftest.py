"""A workspace with a trained, promoted lending model deployed as endpoint ``credit``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from setpoint.demo import lending
from setpoint.workspace import Workspace

SPEC = {
    "model": "credit-risk",
    "dataset": "loans@latest",
    "target": lending.TARGET,
    "exclude": [lending.TIME_COLUMN],
    "estimator": {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}},
    "seed": 1,
}


@pytest.fixture(scope="session")
def history() -> pd.DataFrame:
    return lending.applications(3000, start=datetime(2026, 1, 1, tzinfo=UTC), seed=11)


@pytest.fixture
def served(workspace: Workspace, history: pd.DataFrame) -> Workspace:
    workspace.add_dataset("loans", history)
    version = workspace.train(SPEC)
    workspace.promote(version.name, version.version)
    workspace.deploy("credit", model="credit-risk")
    return workspace


class MemoryLog:
    """Stands in for the prediction log where a test is about the app, not the log."""

    def __init__(self) -> None:
        self.records: list[Mapping[str, Any]] = []
        self.closed = False

    async def append_async(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.records.extend(records)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def memory_log() -> MemoryLog:
    return MemoryLog()


def requests_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a JSON client sends them: no target, no time column, NaN as null."""
    features = frame.drop(columns=[lending.TARGET, lending.TIME_COLUMN])
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        for row in features.to_dict(orient="records")
    ]


def assert_error_shape(
    response: Any, status: int | None = None, code: str | None = None
) -> dict[str, Any]:
    """The one JSON error shape, with ``status`` (any 4xx when None) and ``code``."""
    if status is None:
        assert 400 <= response.status_code < 500, response.text
    else:
        assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    return dict(body["error"])
