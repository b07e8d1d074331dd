"""The closed loop against the real server: a SQLite workspace with a trained champion
deployed as endpoint ``credit``, the demo's server (uvicorn on a loopback port, in a
thread, with a clock the test sets) and a small HTTP client that counts what failed.

Time is the test's: records are stamped by ``Served.clock`` and the loop looks when
the test calls ``loop.tick(now)``; ``Served.running.follow()`` makes the server load
what the deployments say now instead of waiting for its own refresh.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from loop_support import (
    ENDPOINT,
    MODEL,
    SPEC,
    T0,
    Client,
    Served,
)

from setpoint.demo import lending
from setpoint.demo.server import Clock, serve
from setpoint.loop.controller import Loop
from setpoint.workspace import Workspace


@pytest.fixture(scope="session")
def history() -> pd.DataFrame:
    """What the champion was trained on."""
    return lending.applications(3000, start=datetime(2026, 1, 1, tzinfo=UTC), seed=11)


@pytest.fixture(scope="session")
def stream() -> pd.DataFrame:
    """Applications the clients send (drawn apart from the training data)."""
    return lending.applications(2000, start=T0, days=1, seed=5)


@pytest.fixture
def served(tmp_path: Path, history: pd.DataFrame) -> Iterator[Workspace]:
    """A SQLite workspace: champion ``credit-risk@1`` serving endpoint ``credit``."""
    ws = Workspace.init(tmp_path / "ws", actor="tester")
    ws.add_dataset("loans", history)
    version = ws.train(SPEC)
    ws.promote(version.name, version.version)
    ws.deploy(ENDPOINT, model=MODEL, note="the tests' endpoint")
    yield ws
    ws.close()


@pytest.fixture
def loop(served: Workspace) -> Loop:
    return Loop(served)


@pytest.fixture
def server(served: Workspace) -> Iterator[Served]:
    clock = Clock(T0)
    with serve(served, clock) as running:
        client = Client(running.url)
        try:
            yield Served(served, running, clock, client)
        finally:
            client.close()
