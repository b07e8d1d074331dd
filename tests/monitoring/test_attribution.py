"""Attribution drift: a shift the model ignores moves no share of its explanation, a
shift in its most important feature does (issue 15).

A LightGBM model is trained on the lending data plus ``branch_code``, a column the
model takes but never splits on (constant in training). Its traffic is logged day by
day through the real server; the monitor explains a sample of each day with the
model's TreeSHAP and compares each feature's share with the reference's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from monitor_support import DAY
from starlette.testclient import TestClient

from setpoint.demo import lending
from setpoint.demo.server import Clock
from setpoint.models.explain import Explanation
from setpoint.monitoring.attribution import Attributor, compare, shares
from setpoint.monitoring.report import ReportData, render_report
from setpoint.monitoring.settings import AttributionSettings, MonitorConfig
from setpoint.serving.app import create_app
from setpoint.serving.log import RecordLog
from setpoint.workspace import Workspace

UNUSED = "branch_code"
ROWS, PER_REQUEST = 400, 50


def loans(n: int, seed: int) -> pd.DataFrame:
    frame = lending.applications(n, seed=seed)
    frame[UNUSED] = 7.0
    return frame


@pytest.fixture
def served(workspace: Workspace) -> Workspace:
    workspace.add_dataset("loans", loans(3_000, seed=11))
    version = workspace.train(
        {
            "model": "credit-risk",
            "dataset": "loans@latest",
            "target": lending.TARGET,
            "exclude": [lending.TIME_COLUMN],
            "estimator": {"class": "lightgbm.LGBMClassifier", "params": {"n_estimators": 40}},
            "seed": 1,
        }
    )
    workspace.promote(version.name, version.version)
    workspace.deploy("credit", model="credit-risk")
    return workspace


@pytest.fixture
def client(served: Workspace) -> Iterator[tuple[TestClient, Clock]]:
    clock = Clock(DAY)
    app = create_app(served, RecordLog(served.root, kind="predictions"), clock=clock)
    with TestClient(app) as test_client:
        yield test_client, clock


def send(client: tuple[TestClient, Clock], frame: pd.DataFrame, day: int) -> None:
    test_client, clock = client
    rows = frame.drop(columns=[lending.TARGET, lending.TIME_COLUMN])
    records = [
        {k: None if isinstance(v, float) and v != v else v for k, v in row.items()}
        for row in rows.to_dict(orient="records")
    ]
    for i, start in enumerate(range(0, len(records), PER_REQUEST)):
        clock.now = DAY + timedelta(days=day, minutes=30 * i)
        answer = test_client.post(
            "/v1/endpoints/credit/predict", json={"records": records[start : start + PER_REQUEST]}
        )
        assert answer.status_code == 200, answer.text


def test_only_a_shift_the_model_uses_moves_its_explanation(
    served: Workspace, client: tuple[TestClient, Clock]
) -> None:
    importance = served.model("credit-risk@1").evaluation["importance"]["features"]
    top = next(iter(importance))
    assert importance[UNUSED] == 0.0  # the model never splits on it
    assert top == "grade"

    served.monitors.create("credit", MonitorConfig(multivariate=False))
    unused_moved = loans(ROWS, seed=12)
    unused_moved[UNUSED] = 99.0  # every row far from what training saw
    send(client, unused_moved, day=0)
    top_moved = loans(ROWS, seed=13)
    top_moved["grade"] = np.random.default_rng(0).choice(["F", "G"], ROWS)  # worse applicants
    send(client, top_moved, day=1)
    until = DAY + timedelta(days=2)
    first, second = served.monitors.run("credit", until=until)
    # Measured in other processes (the model's explainer sent along), the same figures.
    again = served.monitors.run("credit", until=until, recompute=True, workers=2)
    assert [w.results["attribution"] for w in again] == [
        first.results["attribution"],
        second.results["attribution"],
    ]

    # The unused column drifted as data, but not in the model's explanation: its alert
    # says it carries none of it.
    moved = first.results["attribution"]
    assert first.results["drift"]["features"][UNUSED]["drifted"] is True
    assert moved["rows"] == 200
    assert moved["drifted"] == []
    assert moved["features"][UNUSED] == {
        "reference": 0.0,
        "window": 0.0,
        "change": 0.0,
        "drifted": False,
    }
    # The most important feature's shift moves its share past the threshold.
    found = second.results["attribution"]
    assert found["drifted"][0] == "grade"
    assert found["features"]["grade"]["change"] >= 0.1

    alerts = {a.key: a for a in served.monitors.alerts.list(endpoint="credit")}
    assert "drift:attribution" in alerts
    assert "'grade'" in alerts["drift:attribution"].message
    assert "carries 0% of the model's explanation" in alerts[f"drift:feature:{UNUSED}"].message

    # The report shows the latest window's shares, the moved feature said in words.
    page = render_report(ReportData.from_dict(served.monitors.report_data("credit")))
    section = page[page.index('id="attribution"') :]
    section = section[: section.index("</section>")]
    assert '<th scope="row">grade</th>' in section
    assert "<strong>moved</strong>" in section

    # Nothing to explain, attribution turned off, or a model input the log does not
    # keep (personal data): no shares.
    predictor = served.load_model("credit-risk@1")
    sample = pa.Table.from_pandas(
        unused_moved.drop(columns=[lending.TARGET, lending.TIME_COLUMN]), preserve_index=False
    )
    features = dict.fromkeys(sample.column_names, "numeric")
    made = Attributor.of(predictor, sample, AttributionSettings(), features)
    assert made is not None
    assert made.shares(sample.slice(0, 0)) is None
    assert Attributor.of(predictor, sample, AttributionSettings(rows=0), features) is None
    del features["age"]
    assert Attributor.of(predictor, sample, AttributionSettings(), features) is None


def test_shares_and_their_comparison() -> None:
    contributions = np.array([[[1.0, -3.0, 0.0]], [[-1.0, 1.0, 0.0]]])  # rows x outputs x features
    explained = Explanation(
        ["a", "b", "unused"],
        ["1"],
        "log-odds",
        np.zeros((2, 1)),
        contributions,
        contributions.sum(axis=2),
    )
    found = shares(explained)
    assert found == pytest.approx({"a": 1 / 3, "b": 2 / 3, "unused": 0.0})
    compared = compare({"a": 0.5, "b": 0.5, "unused": 0.0}, found, share_change=0.1)
    assert compared["drifted"] == ["a", "b"]  # the larger reference share first
    assert compared["distance"] == pytest.approx(1 / 6)
    assert compare(found, found, share_change=0.1)["drifted"] == []
