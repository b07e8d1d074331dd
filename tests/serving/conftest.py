"""A workspace with a trained, promoted lending model deployed as endpoint ``credit``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pandas as pd
import pytest
from serving_support import (
    SPEC,
    MemoryLog,
)
from starlette.testclient import TestClient

from setpoint.demo import lending
from setpoint.serving.app import create_app
from setpoint.workspace import Workspace


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


@pytest.fixture
def memory_log() -> MemoryLog:
    return MemoryLog()


@pytest.fixture
def client(served: Workspace, memory_log: MemoryLog) -> Iterator[TestClient]:
    """The app in-process (a module may define its own ``client``)."""
    app = create_app(served, memory_log, feedback_log=MemoryLog(), refresh_seconds=0.05)
    with TestClient(app) as test_client:
        yield test_client
