"""Backfill: past traffic written into the logs at its own time, then monitored."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from monitor_support import DAY, SPEC
from typer.testing import CliRunner

from setpoint.cli.main import app
from setpoint.data._batch import to_table
from setpoint.data.io import content_hash
from setpoint.demo import lending
from setpoint.errors import ConflictError, InvalidDataError, UsageError
from setpoint.monitoring.backfill import _begin
from setpoint.serving._logtables import read_log
from setpoint.workspace import Workspace

DAYS = 6
CHANGE = DAY + timedelta(days=3)


def cli(ws: Workspace, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, ["-w", str(ws.root), *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.stdout if code == 0 else " ".join(result.output.split())


def past_traffic() -> pd.DataFrame:
    """Six days of applications with their outcomes; the world changes on day four."""
    change = lending.Drift(start=CHANGE, covariate=1.0, concept=1.0)
    return lending.applications(3_000, start=DAY, days=DAYS, drift=change, seed=61)


def test_backfilled_traffic_is_monitored_on_its_own_time(served: Workspace, tmp_path: Path) -> None:
    traffic = past_traffic()
    path = tmp_path / "traffic.parquet"
    traffic.to_parquet(path)
    done = json.loads(
        cli(
            served,
            "monitor",
            "backfill",
            "credit",
            str(path),
            "--time-column",
            lending.TIME_COLUMN,
            "--label-column",
            lending.TARGET,
            "--json",
        )
    )
    assert (done["rows"], done["scored"], done["labels"]) == (3_000, 3_000, 3_000)
    assert done["model"] == "credit-risk@1"
    assert done["first"].startswith("2026-06-01")
    assert done["last"].startswith("2026-06-06")
    logged = read_log(served.root, kind="predictions", endpoint="credit")
    assert logged.num_rows == 3_000
    assert pd.Timestamp(logged["ts"][0].as_py()) == traffic[lending.TIME_COLUMN].iloc[0].floor("us")

    # The same table again would count every row twice: refused, with the way round.
    assert "backfilled into credit already" in cli(
        served,
        "monitor",
        "backfill",
        "credit",
        str(path),
        "--time-column",
        lending.TIME_COLUMN,
        code=4,
    )

    cli(served, "monitor", "create", "credit", "--window", "1d", "--no-multivariate")
    ran = json.loads(cli(served, "monitor", "run", "credit", "--until", "2026-06-07", "--json"))
    windows = ran["credit"]
    assert [w["start"][:10] for w in windows] == [f"2026-06-0{d}" for d in range(1, DAYS + 1)]
    before = [w for w in windows if w["start"] < CHANGE.isoformat()]
    after = [w for w in windows if w["start"] >= CHANGE.isoformat()]
    assert all(not w["drifted"] for w in before), before
    assert all({"age", "channel"} <= set(w["drifted"]) for w in after), after
    # Outcomes came with the traffic: every window has its realized performance, and
    # the change in the relation shows in it.
    assert all(w["labels"] == w["rows"] for w in windows)
    shown = json.loads(cli(served, "monitor", "show", "credit", "--json"))
    auc = [w["performance"]["realized"]["roc_auc"] for w in shown["windows"]]
    assert max(auc[3:]) < min(auc[:3])
    # Alerts are dated by the data, not by when the backfill ran.
    alerts = json.loads(cli(served, "alerts", "list", "--endpoint", "credit", "--json"))
    age = next(a for a in alerts if a["key"] == "drift:feature:age")
    assert age["first_seen"] == (CHANGE + timedelta(days=1)).isoformat()
    assert age["noticed_at"] > "2026-06-07"


def test_rows_that_cannot_be_scored_are_kept_and_rows_beyond_the_range_are_marked(
    served: Workspace,
) -> None:
    traffic = past_traffic().iloc[:200].copy()
    traffic["age"] = traffic["age"].astype(object)
    traffic.loc[traffic.index[5], "age"] = "forty"  # cannot be scored
    traffic.loc[traffic.index[7], "income"] = 10_000_000.0  # beyond what the model saw
    result = served.monitors.backfill("credit", traffic, time_column=lending.TIME_COLUMN)
    assert (result.rows, result.scored, result.refused, result.marked) == (200, 199, 1, 1)
    [refused] = read_log(served.root, kind="refused", endpoint="credit").to_pylist()
    assert json.loads(refused["reasons"]) == [{"column": "age", "rule": "type", "value": "forty"}]
    assert json.loads(refused["inputs"])["age"] == "forty"
    logged = read_log(served.root, kind="predictions", endpoint="credit").to_pylist()
    [marked] = [r for r in logged if r.get("violations")]
    assert json.loads(marked["violations"]) == [{"column": "income", "rule": "max"}]
    assert json.loads(marked["inputs"])["income"] == 10_000_000.0


def test_a_column_that_enforces_its_contract_refuses_rows_beyond_it(served: Workspace) -> None:
    contract = served.contract("loans@1")
    income = contract.columns["income"].model_copy(update={"enforce": "reject"})
    served.attach_contract(
        "loans@1", contract.model_copy(update={"columns": {**contract.columns, "income": income}})
    )
    version = served.train(SPEC)  # a model version's contract is fixed when it is registered
    served.promote(version.name, version.version)
    traffic = past_traffic().iloc[:50].copy()
    traffic.loc[traffic.index[7], "income"] = 10_000_000.0
    traffic.loc[traffic.index[7], "grade"] = "Z"  # soft, and its column is not enforced
    result = served.monitors.backfill("credit", traffic, time_column=lending.TIME_COLUMN)
    assert (result.scored, result.refused, result.marked) == (49, 1, 0)
    [refused] = read_log(served.root, kind="refused", endpoint="credit").to_pylist()
    assert refused["version"] == version.version
    # The reasons are what refused it; the unseen grade alone would have been scored.
    assert json.loads(refused["reasons"]) == [
        {"column": "income", "rule": "max", "value": "10000000"}
    ]


def test_mistakes_are_named(served: Workspace) -> None:
    traffic = past_traffic().iloc[:50]
    with pytest.raises(UsageError, match="time_column 'when' is not a column"):
        served.monitors.backfill("credit", traffic, time_column="when")
    bad = traffic.assign(**{lending.TIME_COLUMN: ["yesterday"] * 50})
    with pytest.raises(InvalidDataError, match=r"50 value\(s\) that are not times"):
        served.monitors.backfill("credit", bad, time_column=lending.TIME_COLUMN)
    with pytest.raises(UsageError, match=r"'income' holds 50 value\(s\) that are not answers"):
        served.monitors.backfill(
            "credit", traffic, time_column=lending.TIME_COLUMN, prediction_column="income"
        )
    served.monitors.backfill("credit", traffic, time_column=lending.TIME_COLUMN)
    with pytest.raises(ConflictError, match="--force"):
        served.monitors.backfill("credit", traffic, time_column=lending.TIME_COLUMN)
    again = served.monitors.backfill("credit", traffic, time_column=lending.TIME_COLUMN, force=True)
    assert again.scored == 50


def test_the_answers_given_then_are_logged_as_they_were(served: Workspace) -> None:
    traffic = past_traffic().iloc[:100].assign(answered=[0, 1] * 50)
    result = served.monitors.backfill(
        "credit", traffic, time_column=lending.TIME_COLUMN, prediction_column="answered"
    )
    assert result.scored == 100
    logged = read_log(served.root, kind="predictions", endpoint="credit").to_pylist()
    assert [json.loads(r["outputs"]) for r in logged[:2]] == [{"prediction": 0}, {"prediction": 1}]


def test_a_backfill_that_died_half_way_is_not_repeated_silently(served: Workspace) -> None:
    traffic = past_traffic().iloc[:80]
    # A backfill began (its rows partly written) and its process died before the end.
    _begin(served, "credit", content_hash(to_table(traffic)), traffic.shape[0], force=False)
    with pytest.raises(ConflictError, match=r"began at .* and did not finish"):
        served.monitors.backfill("credit", traffic, time_column=lending.TIME_COLUMN)
    done = served.monitors.backfill("credit", traffic, time_column=lending.TIME_COLUMN, force=True)
    assert done.scored == 80
