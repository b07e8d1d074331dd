"""What predictions cost, per model version (issue 17, the first "done when").

Unit: a window's cost adds up the shares the server stamped on each record, per
version, served and shadow apart, priced at the workspace's prices. End to end: two
LightGBM models, one with twice the trees of the other, serve the same rows
in-process with the real logs; the larger one's model CPU per row is about twice the
smaller one's, an endpoint answering the same request from its cache costs less, and
the cost per 1,000 shows in ``monitor show --json``, the report, the dashboard and
``/metrics``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from setpoint.cli.main import app as cli
from setpoint.cost import Prices
from setpoint.demo import lending
from setpoint.demo.server import Clock
from setpoint.monitoring.cost import describe, money, window_cost
from setpoint.monitoring.report import ReportData, render_report
from setpoint.monitoring.settings import MonitorConfig
from setpoint.serving.app import create_app
from setpoint.serving.log import RecordLog
from setpoint.ui.app import create_ui_app
from setpoint.workspace import Workspace

DAY = datetime(2026, 6, 1, tzinfo=UTC)
PRICES = Prices(cpu_hour=0.036, gb_hour=0.0036)


def usage(rows: list[tuple]) -> pa.Table:
    names = ["request_id", "model", "version", "route", "cached", "cpu_ms", "model_cpu_ms"]
    columns = list(zip(*rows, strict=True))
    table = {name: list(values) for name, values in zip(names, columns, strict=True)}
    n = len(rows)
    table["ts"] = [DAY] * n
    table["mem_gb_s"] = [None if c is None else 0.36 for c in table["cpu_ms"]]
    return pa.table(table)


def test_a_window_prices_each_version_and_keeps_shadow_copies_apart() -> None:
    cost = window_cost(
        usage(
            [
                ("a", "m", 1, "champion", False, 2.0, 1.0),
                ("b", "m", 1, "champion", False, 2.0, 1.0),
                ("c", "m", 1, "champion", True, 0.5, 0.0),  # from the cache
                ("d", "m", 2, "canary", False, 4.0, 3.0),
                ("e", "m", 2, "shadow", False, 3.0, 2.0),
                ("f", "m", 1, "champion", False, None, None),  # logged before costs were
            ]
        ),
        PRICES,
    )
    assert cost is not None
    assert cost["prices"] == {"cpu_hour": 0.036, "gb_hour": 0.0036}
    one, two = cost["served"]
    assert (one["version"], one["rows"], one["measured_rows"], one["cached_rows"]) == (1, 4, 3, 1)
    assert one["cpu_seconds"] == pytest.approx(0.0045)
    assert one["model_cpu_seconds"] == pytest.approx(0.002)
    assert one["server_cpu_seconds"] == pytest.approx(0.0025)
    assert one["memory_gb_hours"] == pytest.approx(3 * 0.36 / 3600)
    # 4.5 ms of CPU at 0.036 an hour and 1.08 GB-s at 0.0036 an hour, over 3 rows.
    expected = (0.0045 * 0.036 + 1.08 * 0.0036) / 3600 / 3 * 1000
    assert one["cost_per_1000"] == pytest.approx(expected)
    assert one["model_cost_per_1000"] == pytest.approx(0.002 * 0.036 / 3600 / 3 * 1000)
    # The hit would have cost the version's model CPU per predicted row (1 ms).
    assert one["cache_saved"] == pytest.approx(0.001 * 0.036 / 3600)
    assert (two["version"], two["rows"], two["cache_saved"]) == (2, 1, None)
    (shadow,) = cost["shadow"]
    assert (shadow["version"], shadow["rows"]) == (2, 1)
    assert cost["total"]["rows"] == 5
    assert cost["total"]["cost"] == pytest.approx(one["cost"] + two["cost"])
    said = describe(cost)
    assert said is not None
    assert said.startswith(f"{money(cost['total']['cost_per_1000'])} per 1,000 predictions (")
    assert "m@1 " in said  # two versions served: each one's figure
    assert "the cache saved" in said
    assert "shadow copies (1 row) cost" in said


def test_a_window_of_rows_logged_without_costs_has_no_price() -> None:
    cost = window_cost(usage([("a", "m", 1, "champion", False, None, None)]), PRICES)
    assert cost is not None
    assert cost["total"]["cost_per_1000"] is None
    assert (
        window_cost(usage([("a", "m", 1, "champion", False, 1.0, 0.5)]).slice(0, 0), PRICES) is None
    )


# --- end to end -----------------------------------------------------------------------

REQUESTS, ROWS = 12, 250


def spec(name: str, trees: int) -> dict:
    return {
        "model": name,
        "dataset": "loans@latest",
        "target": lending.TARGET,
        "exclude": [lending.TIME_COLUMN],
        "estimator": {
            "class": "lightgbm.LGBMClassifier",
            # Leaves that always split, so that every tree asked for is grown.
            "params": {"n_estimators": trees, "num_leaves": 63, "min_child_samples": 2},
        },
        "seed": 1,
    }


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, str]:
    """Endpoints ``small`` (250 trees), ``large`` (500) and ``cached`` (the large one
    behind the cache), each sent the same request of 250 rows 12 times; the workspace
    and the server's /metrics page."""
    ws = Workspace.init(tmp_path_factory.mktemp("cost") / "ws", actor="tester")
    history = lending.applications(4_000, start=datetime(2026, 1, 1, tzinfo=UTC), seed=11)
    ws.add_dataset("loans", history)
    for name, trees in (("small", 250), ("large", 500)):
        version = ws.train(spec(name, trees))
        ws.promote(version.name, version.version)
        ws.deploy(name, model=name)
    ws.deploy("cached", model="large", cache_enabled=True)
    body = history.sample(ROWS, random_state=3).drop(columns=[lending.TARGET, lending.TIME_COLUMN])
    records = [
        {k: None if isinstance(v, float) and v != v else v for k, v in row.items()}
        for row in body.to_dict(orient="records")
    ]
    app = create_app(
        ws, RecordLog(ws.root, kind="predictions"), clock=Clock(DAY), refresh_seconds=3600
    )
    with TestClient(app) as client:
        for endpoint in ("small", "large", "cached"):
            for _ in range(REQUESTS):
                response = client.post(
                    f"/v1/endpoints/{endpoint}/predict", json={"records": records}
                )
                assert response.status_code == 200, response.text
        metrics = client.get("/metrics").text
    for endpoint in ("small", "large", "cached"):
        ws.monitors.create(endpoint, MonitorConfig(multivariate=False))
        ws.monitors.run(endpoint, until=DAY + timedelta(days=1))
    return ws, metrics


def latest_cost(ws: Workspace, endpoint: str) -> dict:
    (window,) = ws.monitors.windows(endpoint)
    return window.results["cost"]


def test_twice_the_trees_take_about_twice_the_model_cpu_and_the_cache_costs_less(
    metered: tuple[Workspace, str],
) -> None:
    ws, _ = metered
    small, large, cached = (latest_cost(ws, e)["total"] for e in ("small", "large", "cached"))
    trees = {
        name: ws.registry.load(ws.registry.get(f"{name}@1")).booster.num_trees()  # type: ignore[attr-defined]
        for name in ("small", "large")
    }
    assert trees["large"] == 2 * trees["small"]
    # Measured CPU, not a timing: 3,000 rows a model. The model's part also holds what
    # does not grow with the trees (turning the rows into a matrix, the call), so twice
    # the trees take a little under twice the CPU; the band is wide for a busy machine
    # (1.44 was seen with 150 and 300 trees of 31 leaves under the whole suite).
    ratio = large["model_cpu_seconds"] / small["model_cpu_seconds"]
    assert 1.5 < ratio < 2.8, ratio
    for total in (small, large, cached):
        assert total["rows"] == total["measured_rows"] == REQUESTS * ROWS
        assert total["cost_per_1000"] > total["model_cost_per_1000"] > 0
    # The cache answered all but the first request: no model CPU, and what that saved.
    assert cached["cached_rows"] == (REQUESTS - 1) * ROWS
    assert cached["model_cpu_seconds"] < large["model_cpu_seconds"] / 4
    assert cached["cache_saved"] > 0
    assert cached["cost_per_1000"] < large["cost_per_1000"]


def test_the_cost_shows_in_monitor_show_the_report_the_dashboard_and_metrics(
    metered: tuple[Workspace, str],
) -> None:
    ws, metrics = metered
    result = CliRunner().invoke(cli, ["-w", str(ws.root), "monitor", "show", "large", "--json"])
    assert result.exit_code == 0, result.output
    (window,) = json.loads(result.output)["windows"]
    (version,) = window["cost"]["served"]
    assert (version["model"], version["version"]) == ("large", 1)
    assert version["cost_per_1000"] > 0
    assert window["cost"]["prices"] == Prices.of(ws.settings).to_dict()

    shown = CliRunner().invoke(cli, ["-w", str(ws.root), "monitor", "show", "large"])
    assert "per 1,000 predictions" in shown.output

    report = render_report(ReportData.from_dict(ws.monitors.report_data("large")))
    assert "per 1,000 predictions" in report

    with TestClient(create_ui_app(ws)) as client:
        page = client.get("/ui/endpoints/large").text
    assert "Cost per 1,000 predictions, last" in page

    labels = 'endpoint="large",model="large",route="champion",version="1"'
    per_1000 = re.search(rf"setpoint_cost_per_1000_predictions\{{{labels}\}} (\S+)", metrics)
    assert per_1000 is not None, metrics
    assert float(per_1000.group(1)) > 0
    rows = re.search(rf"setpoint_predicted_rows_total\{{{labels}\}} (\S+)", metrics)
    assert rows is not None
    assert float(rows.group(1)) == REQUESTS * ROWS
    saved = re.search(r'setpoint_cache_saved_cost_total\{endpoint="cached"[^}]*\} (\S+)', metrics)
    assert saved is not None
    assert float(saved.group(1)) > 0
