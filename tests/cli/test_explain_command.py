"""``setpoint models explain``: each feature's contribution to a model's predictions on a
file, from the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_support import Cli

from setpoint.workspace import Workspace

# The command line, not the stores (their own tests run on both databases): the
# workspace on SQLite only (conftest.py).
pytestmark = pytest.mark.one_database


def test_models_explain_writes_contributions_that_add_up_to_the_log_odds(
    cli: Cli, tmp_path: Path
) -> None:
    import lightgbm as lgb
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    data = pd.DataFrame({"x1": rng.normal(size=300), "x2": rng.uniform(0, 10, 300)})
    data["y"] = np.where(data.x1 + data.x2 / 5 > 1, "yes", "no")
    features = data[["x1", "x2"]]
    with Workspace.open(cli.root) as ws:
        gbm = lgb.LGBMClassifier(n_estimators=10, verbose=-1).fit(features, data["y"])
        ws.register_model("gbm", gbm, reference=data, target="y")
        # Fitted elsewhere: no background sample to explain it against.
        clf = LogisticRegression().fit(features, data["y"])
        ws.register_model("clf", clf, reference=data, target="y")
    given = features.iloc[:40].copy()
    given.loc[5, "x1"] = np.nan  # the contract refuses it: quarantined, as predict does
    source = tmp_path / "in.csv"
    given.to_csv(source, index=False)
    out = tmp_path / "out.csv"

    done = cli.json("models", "explain", "gbm@1", "--input", str(source), "-o", str(out))
    assert (done["n_rows"], done["n_scored"], done["n_quarantined"]) == (40, 39, 1)
    explained = pd.read_csv(out)
    assert list(explained.columns) == [
        "x1",
        "x2",
        "prediction",
        "proba_no",
        "proba_yes",
        "explanation_space",
        "base_value",
        "raw_output",
        "contribution_x1",
        "contribution_x2",
    ]
    assert set(explained["explanation_space"]) == {"log-odds"}
    total = explained["base_value"] + explained[["contribution_x1", "contribution_x2"]].sum(axis=1)
    np.testing.assert_allclose(total, explained["raw_output"], atol=1e-6)
    np.testing.assert_allclose(
        1 / (1 + np.exp(-explained["raw_output"])), explained["proba_yes"], atol=1e-9
    )

    out.unlink()
    said = cli("models", "explain", "gbm@1", "-i", str(source), "-o", str(out), "--top", "1")
    assert "Explained 39 of 40 rows with gbm@1" in said.stdout
    assert "quarantined 1 row" in said.stdout
    assert all(len(line) <= 80 for line in said.stdout.splitlines() if str(out) not in line)
    top = pd.read_csv(out)[["contribution_x1", "contribution_x2"]]
    assert (top.notna().sum(axis=1) == 1).all()

    cli.fails(
        "models", "explain", "clf@1", "-i", str(source), "-o", str(out), code=2, message="retrain"
    )
