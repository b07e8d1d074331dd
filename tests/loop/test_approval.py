"""With ``approval: required``, nothing is promoted until ``setpoint approve``.

A full loop against the real server: a schedule fires, the loop waits for labelled
traffic (sent over HTTP, outcomes as feedback), retrains the champion's spec on it,
gates the candidate against the champion, and, with no rollout mode and approval
required, leaves it waiting for a person with its gate report as evidence. Ticks go
by and nothing is promoted; ``setpoint approve`` promotes it (the server then serves
it), approving twice fails cleanly, and ``setpoint reject`` on the next waiting
candidate leaves the champion where it is.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from loop_support import DAY, ENDPOINT, HOUR, MODEL, T0, Served, logged
from typer.testing import CliRunner

from setpoint.cli.main import app
from setpoint.loop.controller import Loop
from setpoint.loop.policy import Policy
from setpoint.workspace import Workspace

APPROVAL = """\
triggers:
  - schedule: "0 0 * * *"
actions: [alert, retrain, promote]
approval: required
retrain: {window: sliding, days: 28, min_rows: 500}
gates:
  metrics: {roc_auc: {min_delta: -0.1}}
  min_samples: 50
cooldown: 1h
"""
ACTOR = "alice"


def setpoint(ws: Workspace, *args: str) -> Any:
    """``setpoint -w WORKSPACE --actor alice ARGS`` in-process, as a person runs it."""
    return CliRunner().invoke(app, ["-w", str(ws.root), "--actor", ACTOR, *args])


def setpoint_json(ws: Workspace, *args: str) -> Any:
    result = setpoint(ws, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def trigger_alert(ws: Workspace) -> str | None:
    """The state of the policy's alert, if it raised one."""
    found = [a for a in ws.monitors.alerts.list(endpoint=ENDPOINT) if a.key == "loop:trigger"]
    return found[0].state if found else None


def champion_of(ws: Workspace) -> str:
    return ws.model(f"{MODEL}@champion").ref


def answered_by(server: Served, frame: pd.DataFrame) -> set[tuple[str, int]]:
    """Who answers ``frame`` now (every request must succeed)."""
    sent = server.client.predict(frame)
    assert sent.failed == 0, sent.bodies
    return {(b["model"], b["version"]) for b in sent.bodies}


@pytest.mark.slow
def test_nothing_is_promoted_until_a_person_approves(
    server: Served, loop: Loop, stream: pd.DataFrame
) -> None:
    ws = server.ws
    loop.policies.set(ENDPOINT, Policy.from_yaml(APPROVAL))
    assert loop.tick(T0).fired == []  # the first look starts the schedule's clock

    # A day of applications over HTTP, and their outcomes as feedback.
    sent = server.client.predict(stream.iloc[:1200], clock=server.clock)
    assert sent.failed == 0, sent.bodies
    server.clock.now = T0 + DAY - HOUR
    server.client.feedback(sent.feedback)

    # The schedule comes due: retrained on the labelled traffic, gated, and waiting.
    report = loop.tick(T0 + DAY)
    assert [f["trigger"] for f in report.fired] == [{"schedule": "0 0 * * *"}]
    retraining = [j for j in report.jobs if j["kind"] == "retrain"]  # compaction runs too
    assert [j["state"] for j in retraining] == ["succeeded"], report.jobs
    (rollout,) = loop.rollouts.list(endpoint=ENDPOINT)
    assert f"rollout {rollout.id}: waiting -> retraining" in report.moves  # then the job
    assert rollout.state == "awaiting_approval", rollout.reason
    assert (rollout.champion, rollout.candidate) == (f"{MODEL}@1", f"{MODEL}@2")
    assert rollout.reason == (
        f"passed its gates; waiting for setpoint approve {rollout.id} (or reject)"
    )
    assert rollout.gates is not None
    assert rollout.gates["passed"] is True

    # The pending decision is visible with its evidence.
    shown = setpoint_json(ws, "rollouts", "show", str(rollout.id))
    assert shown["state"] == "awaiting_approval"
    assert shown["candidate"] == f"{MODEL}@2"
    gates = shown["gates"]
    assert gates == rollout.gates
    assert gates["passed"] is True
    assert gates["holdout"]["dataset"] == rollout.dataset
    assert gates["holdout"]["rows"] >= 50
    names = [c["name"] for c in gates["checks"]]
    assert any("roc_auc" in name for name in names), names
    assert all(c["passed"] for c in gates["checks"])
    assert "roc_auc" in gates["candidate"]
    assert "roc_auc" in gates["champion"]
    listed = setpoint_json(ws, "rollouts", "list", "--state", "awaiting_approval")
    assert [r["id"] for r in listed] == [rollout.id]
    human = setpoint(ws, "rollouts", "show", str(rollout.id))
    assert human.exit_code == 0, human.output
    assert "awaiting_approval" in human.stdout
    assert "gates" in human.stdout

    # Days go by and the loop looks each day: the schedule fires, but the candidate
    # waits, and the champion serves.
    for day in (2, 3, 4):
        report = loop.tick(T0 + day * DAY)
        assert report.fired, day
        assert report.moves == []
        assert [j for j in report.jobs if j["kind"] == "retrain"] == []
        assert loop.rollouts.get(rollout.id).state == "awaiting_approval"
        assert len(loop.rollouts.list(endpoint=ENDPOINT)) == 1
        assert champion_of(ws) == f"{MODEL}@1"
    assert ws.deployments.get(ENDPOINT).config.challenger is None
    assert trigger_alert(ws) == "open"  # the firing waits for its answer
    server.running.follow()
    server.clock.now = T0 + 4 * DAY + HOUR
    assert answered_by(server, stream.iloc[1200:1240]) == {(MODEL, 1)}
    assert not ws.audit(entity_type="rollout", entity=str(rollout.id), action="rollout.promoted")

    # A person approves: the candidate is the champion, served once the server follows.
    approved = setpoint_json(ws, "approve", str(rollout.id))
    assert approved["state"] == "promoted"
    assert approved["decided_by"] == ACTOR
    assert approved["reason"] == f"{MODEL}@2 is the champion (was {MODEL}@1)"
    assert champion_of(ws) == f"{MODEL}@2"
    assert trigger_alert(ws) == "resolved"  # the promotion answered it
    assert ws.deployments.get(ENDPOINT).config.challenger is None
    (event,) = ws.audit(entity_type="rollout", entity=str(rollout.id), action="rollout.promoted")
    assert event.actor == ACTOR
    assert event.before == {"state": "awaiting_approval"}
    assert event.after["reason"] == approved["reason"]
    assert loop.rollouts.get(rollout.id).decided_by == ACTOR
    server.running.follow()
    server.clock.now = T0 + 4 * DAY + 2 * HOUR
    assert answered_by(server, stream.iloc[1240:1280]) == {(MODEL, 2)}
    rows = logged(ws, T0 + 4 * DAY + 2 * HOUR)
    assert {(r["route"], r["version"]) for r in rows} == {("champion", 2)}

    # Approving again fails cleanly: a message and a non-zero exit, nothing changes.
    again = setpoint(ws, "approve", str(rollout.id))
    assert again.exit_code != 0
    assert "Traceback" not in again.output
    assert (
        f"rollout {rollout.id} is promoted; only a rollout awaiting approval is approved"
        in " ".join(again.output.split())
    )
    assert champion_of(ws) == f"{MODEL}@2"
    assert len(ws.audit(entity_type="rollout", entity=str(rollout.id))) == 4

    # The next day's schedule starts the next candidate, which waits in turn; a
    # person rejects it, and the champion stays.
    report = loop.tick(T0 + 5 * DAY)
    newest = loop.rollouts.list(endpoint=ENDPOINT)[0]
    assert newest.id != rollout.id
    assert newest.state == "awaiting_approval", newest.reason
    assert trigger_alert(ws) == "open"
    assert (newest.champion, newest.candidate) == (f"{MODEL}@2", f"{MODEL}@3")
    rejected = setpoint_json(ws, "reject", str(newest.id), "--reason", "not before the audit")
    assert rejected["state"] == "rejected"
    assert rejected["decided_by"] == ACTOR
    assert rejected["reason"] == "not before the audit"
    assert champion_of(ws) == f"{MODEL}@2"
    assert trigger_alert(ws) == "resolved"  # a rejection answers it too
    (event,) = ws.audit(entity_type="rollout", entity=str(newest.id), action="rollout.rejected")
    assert event.actor == ACTOR
    assert event.after["reason"] == "not before the audit"
    assert setpoint(ws, "approve", str(newest.id)).exit_code != 0  # rejected is final
    loop.tick(T0 + 5 * DAY + HOUR)
    assert loop.rollouts.get(newest.id).state == "rejected"
    assert champion_of(ws) == f"{MODEL}@2"
    server.running.follow()
    assert answered_by(server, stream.iloc[1280:1320]) == {(MODEL, 2)}
