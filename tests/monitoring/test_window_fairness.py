"""Fairness per window (monitoring/fairness.py; the file is named apart from
tests/models/test_fairness.py, which pytest could not import beside it): the groups
come with the requests, the selection rate is judged from the answers, the other
rates on the labels."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from setpoint.demo import lending
from setpoint.monitoring.report import ReportData, render_report
from setpoint.monitoring.settings import MonitorConfig
from setpoint.serving.log import RecordLog
from setpoint.workspace import Workspace

DAY = datetime(2026, 6, 1, tzinfo=UTC)
ROWS = 400


def _log(ws: Workspace, day: datetime, *, favour_north: float, seed: int) -> None:
    """A day of answers with the region each request carried (not a model input), and
    labels for half of them; ``favour_north``: the share of the north's good applicants
    answered "default" too."""
    rng = np.random.default_rng(seed)
    frame = lending.applications(ROWS, start=day, days=1, seed=seed)
    region = rng.choice(["north", "south"], ROWS)
    truth = frame[lending.TARGET].to_numpy()
    answer = np.where(rng.random(ROWS) < 0.1, 1 - truth, truth)
    answer = np.where((region == "north") & (rng.random(ROWS) < favour_north), 1, answer)
    features = frame.drop(columns=[lending.TARGET, lending.TIME_COLUMN])
    predictions = []
    for i, (row, when) in enumerate(
        zip(features.to_dict(orient="records"), frame[lending.TIME_COLUMN], strict=True)
    ):
        inputs: dict[str, Any] = {
            k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()
        }
        predictions.append(
            {
                "request_id": f"{day:%d}-{i}",
                "row": 0,
                "ts": when.floor("us").to_pydatetime(),
                "endpoint": "credit",
                "model": "credit-risk",
                "version": 1,
                "route": "champion",
                "inputs": inputs | {"region": str(region[i])},
                "outputs": {"prediction": int(answer[i]), "probabilities": None},
                "latency_ms": 2.0,
                "cached": False,
                "fallback": False,
            }
        )
    log = RecordLog(ws.root, kind="predictions")
    log.append(predictions)
    log.close()
    _label(ws, day, seed, first=0)


def _label(ws: Workspace, day: datetime, seed: int, *, first: int) -> None:
    """Labels for every other row of the day's answers, from row ``first``."""
    truth = lending.applications(ROWS, start=day, days=1, seed=seed)[lending.TARGET]
    log = RecordLog(ws.root, kind="feedback")
    log.append(
        [
            {
                "request_id": f"{day:%d}-{i}",
                "row": 0,
                "ts": day + timedelta(days=1),
                "endpoint": "credit",
                "label": int(truth.iloc[i]),
            }
            for i in range(first, ROWS, 2)
        ]
    )
    log.close()


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A champion whose spec measures fairness by region (not a feature), a fair day of
    traffic and a day when the north's good applicants are refused more often."""
    ws = Workspace.init(tmp_path_factory.mktemp("fair") / "ws", actor="tester")
    history = lending.applications(1_000, start=datetime(2026, 1, 1, tzinfo=UTC), seed=11)
    rng = np.random.default_rng(0)
    ws.add_dataset("loans", history.assign(region=rng.choice(["north", "south"], len(history))))
    version = ws.train(
        {
            "model": "credit-risk",
            "dataset": "loans@latest",
            "target": lending.TARGET,
            "exclude": [lending.TIME_COLUMN],
            "estimator": {"class": "lightgbm.LGBMClassifier", "params": {"verbose": -1}},
            "fairness": {
                "sensitive": "region",
                "metrics": ["selection_rate", "false_positive_rate"],
                "max_disparity": 0.1,
            },
        }
    )
    ws.promote(version.name, version.version)
    ws.deploy("credit", model="credit-risk")
    _log(ws, DAY, favour_north=0.0, seed=1)
    _log(ws, DAY + timedelta(days=1), favour_north=0.5, seed=2)
    ws.monitors.create("credit", MonitorConfig(window="1d", multivariate=False))
    ws.monitors.run("credit", until=DAY + timedelta(days=2))
    yield ws
    ws.close()


def test_each_window_measures_the_groups_and_alerts_past_max_disparity(
    watched: Workspace,
) -> None:
    fair, unfair = watched.monitors.windows("credit")[-2:]
    calm = fair.results["fairness"]
    assert calm["max_disparity"] == 0.1  # from the model's spec
    assert {g["values"]["region"] for g in calm["selection"]["groups"]} == {"north", "south"}
    assert sum(g["rows"] for g in calm["selection"]["groups"]) == ROWS
    assert calm["selection"]["over"] == []
    assert calm["realized"]["over"] == []
    assert sum(g["rows"] for g in calm["realized"]["groups"]) == ROWS // 2  # labelled rows
    # Not a feature: the region drifts nowhere.
    assert "region" not in fair.results["drift"]["features"]

    skewed = unfair.results["fairness"]
    assert skewed["selection"]["over"] == ["selection_rate"]
    assert "false_positive_rate" in skewed["realized"]["over"]
    alerts = {a.key: a for a in watched.monitors.alerts.list(endpoint="credit")}
    assert {"fairness:selection_rate", "fairness:realized:false_positive_rate"} <= set(alerts)
    message = alerts["fairness:realized:false_positive_rate"].message
    assert message.startswith("false positive rate differs by 0.")
    assert "between region=north (0." in message
    assert "and region=south (0." in message
    assert f"on {ROWS // 2:,} labelled rows in 2026-06-02 00:00 to" in message
    assert message.endswith("over the 0.10 allowed")

    # The offline report shows each window's gaps, and the latest ones over the limit.
    page = render_report(ReportData.from_dict(watched.monitors.report_data("credit")))
    section = page[page.index('id="fairness"') :]
    section = section[: section.index("</section>")]
    assert "Largest difference between groups, per window" in section
    assert "Selection rate (answers)" in section
    assert "False positive rate" in section
    assert section.count("(over)") >= 2  # the second day, both metrics
    assert "False positive rate differs by 0." in section
    assert "between region=north (0." in section

    # Labels that come late bring the window's fairness up to date, as its performance.
    _label(watched, DAY + timedelta(days=1), 2, first=1)
    watched.monitors.run("credit", until=DAY + timedelta(days=2))
    later = watched.monitors.windows("credit")[-1].results["fairness"]["realized"]
    assert sum(g["rows"] for g in later["groups"]) == ROWS
    assert later["difference"] != skewed["realized"]["difference"]
