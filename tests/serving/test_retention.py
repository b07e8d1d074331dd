"""Log retention: a deployment setting, a daily job, and `setpoint logs prune`."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from setpoint.cli.main import app
from setpoint.errors import UsageError
from setpoint.jobs import JobStore
from setpoint.loop.handlers import HANDLERS, SCHEDULES
from setpoint.serving.log import RecordLog, compact, read_log
from setpoint.serving.retention import JOB_KIND
from setpoint.worker import Worker
from setpoint.workspace import Workspace

NOW = dt.datetime(2026, 6, 1, 3, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)

RETENTION = {"retention": SCHEDULES["retention"]}  # not the hourly compaction


@pytest.fixture
def ws(workspace: Workspace) -> Workspace:
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"x": rng.normal(size=100)})
    data["y"] = (data["x"] > 0).astype(int)
    workspace.register_model(
        "clf", LogisticRegression().fit(data[["x"]], data["y"]), reference=data, target="y"
    )
    workspace.promote("clf", 1)
    workspace.deploy("credit", model="clf")
    workspace.deploy("fraud", model="clf")
    return workspace


def fill_logs(root: Path) -> None:
    """Each log of both endpoints: a record a day from 60 days before NOW up to NOW,
    and one exactly 30 days before it; older days compacted, the rest in segments."""
    times = [NOW - d * DAY for d in range(60, -1, -1)] + [NOW - 30 * DAY]
    for kind in ("predictions", "feedback", "refused"):
        with RecordLog(root, kind=kind) as log:
            log.append(
                [
                    record(kind, endpoint, n, ts)
                    for n, ts in enumerate(times)
                    for endpoint in ("credit", "fraud")
                    if ts < NOW - 40 * DAY
                ]
            )
        compact(root, kind=kind)
        with RecordLog(root, kind=kind) as log:
            log.append(
                [
                    record(kind, endpoint, n, ts)
                    for n, ts in enumerate(times)
                    for endpoint in ("credit", "fraud")
                    if ts >= NOW - 40 * DAY
                ]
            )


def record(kind: str, endpoint: str, n: int, ts: dt.datetime) -> dict[str, Any]:
    base = {"request_id": f"{endpoint}-{n}", "ts": ts, "endpoint": endpoint, "row": 0}
    if kind == "feedback":
        return {**base, "label": 1}
    secret = {"x": 0.5, "customer": f"customer-{n}"}
    if kind == "refused":
        return {**base, "inputs": secret, "reasons": [{"column": "x", "rule": "type"}]}
    return {**base, "model": "clf", "version": 1, "inputs": secret, "outputs": {"p": 0.5}}


def times(ws: Workspace, kind: str, endpoint: str) -> list[dt.datetime]:
    return read_log(ws.root, kind=kind, endpoint=endpoint).column("ts").to_pylist()


# ---------------------------------------------------------------------------- the setting


def test_log_retention_is_a_deployment_setting(ws: Workspace) -> None:
    assert ws.deployments.get("credit").config.log_retention is None  # kept by default
    revision = ws.deploy("credit", log_retention="90d", note="GDPR")
    assert revision.config.log_retention == "90d"
    (event, *_) = ws.audit(entity_type="endpoint", entity="credit")
    assert (event.action, event.after["log_retention"]) == ("deployment.update", "90d")
    assert ws.deploy("credit", no_log_retention=True).config.log_retention is None
    for bad in ("90", "0d", "30m", "90d\n", "3 weeks"):
        with pytest.raises(UsageError, match="--log-retention"):
            ws.deploy("credit", log_retention=bad)


def test_the_cli_sets_and_shows_the_retention(ws: Workspace) -> None:
    runner = CliRunner(env={"COLUMNS": "80"})
    result = runner.invoke(app, ["-w", str(ws.root), "deploy", "credit", "--log-retention", "30d"])
    assert result.exit_code == 0, result.output
    assert re.search(r"log retention +30d", result.output)
    result = runner.invoke(app, ["-w", str(ws.root), "deploy", "credit", "--log-retention", "30"])
    assert result.exit_code != 0
    assert "is not a span of time" in result.output
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------------- the job


@pytest.mark.parametrize("kind", ["predictions", "feedback", "refused"])
def test_the_job_removes_rows_older_than_the_retention_and_nothing_newer(
    ws: Workspace, kind: str
) -> None:
    fill_logs(ws.root)
    ws.deploy("credit", log_retention="30d")
    kept_elsewhere = read_log(ws.root, kind=kind, endpoint="fraud")
    newer = [ts for ts in times(ws, kind, "credit") if ts >= NOW - 30 * DAY]

    (job,) = Worker(ws, HANDLERS, schedules=RETENTION).drain(now=NOW)

    assert (job.kind, job.key, job.state) == (JOB_KIND, "credit:2026-06-01", "succeeded")
    assert times(ws, kind, "credit") == newer  # the one exactly 30 days old stays
    assert min(newer) == NOW - 30 * DAY
    assert read_log(ws.root, kind=kind, endpoint="fraud").equals(kept_elsewhere)
    assert job.result["logs"][kind]["rows_removed"] == 30


def test_every_run_is_audited_with_counts_not_values(ws: Workspace) -> None:
    fill_logs(ws.root)
    ws.deploy("credit", log_retention="30d")
    Worker(ws, HANDLERS, schedules=RETENTION).drain(now=NOW)

    (event,) = ws.audit(action="logs.prune")
    assert (event.entity_type, event.entity, event.actor) == ("endpoint", "credit", "tester")
    assert event.after["rows_removed"] == 90  # 30 days of three logs
    assert event.after["before"] == (NOW - 30 * DAY).isoformat()
    assert {k: v["rows_removed"] for k, v in event.after["logs"].items()} == {
        "predictions": 30,
        "feedback": 30,
        "refused": 30,
    }
    assert "customer" not in json.dumps(event.after)  # counts, not values
    assert "credit-" not in json.dumps(event.after)


def test_the_job_is_queued_once_a_day(ws: Workspace) -> None:
    ws.deploy("credit", log_retention="30d")
    worker = Worker(ws, HANDLERS, schedules=RETENTION)
    assert [j.key for j in worker.drain(now=NOW)] == ["credit:2026-06-01"]
    # another worker, later the same day: the same job, already done
    assert Worker(ws, HANDLERS, schedules=RETENTION).drain(now=NOW + dt.timedelta(hours=20)) == []
    assert [j.key for j in worker.drain(now=NOW + DAY)] == ["credit:2026-06-02"]
    # a worker that does not run retention jobs does not queue them
    Worker(ws, {"retrain": HANDLERS["retrain"]}, schedules=RETENTION).drain(now=NOW + 2 * DAY)
    assert len(JobStore(ws.db).list(kind=JOB_KIND)) == 2


def test_a_job_for_an_endpoint_whose_retention_was_removed_does_nothing(ws: Workspace) -> None:
    fill_logs(ws.root)
    ws.deploy("credit", log_retention="30d")
    JobStore(ws.db).enqueue(JOB_KIND, {"endpoint": "credit"}, key="credit:x", now=NOW)
    ws.deploy("credit", no_log_retention=True)
    before = read_log(ws.root, endpoint="credit")

    (job,) = Worker(ws, HANDLERS).drain(now=NOW)

    assert job.state == "succeeded"
    assert "no longer" in job.result["skipped"]
    assert read_log(ws.root, endpoint="credit").equals(before)


# ---------------------------------------------------------------------------- the CLI


def test_logs_prune_runs_it_now_and_a_dry_run_changes_nothing(ws: Workspace) -> None:
    fill_logs(ws.root)
    ws.deploy("credit", log_retention="30d")
    ws.deploy("fraud", log_retention="45d")
    runner = CliRunner(env={"COLUMNS": "80"})
    before = {k: read_log(ws.root, kind=k) for k in ("predictions", "feedback", "refused")}
    fraud_before = read_log(ws.root, endpoint="fraud")
    cutoff = dt.datetime.now(dt.UTC) - 30 * DAY
    expected = sum(ts < cutoff for ts in times(ws, "predictions", "credit"))

    dry = runner.invoke(app, ["-w", str(ws.root), "logs", "prune", "--dry-run", "--json"])

    assert dry.exit_code == 0, dry.output
    (credit, _fraud) = json.loads(dry.stdout)
    assert (credit["endpoint"], credit["dry_run"]) == ("credit", True)
    assert credit["logs"]["predictions"]["rows_removed"] == expected
    assert all(read_log(ws.root, kind=k).equals(t) for k, t in before.items())
    assert ws.audit(action="logs.prune") == []

    done = runner.invoke(app, ["-w", str(ws.root), "logs", "prune", "credit"])

    assert done.exit_code == 0, done.output
    assert "rows removed" in done.output
    assert all(len(line) <= 80 for line in done.output.splitlines())
    assert all(ts >= cutoff for ts in times(ws, "predictions", "credit"))
    assert read_log(ws.root, endpoint="fraud").equals(fraud_before)  # not named
    assert len(ws.audit(action="logs.prune")) == 1


def test_logs_prune_of_an_endpoint_without_retention_says_how_to_set_one(ws: Workspace) -> None:
    result = CliRunner().invoke(app, ["-w", str(ws.root), "logs", "prune", "credit"])
    assert result.exit_code != 0
    assert "setpoint deploy credit --log-retention 90d" in result.output
    assert "Traceback" not in result.output
    nothing = CliRunner().invoke(app, ["-w", str(ws.root), "logs", "prune"])
    assert nothing.exit_code == 0, nothing.output
    assert "No endpoint has a log retention" in nothing.output
