"""Shifted traffic is scored and counted, not refused (issue 11, the first "done when").

A model is served in-process with the real logs. A day of traffic whose income and
debt-to-income sit 5 to 30% of the training range past its top is answered in full,
the rows past the contract marked; the monitor flags those two features and no
other, counts the marked rows by column and rule, and the report charts them. Then a
contract that enforces those two columns (attached to the training data, and a
version trained and promoted with it) makes the same traffic get 422: every refused
row is kept with its reasons and counted in its window.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from monitor_support import DAY, SPEC
from starlette.testclient import TestClient
from typer.testing import CliRunner

from setpoint.cli.main import app as cli
from setpoint.demo import lending
from setpoint.demo.server import Clock
from setpoint.monitoring.report import ReportData, render_report
from setpoint.serving.app import create_app
from setpoint.serving.log import RecordLog, read_log
from setpoint.workspace import Workspace

SHIFTED = ("income", "debt_to_income")
ROWS, PER_REQUEST = 600, 20
PREDICT = "/v1/endpoints/credit/predict"


@pytest.fixture
def history(served: Workspace) -> pd.DataFrame:
    """The data the served model was trained on."""
    return served.load_dataset("loans@1").to_pandas()


@pytest.fixture
def clock() -> Clock:
    return Clock(DAY)


@pytest.fixture
def client(served: Workspace, clock: Clock) -> Iterator[TestClient]:
    root = served.root
    app = create_app(
        served,
        RecordLog(root, kind="predictions"),
        feedback_log=RecordLog(root, kind="feedback"),
        refused_log=RecordLog(root, kind="refused"),
        clock=clock,
        refresh_seconds=3600,  # the test says when to follow the workspace
    )
    with TestClient(app) as test_client:
        yield test_client


def shifted_rows(history: pd.DataFrame) -> list[dict[str, Any]]:
    """Training rows (every other feature as the model saw it) whose income and
    debt-to-income lie 5 to 30% of the training range past the largest value seen."""
    rng = np.random.default_rng(5)
    rows = history.sample(ROWS, random_state=6).drop(columns=[lending.TARGET, lending.TIME_COLUMN])
    for name in SHIFTED:
        low, high = history[name].min(), history[name].max()
        rows[name] = high + rng.uniform(0.05, 0.30, ROWS) * (high - low)
    return [
        {k: None if isinstance(v, float) and v != v else v for k, v in row.items()}
        for row in rows.to_dict(orient="records")
    ]


def past_the_contract(served: Workspace, rows: list[dict[str, Any]]) -> list[set[str]]:
    """Per row, the shifted columns past the contract's (tolerance-widened) maximum."""
    contract = served.contract("loans@1")
    tops = {name: contract.columns[name].max for name in SHIFTED}
    return [{n for n in SHIFTED if row[n] > (tops[n] or np.inf)} for row in rows]


def send(client: TestClient, clock: Clock, rows: list[dict[str, Any]], day: datetime) -> list[Any]:
    """The rows in requests of PER_REQUEST spread over ``day``, as the server's clock says."""
    responses = []
    for i, start in enumerate(range(0, len(rows), PER_REQUEST)):
        clock.now = day + timedelta(minutes=40 * i)
        responses.append(client.post(PREDICT, json={"records": rows[start : start + PER_REQUEST]}))
    return responses


def drifted_inputs(window: Any, features: list[str]) -> set[str]:
    found = window.results["drift"]["features"]
    return {name for name in features if found.get(name, {}).get("drifted")}


def run_cli(ws: Workspace, *args: str) -> Any:
    result = CliRunner().invoke(cli, ["-w", str(ws.root), *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_shifted_traffic_is_scored_and_counted_and_an_enforced_contract_refuses_it(
    served: Workspace, client: TestClient, clock: Clock, history: pd.DataFrame
) -> None:
    created = run_cli(
        served,
        *("monitor", "create", "credit", "--no-multivariate"),
        *("--max-outside", "0.2", "--max-refused", "0.02"),
    )
    assert created["config"]["max_out_of_contract_share"] == 0.2
    assert created["config"]["max_refused_share"] == 0.02
    features = list(created["reference"]["features"])
    rows = shifted_rows(history)
    past = past_the_contract(served, rows)
    marked = sum(bool(p) for p in past)
    assert 0.8 * ROWS < marked < ROWS  # most rows are past the contract, a few only the data

    # -- scored: every request answered, the rows past the contract marked -------------
    responses = send(client, clock, rows, DAY)
    assert [r.status_code for r in responses] == [200] * (ROWS // PER_REQUEST)
    for i, response in enumerate(responses):
        body = response.json()
        assert None not in body["predictions"]
        expected = {
            (row, name)
            for row, names in enumerate(past[i * PER_REQUEST : (i + 1) * PER_REQUEST])
            for name in names
        }
        found = {(w["row"], w["column"]) for w in body.get("warnings", [])}
        assert found == expected
        assert {w["rule"] for w in body.get("warnings", [])} <= {"max"}
    logged = read_log(served.root, endpoint="credit")
    assert logged.column("violations").null_count == ROWS - marked

    [window] = served.monitors.run("credit", until=DAY + timedelta(days=1))
    assert window.n_rows == ROWS
    assert drifted_inputs(window, features) == set(SHIFTED)
    contract = window.results["quality"]["contract"]
    assert (contract["scored"], contract["refused"]) == (marked, 0)
    assert {(r["column"], r["rule"], r["scored"], r["refused"]) for r in contract["rules"]} == {
        (name, "max", sum(name in p for p in past), 0) for name in SHIFTED
    }
    assert window.results["quality"]["rejected"] == 0
    keys = {a.key for a in served.monitors.alerts.list(endpoint="credit")}
    assert {k for k in keys if k.startswith("drift:feature:")} == {
        f"drift:feature:{name}" for name in SHIFTED
    }
    assert "quality:out_of_contract" in keys
    assert "quality:refused" not in keys

    page = render_report(ReportData.from_dict(served.monitors.report_data("credit")))
    chart = re.search(r"<svg\b(?:(?!</svg>).)*Rows outside the data contract.*?</svg>", page, re.S)
    assert chart is not None
    assert "answered, marked" in chart.group(0)  # its legend: drawn only for rows to show
    assert f"0 rows refused by the data contract, {marked:,} answered outside it" in page

    # -- refused: a contract that enforces the two columns ------------------------------
    enforced = served.contract("loans@1")
    columns = {
        name: rule.model_copy(update={"enforce": "reject"}) if name in SHIFTED else rule
        for name, rule in enforced.columns.items()
    }
    served.attach_contract(
        "loans@1", enforced.model_copy(update={"columns": columns}), note="enforce"
    )
    version = served.train(SPEC)
    assert version.contract is not None
    assert version.contract["columns"]["income"]["enforce"] == "reject"
    served.promote(version.name, version.version)
    client.app.state.serving.refresh()  # type: ignore[attr-defined]

    refused_day = DAY + timedelta(days=1)
    responses = send(client, clock, rows, refused_day)
    assert [r.status_code for r in responses] == [422] * (ROWS // PER_REQUEST)
    for response in responses:
        violations = response.json()["error"]["details"]["violations"]
        assert {(v["column"], v["rule"]) for v in violations} <= {(n, "max") for n in SHIFTED}

    kept = read_log(served.root, kind="refused", endpoint="credit", since=refused_day)
    assert kept.num_rows == marked  # every row refused for its values, and only those
    assert set(kept.column("version").to_pylist()) == {version.version}
    for record, reasons in zip(kept.to_pylist(), kept.column("reasons").to_pylist(), strict=True):
        row = record["row"] + PER_REQUEST * _request_index(record, refused_day)
        assert {(r["column"], r["rule"]) for r in json.loads(reasons)} == {
            (name, "max") for name in past[row]
        }
    listed = run_cli(served, "monitor", "refused", "credit", "--since", refused_day.isoformat())
    assert listed["rows"] == marked

    [second] = served.monitors.run("credit", until=refused_day + timedelta(days=1))
    assert second.n_rows == 0  # nothing was answered
    counts = second.results["quality"]["contract"]
    assert (counts["scored"], counts["refused"]) == (0, marked)
    assert {(r["column"], r["refused"]) for r in counts["rules"]} == {
        (name, sum(name in p for p in past)) for name in SHIFTED
    }
    assert second.results["quality"]["rejected"] == marked
    # The refused rows are traffic the model was sent: their inputs drift as before.
    assert drifted_inputs(second, features) == set(SHIFTED)
    assert "quality:refused" in {a.key for a in served.monitors.alerts.list(endpoint="credit")}


def _request_index(record: dict[str, Any], day: datetime) -> int:
    """Which request of ``send`` a record came from, by the server's clock."""
    return int((record["ts"] - day) / timedelta(minutes=40))
