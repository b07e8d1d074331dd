"""A served model to monitor: the lending data, a trained champion, an endpoint."""

from __future__ import annotations

from datetime import UTC, datetime

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
DAY = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
def served(workspace: Workspace) -> Workspace:
    """A workspace whose endpoint ``credit`` serves a champion trained on 4,000 loans."""
    history = lending.applications(4_000, start=datetime(2026, 1, 1, tzinfo=UTC), seed=11)
    workspace.add_dataset("loans", history)
    version = workspace.train(SPEC)
    workspace.promote(version.name, version.version)
    workspace.deploy("credit", model="credit-risk")
    return workspace
