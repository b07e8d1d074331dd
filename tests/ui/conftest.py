"""A small workspace for the dashboard's in-process tests: model ``risk`` with two
versions (1 the champion) and the endpoint ``credit`` following it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient
from ui_support import SPEC, loans

from setpoint.ui.app import create_ui_app
from setpoint.workspace import Workspace


@pytest.fixture
def risk_ws(workspace: Workspace) -> Workspace:
    workspace.add_dataset("loans", loans())
    first = workspace.train(SPEC)
    workspace.promote("risk", first.version)
    workspace.train({**SPEC, "seed": 2})
    workspace.deploy("credit", model="risk@champion")
    return workspace


@pytest.fixture
def client(risk_ws: Workspace) -> Iterator[TestClient]:
    with TestClient(create_ui_app(risk_ws)) as test_client:
        yield test_client
