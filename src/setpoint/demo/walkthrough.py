"""The steps `setpoint demo` takes, as a function that returns what it found.

So far (the foundation): generate three months of loan applications, register them
as a dataset (profile and contract inferred), check a new month against the contract
with a few broken rows (quarantined, not lost), train a model from a spec with a
time split and per-segment metrics, promote it to champion, reload it from the
registry and check that it predicts what it predicted before it was stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from setpoint.demo import lending
from setpoint.workspace import Workspace

Step = Callable[[str], None]

START = datetime(2026, 1, 1, tzinfo=UTC)
_PARAMS: dict[str, dict[str, Any]] = {
    "lightgbm.LGBMClassifier": {
        "n_estimators": 300,
        "learning_rate": 0.03,
        "num_leaves": 15,
        "min_child_samples": 80,
        "reg_lambda": 5.0,
    },
    "sklearn.ensemble.HistGradientBoostingClassifier": {"max_iter": 300, "learning_rate": 0.05},
}


@dataclass
class DemoResult:
    workspace: Path
    facts: list[tuple[str, str]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    def add(self, label: str, value: object) -> None:
        self.facts.append((label, str(value)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "workspace": str(self.workspace),
            "facts": dict(self.facts),
            "metrics": self.metrics,
        }


def spec(estimator: str) -> dict[str, Any]:
    return {
        "model": "credit-risk",
        "dataset": "loans@latest",
        "target": lending.TARGET,
        "exclude": [lending.TIME_COLUMN],
        "estimator": {"class": estimator, "params": _PARAMS.get(estimator, {})},
        "split": {"method": "time", "time_column": lending.TIME_COLUMN, "test_size": 0.2},
        "segments": ["channel", "grade"],
        "seed": 7,
        "description": "Probability that a loan application defaults.",
    }


def run(root: Path, *, rows: int = 30_000, step: Step = lambda _message: None) -> DemoResult:
    result = DemoResult(root)
    with Workspace.init(root, actor="demo") as ws:
        step("generating three months of loan applications")
        history = lending.applications(rows, start=START, days=90, seed=1)
        step("registering them as dataset 'loans'")
        data = ws.add_dataset(
            "loans",
            history,
            description="Loan applications, January to March, with their outcome.",
            pii_columns=["age"],
            tags={"source": "generated", "domain": "lending"},
        )
        result.add("dataset", f"{data.ref} ({data.row_count:,} rows)")

        step("checking April's applications against the contract")
        april = lending.applications(
            rows // 3, start=datetime(2026, 4, 1, tzinfo=UTC), days=30, seed=2
        )
        april = _break_some_rows(april)
        outcome = ws.validate(data.ref, april, mode="quarantine", source="april.csv")
        quarantined = outcome.quarantine.n_rejected if outcome.quarantine else 0
        result.add(
            "April batch", f"{outcome.accepted.num_rows:,} rows accepted, {quarantined} quarantined"
        )
        result.add(
            "violations found",
            ", ".join(f"{s['column']} {s['rule']} x{s['count']}" for s in outcome.report.summary()),
        )

        step("training a model from a spec (time split, per-segment metrics)")
        estimator = _estimator()
        model = ws.train(spec(estimator))
        validation = model.evaluation["metrics"]["validation"]
        result.metrics = {k: v for k, v in validation.items() if v is not None}
        result.add("model", f"{model.ref} ({estimator.rsplit('.', 1)[-1]}, flavor {model.flavor})")
        gap = model.evaluation.get("gap") or {}
        if gap:
            verdict = "likely overfit" if gap.get("likely_overfit") else "no sign of overfitting"
            result.add("train/validation gap", f"{gap.get('relative_gap', 0):.1%} ({verdict})")

        step("promoting it to champion")
        ws.promote(model.name, model.version)
        result.add("champion", ws.model(model.name).ref)

        step("reloading the champion from the registry")
        predictor = ws.load_model(model.name)
        sample = april.head(200)
        reloaded = predictor.predict_proba(sample)
        assert reloaded is not None
        result.add(
            "reloaded champion",
            f"predicts {len(sample)} rows, p(default) mean {reloaded[:, -1].mean():.3f}",
        )
        result.add("audit events", len(ws.audit(limit=None)))
    return result


def _estimator() -> str:
    try:
        import lightgbm  # noqa: F401
    except ImportError:
        return "sklearn.ensemble.HistGradientBoostingClassifier"
    return "lightgbm.LGBMClassifier"


def _break_some_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """What real batches carry: a typo'd category, a negative income, a missing term."""
    frame = frame.copy()
    rng = np.random.default_rng(3)
    rows = rng.choice(len(frame), size=12, replace=False)
    frame.loc[rows[:4], "grade"] = "Z"
    frame.loc[rows[4:8], "income"] = -1.0
    frame["term"] = frame["term"].astype("Int64")
    frame.loc[rows[8:], "term"] = pd.NA
    return frame
