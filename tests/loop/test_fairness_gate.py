"""The fairness gate (loop/fairness_gate.py): judged on its own, and through the loop's
controller, where a candidate better on average but unfair to a group is rejected."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_retraining import SPEC, _answer_and_label

from setpoint.demo import lending
from setpoint.loop.controller import Loop
from setpoint.loop.gates import GateConfig, evaluate_gates
from setpoint.loop.policy import Policy
from setpoint.models.spec import Fairness
from setpoint.workspace import Workspace

START = datetime(2026, 1, 1, tzinfo=UTC)
CHANGE = datetime(2026, 4, 2, tzinfo=UTC)
NOW = CHANGE + timedelta(days=15)


def _outcomes(seed: int = 0, n: int = 1_000) -> tuple[Any, Any, Any, Any]:
    """Labels, a fair model's answers, an unfair one's (more false positives for the
    south), and the region of each row."""
    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "south"], n)
    y = rng.integers(0, 2, n)
    fair = np.where(rng.random(n) < 0.1, 1 - y, y)
    unfair = np.where((region == "south") & (y == 0) & (rng.random(n) < 0.3), 1, fair)
    return y, fair, unfair, region


def _report(settings: Fairness, champion: Any, candidate: Any, **given: Any) -> Any:
    y, _, _, region = _outcomes()
    return evaluate_gates(
        # Accuracy may drop: only fairness is judged here.
        GateConfig(metrics={"accuracy": -1.0}, confidence=None, fairness=settings),
        task="classification",
        classes=[0, 1],
        y_true=y,
        champion=(champion, None),
        candidate=(candidate, None),
        sensitive=given.get("sensitive", {"region": region}),
    )


def test_a_gap_over_the_limit_or_wider_than_the_champions_fails_naming_the_groups() -> None:
    _, fair, unfair, _ = _outcomes()
    fpr = Fairness(sensitive=("region",), metrics=("false_positive_rate",), max_disparity=0.1)
    over = _report(fpr, fair, unfair)
    (check,) = [c for c in over.checks if c.name == "fairness[false_positive_rate]"]
    assert not over.passed
    assert not check.passed
    # About 0.3 more false positives for the south's negatives.
    assert re.fullmatch(
        r"false positive rate differs by 0\.(2|3)\d between region=south \(0\.\d\d\) and "
        r"region=north \(0\.\d\d\) for the candidate, over the 0\.10 allowed "
        r"\(the champion's: 0\.0\d\)",
        check.detail,
    ), check.detail
    assert check.value == pytest.approx(0.3, abs=0.05)
    assert check.threshold == 0.1

    # Under a lax limit, the champion's own gap is the bar, plus the margin.
    lax = Fairness(sensitive="region", metrics="false_positive_rate", max_disparity=0.5)
    wider = _report(lax, fair, unfair)
    assert not wider.passed
    assert "against 0.03 for the champion: wider by 0.26" in wider.reasons[0]
    assert "more than the 0.05 allowed" in wider.reasons[0]
    assert _report(lax.model_copy(update={"margin": None}), fair, unfair).passed
    # The fair candidate passes every metric of the task.
    fine = _report(Fairness(sensitive="region", max_disparity=0.1), unfair, fair)
    assert fine.passed, fine.reasons
    assert {c.name for c in fine.checks if c.name.startswith("fairness")} == {
        f"fairness[{m}]" for m in Fairness(sensitive="x").metrics_for("classification")
    }
    # A hold-out without the sensitive column cannot be judged: it fails, naming it.
    blind = _report(fpr, fair, fair, sensitive={})
    assert blind.failed == ["fairness"]
    assert "no sensitive column(s) region" in blind.reasons[0]


def _with_region(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """A region that the model is never given, where every partner's applicant comes
    from: after the change, partners' loans go bad, and a model that learns it flags
    the south's good applicants too."""
    rng = np.random.default_rng(seed)
    south = (frame["channel"] == "partner") | (rng.random(len(frame)) < 0.2)
    return frame.assign(region=np.where(south, "south", "north"))


def test_the_loop_rejects_a_better_candidate_that_widens_a_groups_false_positive_gap(
    tmp_path: Path,
) -> None:
    ws = Workspace.init(tmp_path / "ws", actor="tester")
    history = lending.applications(2_000, start=START, days=90, seed=2)
    ws.add_dataset("loans", _with_region(history, 2))
    fpr = {"sensitive": "region", "metrics": ["false_positive_rate"], "max_disparity": 0.1}
    # LightGBM: its TreeSHAP makes the importance measured at training cheap.
    lightgbm = {"class": "lightgbm.LGBMClassifier", "params": {"n_estimators": 60, "verbose": -1}}
    champion = ws.train(SPEC | {"estimator": lightgbm, "fairness": fpr})
    assert "region" not in champion.contract["columns"]  # type: ignore[index]
    assert champion.evaluation["fairness"]["over"] == []
    ws.promote(champion.name, champion.version)
    ws.deploy("credit", model="credit-risk")
    changed = lending.applications(
        1_500, start=CHANGE, days=14, drift=lending.Drift(CHANGE, 1.0, 1.0), seed=3
    )
    # The requests carry the region beside the features; the log keeps it.
    _answer_and_label(ws, _with_region(changed, 3), labelled_at=NOW)
    loop = Loop(ws)
    loop.policies.set(
        "credit",
        Policy.from_yaml(
            "triggers: [{drift_share: 0.3}]\nactions: [retrain, shadow, promote]\n"
            "retrain: {min_rows: 1000}\ngates: {metrics: roc_auc, min_samples: 200}\n"
        ),
    )
    rollout, _ = loop.rollouts.open(
        "credit",
        "window:test",
        trigger={"message": "test", "since": CHANGE.isoformat()},
        champion=champion.ref,
        mode="shadow",
        data_since=CHANGE,
        now=NOW,
    )
    loop.advance(rollout, NOW)
    loop.tick(NOW)

    after = loop.rollouts.get(rollout.id)
    checks = {c["name"]: c for c in (after.gates or {})["checks"]}
    assert checks["roc_auc"]["passed"], checks["roc_auc"]["detail"]  # better on average
    unfair = checks["fairness[false_positive_rate]"]
    assert not unfair["passed"]
    assert after.state == "rejected"
    assert after.reason is not None
    assert "false positive rate differs by" in after.reason
    assert "between region=south" in after.reason
    assert "and region=north" in after.reason
    assert "over the 0.10 allowed" in after.reason
    assert ws.model("credit-risk@champion").version == 1
