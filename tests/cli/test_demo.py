"""The README's main job, `setpoint demo`, end to end: the whole closed loop, as a user
runs it (the session's ``demo`` fixture: a child process, the default sizes, the real
server on a loopback port)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from demo_support import DemoRun
from setpoint.cli.main import app
from setpoint.workspace import Workspace


def test_the_demo_closes_the_loop(demo: DemoRun) -> None:
    root, summary = demo.root, demo.summary
    loop = summary["loop"]
    change = datetime.fromisoformat(loop["change"])

    # Drift detected in the week it was injected (the monitor's window starting then).
    assert datetime.fromisoformat(loop["drift_detected_in"]) == change
    weeks = {datetime.fromisoformat(w["start"] + "T00:00:00+00:00"): w for w in summary["weeks"]}
    assert weeks[change]["drifted"]
    assert not any(w["drifted"] for start, w in weeks.items() if start < change)

    # A challenger trained on post-drift data only, promoted by its gates.
    assert datetime.fromisoformat(loop["trained_since"]) >= change
    assert loop["gates_passed"]
    assert loop["state"] == "promoted"
    assert loop["candidate"] == "credit-risk@2"

    # Realized performance after promotion beats the old champion's on the same weeks.
    after = loop["after_promotion"]
    assert after["weeks"] >= 2
    assert after["served_auc"] > after["old_champion_auc"]

    # It says where the report, the card and the audit trail are, and they are there.
    report, audit = Path(summary["report"]), Path(summary["audit"])
    assert report.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    card = Path(summary["card"]).read_text(encoding="utf-8")
    assert "<title>Model card: credit-risk@2</title>" in card
    assert "Ranking loan applications for a credit officer" in card
    # Trust: the age bands measured at training and in production, gated, and the
    # model's explanation seen to move after the change.
    assert "age_band=under 30" in card
    facts = summary["facts"]
    assert "for the candidate (at most 0.35 allowed" in facts["fairness gate"]
    assert "age_band=under 30" in facts["fairness in production"]
    assert "credit-risk@1's explanation moved" in facts["attribution drift"]
    actions = [json.loads(line)["action"] for line in audit.read_text().splitlines()]
    for expected in (
        "rollout.open",
        "rollout.retraining",
        "rollout.shadow",
        "rollout.promoted",
        "alias.promote",
    ):
        assert expected in actions
    with Workspace.open(root) as ws:
        assert ws.model("credit-risk@champion").ref == "credit-risk@2"
        assert ws.deployments.get("credit").config.challenger is None
        assert ws.quarantine.list()[0].n_rejected >= 12  # the broken batch, kept with reasons
        lineage = ws.dataset(loop["dataset"])
        assert lineage.tags["from"] == "prediction-log"
        assert datetime.fromisoformat(lineage.tags["since"]) >= change
        assert datetime.fromisoformat(lineage.tags["until"]) <= change + timedelta(days=21)


def test_the_demo_refuses_a_folder_in_use(tmp_path: Path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["demo", "--path", str(tmp_path / "used")])
    assert result.exit_code == 2
    assert "not empty" in result.stderr
