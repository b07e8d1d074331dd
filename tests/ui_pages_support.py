"""A small workspace for the dashboard's page tests, built in about a second.

A dataset ``loans`` (two versions), two versions of model ``risk`` registered with a
scikit-learn model and an evaluation written out (training computes explanations,
seconds a version: the pages read only the stored metadata), the second champion and
served by endpoint ``scoring``, and a quarantine batch of two refused rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from setpoint.data.contract import Contract
from setpoint.workspace import Workspace

NOTE = "Reviewed <script>alert(1)</script> by risk"


def loans(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.normal(50_000, 10_000, n).round()
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": income,
            "region": rng.choice(["north", "south"], n),
            "y": (income > 50_000).astype(int),
        }
    )


def _evaluation(auc: float, north: float) -> dict[str, Any]:
    fairness = {
        "sensitive": ["region"],
        "metrics": ["selection_rate"],
        "min_group": 30,
        "groups": [
            {"values": {"region": "north"}, "rows": 40, "too_small": False, "selection_rate": 0.5},
            {"values": {"region": "south"}, "rows": 35, "too_small": False, "selection_rate": 0.3},
        ],
        "difference": {"selection_rate": 0.2},
        "ratio": {"selection_rate": 0.6},
        "positive": 1,
        "max_disparity": 0.1,
        "over": ["selection_rate"],
    }
    return {
        "metrics": {
            "train": {"roc_auc": auc + 0.05, "accuracy": 0.9},
            "validation": {"roc_auc": auc, "accuracy": 0.8, "log_loss": 0.4},
        },
        "segments": {
            "region": {
                "north": {"n": 40, "roc_auc": north, "accuracy": 0.8},
                "south": {"n": 35, "roc_auc": 0.7, "accuracy": 0.75},
            }
        },
        "gap": {"metric": "roc_auc", "likely_overfit": False},
        "n_train": 300,
        "n_validation": 75,
        "fairness": fairness,
    }


def build(root: Path) -> Workspace:
    from setpoint.models import flavors

    ws = Workspace.init(root, actor="tester")
    first = ws.add_dataset("loans", loans())
    second = ws.add_dataset("loans", loans(seed=1))
    data = loans()
    features = ["age", "income"]
    for number, (dataset, c, auc, north) in enumerate(
        [(first, 1.0, 0.81, 0.8), (second, 0.1, 0.83, 0.86)], start=1
    ):
        model = LogisticRegression(C=c).fit(data[features], data["y"])
        predictor = flavors.from_object(model, features=features)
        ws.registry.register(
            "risk",
            predictor,
            contract=ws.contract(dataset.ref).restrict(features).to_dict(),
            evaluation=_evaluation(auc, north),
            lineage={"datasets": [{"ref": dataset.ref, "id": dataset.id, "role": "train"}]},
            datasets_used=[(dataset, "train")],
            spec={"model": "risk", "dataset": dataset.ref, "estimator": {"params": {"C": c}}},
        )
        ws.promote("risk", number)
    ws.annotate("risk@2", NOTE)
    ws.deploy("scoring", model="risk@champion")
    contract = Contract.from_dict(
        {
            "columns": {
                "age": {"kind": "integer", "nullable": False, "min": 18, "max": 100},
                "income": {"kind": "numeric", "nullable": True},
                "region": {
                    "kind": "categorical",
                    "nullable": False,
                    "categories": ["north", "south"],
                },
                "y": {"kind": "integer", "nullable": False},
            }
        }
    )
    ws.attach_contract("loans@2", contract)
    batch = loans(5, seed=2).assign(age=[30, 12, 40, 50, 60], region=["north"] * 4 + ["east"])
    ws.validate("loans@2", batch, mode="quarantine", source="march.csv")
    return ws
