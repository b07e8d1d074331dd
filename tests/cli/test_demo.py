"""The README's main job, `setpoint demo`, end to end (smaller, to stay quick)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from setpoint.cli.main import app
from setpoint.workspace import Workspace


def test_the_demo_runs_and_leaves_a_workspace_to_explore(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    result = CliRunner().invoke(
        app, ["demo", "--path", str(root), "--rows", "4000", "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["facts"]["champion"] == "credit-risk@1"
    assert "quarantined" in summary["facts"]["April batch"]
    assert summary["metrics"]["roc_auc"] > 0.7
    with Workspace.open(root) as ws:
        assert ws.model("credit-risk").aliases == ("champion",)
        kept = ws.quarantine.list()
        assert kept
        assert kept[0].n_rejected >= 12  # every broken row, plus any the contract itself flags


def test_the_demo_refuses_a_folder_in_use(tmp_path: Path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["demo", "--path", str(tmp_path / "used")])
    assert result.exit_code == 2
    assert "not empty" in result.stderr
