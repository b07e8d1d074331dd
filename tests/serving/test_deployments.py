"""Endpoints and their revisions, through the workspace and the CLI, on every backend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from setpoint.cli.main import app
from setpoint.errors import NotFoundError, UsageError
from setpoint.serving.config import Fallback
from setpoint.workspace import Workspace


@pytest.fixture
def ws(workspace: Workspace) -> Workspace:
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"x": rng.normal(size=100)})
    data["y"] = (data["x"] > 0).astype(int)
    for c in (1.0, 2.0):
        workspace.register_model(
            "clf", LogisticRegression(C=c).fit(data[["x"]], data["y"]), reference=data, target="y"
        )
    workspace.promote("clf", 1)
    return workspace


def test_deploy_creates_then_revises_an_endpoint(ws: Workspace) -> None:
    first = ws.deploy("credit", model="clf")
    assert (first.revision, first.config.model) == (1, "clf@champion")
    assert first.config.batching.max_batch_size == 64

    second = ws.deploy("credit", challenger="clf@2", mode="shadow", max_wait_ms=1.0, note="try v2")
    assert second.revision == 2
    assert (second.config.model, second.config.challenger, second.config.mode) == (
        "clf@champion",
        "clf@2",
        "shadow",
    )
    assert second.config.batching.max_wait_ms == 1.0
    assert second.config.batching.max_batch_size == 64  # kept

    assert ws.deploy("credit", max_wait_ms=1.0).revision == 2  # nothing changed: no revision
    third = ws.deploy("credit", no_challenger=True, fallback=Fallback(value=0))
    assert (third.config.challenger, third.config.mode, third.config.fallback) == (
        None,
        None,
        Fallback(value=0),
    )

    assert [d.revision for d in ws.deployments.history("credit")] == [1, 2, 3]
    assert [d.endpoint for d in ws.deployments.current()] == ["credit"]
    actions = [e.action for e in ws.audit(entity_type="endpoint")]
    assert actions == ["deployment.update", "deployment.update", "deployment.create"]


def test_mistakes_are_named_together(ws: Workspace) -> None:
    with pytest.raises(UsageError, match="does not exist yet"):
        ws.deploy("credit", challenger="clf@2")
    with pytest.raises(UsageError) as caught:
        ws.deploy("credit", model="clf", mode="canary", share=2.0, max_batch_size=0)
    assert len(caught.value.details) == 3
    with pytest.raises(NotFoundError, match="--challenger clf@9"):
        ws.deploy("credit", model="clf", challenger="clf@9", mode="canary")
    with pytest.raises(NotFoundError, match="no endpoint 'nope'"):
        ws.deployments.get("nope")
    assert ws.deployments.current() == []


def test_the_cli_deploys_and_shows(ws: Workspace, tmp_path: Path) -> None:
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, ["-w", str(ws.root), *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.stdout

    created = json.loads(
        run("deploy", "credit", "--model", "clf@1", "--fallback-value", '"review"', "--json")
    )
    assert created["config"]["fallback"] == {"model": None, "value": "review"}
    run(
        "deploy",
        "credit",
        "--challenger",
        "clf@2",
        "--mode",
        "canary",
        "--share",
        "0.25",
        "--on-error",
        "per-row",
    )
    shown = json.loads(run("deployments", "show", "credit", "--json"))
    assert (shown["revision"], shown["config"]["share"], shown["config"]["on_error"]) == (
        2,
        0.25,
        "per_row",
    )
    assert "canary" in run("deployments", "list")
    assert len(json.loads(run("deployments", "history", "credit", "--json"))) == 2
    assert (
        "not JSON"
        in runner.invoke(
            app, ["-w", str(ws.root), "deploy", "credit", "--fallback-value", "review"]
        ).stderr
    )


def test_docs_values_are_off_until_deployed_on(ws: Workspace) -> None:
    assert ws.deploy("e", model="clf").config.docs_values is False
    runner = CliRunner()
    shown = runner.invoke(app, ["-w", str(ws.root), "deploy", "e", "--docs-values", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["config"]["docs_values"] is True
    assert ws.deployments.get("e").revision == 2
    plain = runner.invoke(app, ["-w", str(ws.root), "deployments", "show", "e"])
    assert "ranges, categories, examples" in plain.stdout
    hidden = runner.invoke(app, ["-w", str(ws.root), "deploy", "e", "--no-docs-values"])
    assert hidden.exit_code == 0, hidden.output
    assert "columns and types only" in hidden.stdout
