"""One tick of the loop: one endpoint's trouble does not stop the others."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from setpoint.loop.controller import Loop
from setpoint.loop.policy import Policy
from setpoint.workspace import Workspace

NOW = datetime(2026, 5, 1, tzinfo=UTC)
SCHEDULED = "triggers: [{schedule: '0 * * * *'}]\nactions: [retrain]\n"


def test_a_policy_that_cannot_act_is_reported_and_the_tick_goes_on(workspace: Workspace) -> None:
    loop = Loop(workspace)
    loop.policies.set("ghost", Policy.from_yaml(SCHEDULED))  # no such endpoint
    loop.tick(NOW)  # the first look starts the schedule's clock
    report = loop.tick(NOW + timedelta(hours=2))
    [problem] = report.problems
    assert problem.startswith("policy of ghost: no endpoint 'ghost'")
    assert "setpoint deploy ghost" in problem
    assert loop.rollouts.list() == []
    assert report.to_dict()["problems"] == report.problems
