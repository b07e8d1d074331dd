"""The overview and an endpoint's page on monitored traffic: two days of applications,
the second drifted, in 12-hour windows; and how a long range folds into points."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from setpoint.demo import lending
from setpoint.monitoring.digest import digest
from setpoint.monitoring.series import WindowDigest
from setpoint.monitoring.settings import MonitorConfig
from setpoint.store.schema import monitor_windows
from setpoint.ui.app import create_ui_app
from setpoint.ui.pages.endpoint import MAX_POINTS, default_range, fold
from setpoint.workspace import Workspace

DAY = datetime(2026, 6, 1, tzinfo=UTC)
SPEC = {
    "model": "credit-risk",
    "dataset": "loans@latest",
    "target": lending.TARGET,
    "exclude": [lending.TIME_COLUMN],
    "estimator": {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 300}},
    "seed": 1,
}


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    ws = Workspace.init(tmp_path_factory.mktemp("ui") / "ws", actor="tester")
    ws.add_dataset("loans", lending.applications(2_000, start=DAY - timedelta(days=60), seed=3))
    version = ws.train(SPEC)
    ws.promote(version.name, version.version)
    ws.deploy("credit", model="credit-risk")
    calm = lending.applications(400, start=DAY, days=1, seed=4)
    moved = lending.applications(
        400,
        start=DAY + timedelta(days=1),
        days=1,
        seed=5,
        drift=lending.Drift(start=DAY, covariate=1.0),
    )
    traffic = pd.concat([calm, moved], ignore_index=True)
    traffic["age"] = traffic["age"].astype(object)
    traffic.loc[traffic.index[3], "age"] = "forty"  # refused by the contract
    ws.monitors.backfill(
        "credit", traffic, time_column=lending.TIME_COLUMN, label_column=lending.TARGET
    )
    ws.monitors.create("credit", MonitorConfig(window="12h"))
    ws.monitors.run("credit", until=DAY + timedelta(days=2))
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def client(monitored: Workspace) -> Iterator[TestClient]:
    with TestClient(create_ui_app(monitored)) as test_client:
        yield test_client


def test_the_overview_says_how_each_endpoint_is_doing(client: TestClient) -> None:
    page = client.get("/ui/").text
    assert 'href="/ui/endpoints/credit"' in page
    assert "credit-risk@1" in page
    assert "drifting: " in page  # the latest window is the drifted day's
    assert "rows per window of credit" in page  # the traffic's sparkline


def test_an_endpoint_page_draws_its_range(client: TestClient, monitored: Workspace) -> None:
    page = client.get("/ui/endpoints/credit")
    assert page.status_code == 200
    text = page.text
    for said in (
        "Traffic: rows answered per window",
        "Drift by feature",
        "accuracy: estimated (with its band) and realized",
        "Rows the contract refused",
        "Refused rows by rule",
        "age: type",
        "Deployment history",
        "No cost was measured in this range.",  # backfilled traffic has no server's figures
    ):
        assert said in text, said
    assert text.count("<svg") >= 6
    assert "4 windows of 12h" in text  # the default range: 48 windows or more would fit
    drifted = monitored.monitors.series("credit")[-1].digest["drifted"]
    assert drifted
    assert f"{drifted[0]}, " in text or f"{drifted[0]}<" in text

    day = client.get("/ui/endpoints/credit", params={"range": "1d"}).text
    assert "2 windows of 12h" in day
    assert 'aria-current="true">day<' in day


def test_an_unknown_endpoint_is_a_page_that_says_so(client: TestClient) -> None:
    page = client.get("/ui/endpoints/nowhere")
    assert page.status_code == 404
    assert "no endpoint &#39;nowhere&#39;" in page.text


def _windows(n: int, span: timedelta) -> list[WindowDigest]:
    return [WindowDigest(DAY + i * span, DAY + (i + 1) * span, 10, {"rows": 10}) for i in range(n)]


def test_a_long_range_folds_into_points_and_keeps_every_row() -> None:
    year = _windows(8_760, timedelta(hours=1))
    folded = fold(year)
    assert len(folded) <= MAX_POINTS
    rows = folded.column(lambda d: d.get("rows"))
    assert sum(v or 0 for v in folded.total(rows)) == 87_600
    assert folded.starts == sorted(folded.starts)
    assert folded.sizes.sum() == 8_760
    week = fold(_windows(168, timedelta(hours=1)))
    assert folded.sizes.max() > 1
    assert week.sizes.tolist() == [1] * 168
    assert week.mean(week.column(lambda d: d.get("missing"))) == [None] * 168
    assert fold([]).total(fold([]).column(lambda d: d.get("rows"))) == []


@pytest.mark.parametrize(
    ("window", "shown"),
    [(timedelta(minutes=5), "1d"), (timedelta(hours=1), "7d"), (timedelta(days=1), "90d"),
     (timedelta(days=7), "365d")],
)  # fmt: skip
def test_the_default_range_shows_enough_windows(window: timedelta, shown: str) -> None:
    assert default_range(window) == shown


def test_pages_need_no_monitor(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws")
    with TestClient(create_ui_app(ws)) as client:
        assert "No endpoint is deployed yet" in client.get("/ui/").text


def test_a_long_range_of_hourly_windows_is_drawn_from_daily_rollups(risk_ws: Workspace) -> None:
    monitor = risk_ws.monitors.create("credit", MonitorConfig(window="1h", multivariate=False))
    results = {"drift": {"drift_share": 0.25}, "latency": {"p50_ms": 3.0, "p99_ms": 9.0}}
    hours = [DAY + timedelta(hours=h) for h in range(40 * 24)]  # 40 days
    with risk_ws.db.write() as conn:  # in bulk, as a loader would
        conn.execute(
            sa.insert(monitor_windows),
            [
                {
                    "monitor_id": monitor.id,
                    "start": start,
                    "end": start + timedelta(hours=1),
                    "n_rows": 10,
                    "computed_at": start,
                    "results": results,
                    "digest": digest(results, 10),
                }
                for start in hours
            ],
        )
    assert risk_ws.monitors.rebuild_rollups("credit") == 40
    with TestClient(create_ui_app(risk_ws)) as client:
        quarter = client.get("/ui/endpoints/credit", params={"range": "90d"}).text
        month = client.get("/ui/endpoints/credit", params={"range": "30d"}).text
    assert "40 days of 1h windows, by day" in quarter
    assert "rows answered per day" in quarter  # 40 points: a point a day
    assert "9,600 rows" in quarter  # every window's rows
    assert "720 windows of 1h" in month  # 30 days and shorter: the windows themselves
    assert "by day" not in month
