"""What the dashboard's tests share: a small workspace's data and spec, a rollout
waiting for a person, the CSRF token of a page's form."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from setpoint.loop.rollouts import Rollout, RolloutStore
from setpoint.workspace import Workspace

SPEC: dict[str, Any] = {
    "model": "risk",
    "dataset": "loans@latest",
    "target": "defaulted",
    "estimator": {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}},
    "seed": 1,
}


def loans(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.normal(50_000, 10_000, n).round()
    grade = rng.choice(["A", "B", "C"], n)
    risk = (grade == "C") * 1.5 - (income - 50_000) / 10_000 + rng.normal(0, 1, n)
    return pd.DataFrame({"income": income, "grade": grade, "defaulted": (risk > 0.5).astype(int)})


def waiting_rollout(
    ws: Workspace, key: str = "test:1", candidate: str = "risk@2", champion: str = "risk@1"
) -> Rollout:
    """A rollout of ``candidate`` against ``champion`` on ``credit`` that passed its
    gates and waits for a person."""
    store = RolloutStore(ws.db, actor="loop")
    rollout, _ = store.open(
        "credit", key, trigger={"message": "a test"}, champion=champion, mode=None, data_since=None
    )
    gates = {
        "passed": True,
        "reasons": [],
        "checks": [{"name": "roc_auc", "passed": True, "detail": "roc_auc 0.80 vs champion 0.78"}],
    }
    return store.move(rollout.id, "awaiting_approval", candidate=candidate, gates=gates)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)
