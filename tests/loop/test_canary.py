"""A canary that returns errors or worse results is rolled back automatically, and the
rollback restores the previous champion with zero failed requests.

Everything goes through the real server on a loopback port and real HTTP: the canary is
put on the endpoint the way the loop does it after a retraining whose gates passed
(``Decisions.after_gates`` with a canary policy), clients send a few hundred requests,
``loop.tick(now)`` judges the live comparison from the prediction log, and
``running.follow()`` makes the server load the deployment the rollback left. A client
keeps sending requests from another thread while the loop rolls back and the server
follows, and every request, before, during and after, is answered with 200.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pytest
from loop_support import DAY, ENDPOINT, HOUR, MODEL, SPEC, T0, Served, into_canary, logged

from setpoint.demo import lending
from setpoint.loop import live
from setpoint.loop.controller import Loop, gated_metric
from setpoint.loop.live import judge
from setpoint.loop.policy import Policy
from setpoint.loop.rollouts import Rollout
from setpoint.models.evaluation import METRICS
from setpoint.serving.log import RecordLog
from setpoint.workspace import Workspace

CANARY = """\
triggers:
  - drift: any
actions: [retrain, canary, promote, rollback]
rollout:
  duration: 7d
  share: 0.3
  min_samples: 50
  min_labels: 100
  max_metric_drop: 0.05
  max_error_rate: 0.02
  max_latency_ratio: 50
"""


class Broken:
    """A classifier whose every answer is an exception (a bad build of a model): it
    registers and loads like any model, and raises the moment it is asked."""

    classes_ = np.array([0, 1])

    def predict(self, data: Any) -> Any:
        raise RuntimeError("the candidate model is broken")

    def predict_proba(self, data: Any) -> Any:
        raise RuntimeError("the candidate model is broken")


def routes(rows: list[dict[str, Any]]) -> Counter[tuple[str, bool, str, int]]:
    return Counter((r["route"], r["fallback"], r["model"], r["version"]) for r in rows)


def record(
    request_id: str, row: int, route: str, *, version: int, fallback: bool = False
) -> dict[str, Any]:
    """A prediction record as the server logs it."""
    return {
        "request_id": request_id,
        "row": row,
        "ts": T0 + HOUR,
        "endpoint": ENDPOINT,
        "model": MODEL,
        "version": version,
        "route": route,
        "inputs": {},
        "outputs": {"prediction": 0, "probabilities": [0.9, 0.1]},
        "latency_ms": 2.0,
        "cached": False,
        "fallback": fallback,
    }


def compare_canary(ws: Workspace) -> dict[str, Any]:
    return live.compare(
        ws.root,
        ENDPOINT,
        mode="canary",
        champion=(MODEL, 1),
        candidate=(MODEL, 2),
        task="classification",
        classes=[0, 1],
        since=T0,
        until=T0 + DAY,
    )


def rolled_back_event(ws: Workspace, rollout: Rollout) -> Any:
    (event,) = ws.audit(entity_type="rollout", entity=str(rollout.id), action="rollout.rolled_back")
    return event


def roll_back_under_traffic(server: Served, loop: Loop, frame: pd.DataFrame) -> list[str]:
    """Tick (the loop judges and rolls back) and follow while a client keeps sending
    requests from another thread; none of those may fail. The tick's moves."""
    with server.traffic_while(frame) as background:
        report = loop.tick(T0 + DAY)
        server.running.follow()
    assert len(background.sent.statuses) >= 40
    assert background.sent.failed == 0, background.sent.bodies
    return report.moves


def assert_champion_alone(server: Served, frame: pd.DataFrame, champion: str) -> None:
    """The deployment has no challenger, the champion alias did not move, and after the
    server followed every request is answered by the champion, logged route=champion."""
    ws = server.ws
    config = ws.deployments.get(ENDPOINT).config
    assert config.challenger is None
    assert config.model == f"{MODEL}@champion"
    assert ws.model(f"{MODEL}@champion").ref == champion
    runtime = server.running.app.state.serving.runtimes[ENDPOINT]
    assert runtime.challenger is None

    server.clock.now = T0 + 2 * DAY
    after = server.client.predict(frame)
    assert after.failed == 0, after.bodies
    assert len(after.statuses) == len(frame) // 4
    assert {(b["model"], b["version"], b["flags"]["fallback"]) for b in after.bodies} == {
        (MODEL, 1, False)
    }
    rows = logged(ws, T0 + 2 * DAY)
    assert len(rows) == len(frame)
    assert routes(rows) == {("champion", False, MODEL, 1): len(frame)}


@pytest.mark.slow
def test_a_canary_that_fails_is_rolled_back_and_no_request_fails(
    server: Served, loop: Loop, stream: pd.DataFrame
) -> None:
    ws = server.ws
    champion = ws.model(f"{MODEL}@champion")
    assert champion.contract is not None
    broken = ws.register_model(
        MODEL,
        Broken(),
        reference="loans@1",
        features=list(champion.contract["columns"]),
        task="classification",
        description="a build that raises on every request",
    )
    assert broken.ref == f"{MODEL}@2"
    policy = Policy.from_yaml(CANARY)
    loop.policies.set(ENDPOINT, policy)

    rollout = into_canary(loop, policy, broken.ref, T0)
    assert rollout.state == "canary", rollout.reason
    config = ws.deployments.get(ENDPOINT).config
    assert (config.challenger, config.mode, config.share) == (broken.ref, "canary", 0.3)
    server.running.follow()

    # A few hundred requests, about 30 % of them routed to the canary: every one of
    # them is answered (200), by the champion, because the canary raises.
    first = server.client.predict(stream.iloc[:1200], clock=server.clock)
    assert len(first.statuses) == 300
    assert first.failed == 0, first.bodies
    assert {(b["model"], b["version"]) for b in first.bodies} == {(MODEL, 1)}
    rescued = sum(b["flags"]["fallback"] for b in first.bodies)
    assert 30 <= rescued <= 150, rescued  # Binomial(300, 0.3): 90, sd 8
    seen = routes(logged(ws, T0, T0 + DAY))
    assert seen == {
        ("canary", True, MODEL, 1): 4 * rescued,
        ("champion", False, MODEL, 1): 1200 - 4 * rescued,
    }

    moves = roll_back_under_traffic(server, loop, stream.iloc[1200:])
    assert moves == [f"rollout {rollout.id}: canary -> rolled_back"]

    after = loop.rollouts.get(rollout.id)
    assert after.state == "rolled_back"
    assert after.reason is not None
    assert after.reason.startswith("canary rolled back: the canary failed ")
    assert "(100.0%; at most 2.0% allowed)" in after.reason
    assert after.live is not None
    assert after.live["verdict"] == "fail"
    assert after.live["error_rate"] == 1.0
    # Counted in requests (of 4 rows each), not rows: the 300 requests' canary share,
    # and of the background client's those logged before the loop looked.
    canary_ids = {r["request_id"] for r in logged(ws, T0, T0 + DAY) if r["route"] == "canary"}
    assert rescued <= after.live["requests"] <= len(canary_ids) < 4 * rescued
    assert after.live["errors"] == after.live["requests"]
    assert after.live["candidate"]["rows"] == 0  # the canary answered nothing itself

    event = rolled_back_event(ws, after)
    assert event.before == {"state": "canary"}
    assert event.after["state"] == "rolled_back"
    assert event.after["reason"] == after.reason
    assert event.after["live"]["error_rate"] == 1.0
    assert event.after["live"]["errors"] == after.live["errors"]

    assert_champion_alone(server, stream.iloc[:400], champion.ref)
    # The loop looks again: nothing is left to roll back, nothing else moves.
    assert loop.tick(T0 + 3 * DAY).moves == []
    assert loop.rollouts.get(rollout.id).state == "rolled_back"


@pytest.mark.slow
def test_a_canary_with_worse_results_is_rolled_back_by_its_metric(
    server: Served, loop: Loop, history: pd.DataFrame, stream: pd.DataFrame
) -> None:
    ws = server.ws
    champion = ws.model(f"{MODEL}@champion")
    # A model that works but learned nothing: trained on the labels shuffled.
    labels = np.random.default_rng(0).permutation(history[lending.TARGET].to_numpy())
    ws.add_dataset("loans-shuffled", history.assign(**{lending.TARGET: labels}))
    worse = ws.train({**SPEC, "dataset": "loans-shuffled@latest"})
    assert worse.ref == f"{MODEL}@2"
    metric = gated_metric(worse)
    policy = Policy.from_yaml(CANARY)
    loop.policies.set(ENDPOINT, policy)

    rollout = into_canary(loop, policy, worse.ref, T0)
    assert rollout.state == "canary", rollout.reason
    server.running.follow()

    first = server.client.predict(stream.iloc[:1600], clock=server.clock)
    assert len(first.statuses) == 400
    assert first.failed == 0, first.bodies
    answered = Counter((b["version"], b["flags"]["fallback"]) for b in first.bodies)
    assert set(answered) == {(1, False), (2, False)}  # the canary answers its share itself
    assert 60 <= answered[(2, False)] <= 180, answered  # Binomial(400, 0.3): 120, sd 9
    assert routes(logged(ws, T0, T0 + DAY)) == {
        ("canary", False, MODEL, 2): 4 * answered[(2, False)],
        ("champion", False, MODEL, 1): 4 * answered[(1, False)],
    }
    # The outcomes come back as feedback, for the canary's rows and the champion's.
    server.clock.now = T0 + DAY - HOUR
    server.client.feedback(first.feedback)

    moves = roll_back_under_traffic(server, loop, stream.iloc[1600:])
    assert moves == [f"rollout {rollout.id}: canary -> rolled_back"]

    after = loop.rollouts.get(rollout.id)
    assert after.state == "rolled_back"
    assert after.reason is not None
    assert after.reason.startswith(f"canary rolled back: live {metric} ")
    assert "worse by" in after.reason
    assert "failed" not in after.reason  # no errors: it was rolled back for its results
    assert after.live is not None
    assert after.live["error_rate"] == 0.0
    mine, theirs = after.live["candidate"], after.live["champion"]
    assert mine["labels"] == 4 * answered[(2, False)]
    assert theirs["labels"] == 4 * answered[(1, False)]
    loss = mine["metrics"][metric] - theirs["metrics"][metric]
    if METRICS[metric].higher_is_better:
        loss = -loss
    assert loss > policy.rollout.max_metric_drop, (metric, mine["metrics"], theirs["metrics"])

    event = rolled_back_event(ws, after)
    assert event.after["reason"] == after.reason
    assert event.after["live"]["candidate"]["metrics"][metric] == mine["metrics"][metric]
    assert event.after["live"]["champion"]["metrics"][metric] == theirs["metrics"][metric]

    assert_champion_alone(server, stream.iloc[:400], champion.ref)


def test_the_error_rate_counts_requests_not_rows(served: Workspace) -> None:
    """One failed request of 50 rows is 1 failed request, too little evidence to roll
    back; 1 failed of 25 canary requests is a 4 % error rate, over the 2 % allowed."""
    settings = Policy.from_yaml(CANARY).rollout
    log = RecordLog(served.root, kind="predictions")
    log.append([record("big", row, "canary", fallback=True, version=1) for row in range(50)])
    log.append([record(f"champion-{i}", 0, "champion", version=1) for i in range(30)])
    log.close()
    live = compare_canary(served)
    assert (live["requests"], live["errors"], live["error_rate"]) == (1, 1, 1.0)
    verdict, reasons = judge(live, settings, "roc_auc")
    assert verdict == "wait", reasons

    log = RecordLog(served.root, kind="predictions")
    log.append(
        [
            record(f"small-{i}", row, "canary", fallback=i == 0, version=1 if i == 0 else 2)
            for i in range(24)
            for row in range(2)
        ]
    )
    log.close()
    live = compare_canary(served)
    assert (live["requests"], live["errors"]) == (25, 2)  # the big one and small-0
    verdict, reasons = judge(live, settings, "roc_auc")
    assert verdict == "fail"
    assert reasons[0].startswith("the canary failed 2 of 25 requests (8.0%;")
