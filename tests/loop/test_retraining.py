"""The retraining job: a candidate from the log joined with feedback, exactly once even
when the worker dies, and never promoted when it is worse than the champion."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from setpoint.demo import lending
from setpoint.errors import ConflictError
from setpoint.jobs import JobStore, LeaseLostError
from setpoint.loop import retrain
from setpoint.loop.controller import Loop
from setpoint.loop.handlers import HANDLERS
from setpoint.loop.policy import Policy
from setpoint.loop.rollouts import Rollout
from setpoint.models.spec import TrainSpec
from setpoint.serving.log import RecordLog
from setpoint.worker import Worker
from setpoint.workspace import Workspace

START = datetime(2026, 1, 1, tzinfo=UTC)
CHANGE = datetime(2026, 4, 2, tzinfo=UTC)
POLICY = """\
triggers: [{drift_share: 0.3}]
actions: [retrain, shadow, promote]
retrain: {min_rows: 1000}
gates: {metrics: {roc_auc: {min_delta: 0.0}}, min_samples: 200}
"""
SPEC: dict[str, Any] = {
    "model": "credit-risk",
    "dataset": "loans@latest",
    "target": lending.TARGET,
    "exclude": [lending.TIME_COLUMN],
    "estimator": {
        "class": "sklearn.ensemble.HistGradientBoostingClassifier",
        "params": {"max_iter": 60},
    },
    "split": {"method": "time", "time_column": lending.TIME_COLUMN, "test_size": 0.2},
    "seed": 3,
}


@pytest.fixture
def waiting(workspace: Workspace) -> tuple[Workspace, Rollout]:
    """A champion serving `credit`, two weeks of changed traffic answered and labelled,
    and a rollout asking for a retraining job."""
    workspace.add_dataset("loans", lending.applications(4_000, start=START, days=90, seed=1))
    champion = workspace.train(SPEC)
    workspace.promote(champion.name, champion.version)
    workspace.deploy("credit", model="credit-risk")
    changed = lending.applications(
        2_000, start=CHANGE, days=14, drift=lending.Drift(CHANGE, 1.0, 1.0), seed=2
    )
    _answer_and_label(workspace, changed, labelled_at=CHANGE + timedelta(days=15))
    loop = Loop(workspace)
    loop.policies.set("credit", Policy.from_yaml(POLICY))
    rollout, _ = loop.rollouts.open(
        "credit",
        "window:test",
        trigger={"message": "test", "since": CHANGE.isoformat()},
        champion=champion.ref,
        mode="shadow",
        data_since=CHANGE,
        now=CHANGE + timedelta(days=15),
    )
    rollout = loop.advance(rollout, CHANGE + timedelta(days=15))
    assert rollout.state == "retraining", rollout.reason
    return workspace, rollout


NOW = CHANGE + timedelta(days=15)

_DYING_WORKER = """\
import os, signal, sys
from datetime import datetime
from setpoint.loop import retrain
from setpoint.loop.handlers import HANDLERS
from setpoint.worker import Worker
from setpoint.workspace import Workspace

where = sys.argv[3]
if where == "after_registering":
    real = retrain.train_candidate
    def train_candidate(*args, **kwargs):
        real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)  # registered, not yet reported
    retrain.train_candidate = train_candidate
else:
    real_train = Workspace.train
    def train(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)  # in the middle of training
    Workspace.train = train
with Workspace.open(sys.argv[1]) as ws:
    Worker(ws, HANDLERS, name="doomed").drain(now=datetime.fromisoformat(sys.argv[2]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", ["while_training", "after_registering"])
def test_a_killed_worker_s_job_is_retried_and_registers_one_version(
    waiting: tuple[Workspace, Rollout], where: str
) -> None:
    ws, rollout = waiting
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(_DYING_WORKER),
            str(ws.root),
            NOW.isoformat(),
            where,
        ],
        env=_env(ws),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == -9, done.stderr[-2000:]
    jobs = JobStore(ws.db)
    assert rollout.job_id is not None
    job = jobs.get(rollout.job_id)
    assert (job.state, job.attempts, job.worker) == ("running", 1, "doomed")
    versions_after_death = len(ws.registry.versions("credit-risk"))
    assert versions_after_death == (2 if where == "after_registering" else 1)

    # Nothing takes it while the dead worker's lease lasts; then another worker does.
    assert Worker(ws, HANDLERS, name="early").run_once(now=NOW + timedelta(seconds=30)) is None
    finished = Worker(ws, HANDLERS, name="survivor").drain(now=NOW + timedelta(minutes=10))

    assert [(j.id, j.state, j.attempts) for j in finished] == [(job.id, "succeeded", 2)]
    assert any("taken over" in line["message"] for line in jobs.get(job.id).log)
    versions = ws.registry.versions("credit-risk")
    assert [v.version for v in versions] == [1, 2]  # exactly one candidate
    assert versions[1].lineage["job"] == f"retrain:{job.key}"
    after = Loop(ws).rollouts.get(rollout.id)
    assert (after.state, after.candidate) == ("shadow", "credit-risk@2")
    assert ws.model("credit-risk@challenger").version == 2


def test_a_stale_attempt_registers_nothing(waiting: tuple[Workspace, Rollout]) -> None:
    ws, rollout = waiting
    jobs = JobStore(ws.db)
    stale = jobs.claim("stale", now=NOW)
    assert stale is not None
    jobs.claim("successor", now=NOW + timedelta(minutes=10))  # the lease ran out: taken over
    champion = ws.model("credit-risk@champion")
    data = retrain.training_set(ws, "credit", champion, since=CHANGE, until=NOW)
    dataset, _ = retrain.register_training_set(ws, "credit", champion, data, "retrain:stale")
    with pytest.raises(LeaseLostError):
        retrain.train_candidate(
            ws, champion, dataset, "retrain:stale", guard=lambda conn: jobs.hold(conn, stale)
        )
    assert [v.version for v in ws.registry.versions("credit-risk")] == [1]
    assert rollout.state == "retraining"


def test_a_worse_candidate_is_never_promoted(
    waiting: tuple[Workspace, Rollout], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, rollout = waiting
    real = retrain.champion_spec

    def worse(version: Any) -> Any:  # the test forces a model that knows nothing
        dummy = {"estimator": "sklearn.dummy.DummyClassifier"}
        return TrainSpec.read(real(version).to_dict() | dummy)

    monkeypatch.setattr(retrain, "champion_spec", worse)
    loop = Loop(ws)
    report = loop.tick(NOW)

    after = loop.rollouts.get(rollout.id)
    assert after.state == "rejected"
    assert after.reason is not None
    assert "gates failed" in after.reason
    assert "roc_auc" in after.reason
    gates = after.gates or {}
    assert gates["passed"] is False
    failed = [c for c in gates["checks"] if not c["passed"]]
    assert any(c["name"] == "roc_auc" for c in failed)
    assert ws.model("credit-risk@champion").version == 1
    assert ws.deployments.get("credit").config.challenger is None
    rejected = ws.audit(entity_type="rollout", entity=str(rollout.id), action="rollout.rejected")
    assert len(rejected) == 1
    assert "roc_auc" in rejected[0].after["reason"]
    assert f"rollout {rollout.id}: retraining -> rejected" in report.moves
    # More ticks change nothing: a rejected candidate stays rejected.
    loop.tick(NOW + timedelta(days=7))
    assert ws.model("credit-risk@champion").version == 1


def _answer_and_label(
    ws: Workspace, frame: pd.DataFrame, *, labelled_at: datetime, prefix: str = "r"
) -> None:
    """Log the champion's answers to ``frame`` at the rows' times, then their labels."""
    model = ws.load_model("credit-risk@champion")
    features = frame.drop(columns=[lending.TARGET, lending.TIME_COLUMN])
    proba = model.predict_proba(features)
    assert proba is not None
    predictions, feedback = [], []
    for i, (row, when, label) in enumerate(
        zip(
            features.to_dict(orient="records"),
            frame[lending.TIME_COLUMN],
            frame[lending.TARGET],
            strict=True,
        )
    ):
        request_id = f"{prefix}{i}"
        predictions.append(
            {
                "request_id": request_id,
                "row": 0,
                "ts": when.floor("us").to_pydatetime(),
                "endpoint": "credit",
                "model": "credit-risk",
                "version": 1,
                "route": "champion",
                "inputs": {
                    k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()
                },
                "outputs": {
                    "prediction": int(proba[i, 1] >= 0.5),
                    "probabilities": proba[i].tolist(),
                },
                "latency_ms": 2.0,
                "cached": False,
                "fallback": False,
            }
        )
        feedback.append(
            {
                "request_id": request_id,
                "row": 0,
                "ts": labelled_at,
                "endpoint": "credit",
                "label": int(label),
            }
        )
    for kind, records in (("predictions", predictions), ("feedback", feedback)):
        log = RecordLog(ws.root, kind=kind)
        log.append(records)
        log.close()


def _env(ws: Workspace) -> dict[str, str]:
    import os

    env = dict(os.environ)
    if ws.settings.database_url:
        env["SETPOINT_DATABASE_URL"] = ws.settings.database_url
    return env


@pytest.mark.slow
def test_setpoint_serve_runs_the_retraining_beside_the_server(
    waiting: tuple[Workspace, Rollout], tmp_path: Path
) -> None:
    import contextlib
    import signal
    import socket
    import time

    ws, rollout = waiting
    assert rollout.job_id is not None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    errors = tmp_path / "serve.err"
    with errors.open("wb") as sink:
        process = subprocess.Popen(
            [
                *(sys.executable, "-c", "from setpoint.cli import main; main()"),
                *("-w", str(ws.root), "serve", "--port", str(port)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    jobs = JobStore(ws.db)
    try:
        deadline = time.monotonic() + 180
        while jobs.get(rollout.job_id).state != "succeeded":
            assert time.monotonic() < deadline, errors.read_text()
            assert process.poll() is None, errors.read_text()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.2)  # waits on the server (it must not exit), else polls
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    after = Loop(ws).rollouts.get(rollout.id)
    assert (after.state, after.candidate) == ("shadow", "credit-risk@2")
    assert ws.deployments.get("credit").config.challenger == "credit-risk@2"


def test_data_that_legitimately_changed_becomes_a_contract_proposal(
    waiting: tuple[Workspace, Rollout],
) -> None:
    ws, rollout = waiting
    more = lending.applications(60, start=CHANGE + timedelta(days=13), days=1, seed=9)
    more["home_ownership"] = "council"  # a kind of tenure the contract never saw
    more["income"] = 2_000_000.0  # past the largest income in the training data
    _answer_and_label(ws, more, labelled_at=NOW, prefix="late")
    broken = lending.applications(5, start=CHANGE + timedelta(days=13), days=1, seed=10)
    broken["term"] = None  # a value the model cannot be scored without: a hard rule
    _answer_and_label(ws, broken, labelled_at=NOW, prefix="broken")
    loop = Loop(ws)
    loop.tick(NOW)

    after = loop.rollouts.get(rollout.id)
    proposal = after.contract_proposal
    assert proposal is not None
    assert proposal["against"] == "loans@1"
    assert any("home_ownership: new category council" in c for c in proposal["changes"])
    assert any(c.startswith("income: max") for c in proposal["changes"])
    assert {v["column"] for v in proposal["violations"]} >= {"home_ownership", "income"}
    # The new world is trained on; only the rows that cannot be scored are set aside.
    assert proposal["quarantine"]["n_rejected"] == 5
    assert {s["rule"] for s in proposal["quarantine"]["summary"]} == {"not_null"}
    assert after.dataset is not None
    trained_on = ws.load_dataset(after.dataset)
    assert trained_on.num_rows == 2_060
    assert trained_on.column("home_ownership").to_pylist().count("council") == 60
    assert "council" not in (ws.contract("loans@1").columns["home_ownership"].categories or ())

    accepted = loop.decisions.accept_contract(after, actor="reviewer")
    assert accepted.contract_proposal is not None
    assert accepted.contract_proposal["accepted_by"] == "reviewer"
    contract = ws.contract("loans@1")
    assert "council" in (contract.columns["home_ownership"].categories or ())
    assert (contract.columns["income"].max or 0) >= 2_000_000.0
    with pytest.raises(ConflictError, match="already accepted"):
        loop.decisions.accept_contract(accepted, actor="reviewer")


def test_a_rollout_the_loop_cannot_take_further_fails_and_leaves_the_endpoint(
    waiting: tuple[Workspace, Rollout],
) -> None:
    ws, rollout = waiting
    loop = Loop(ws)
    loop.tick(NOW)
    assert loop.rollouts.get(rollout.id).state == "shadow"
    assert ws.deployments.get("credit").config.challenger == "credit-risk@2"
    loop.policies.remove("credit")  # a person took the policy away mid-rollout

    report = loop.tick(NOW + timedelta(days=1))
    after = loop.rollouts.get(rollout.id)
    assert after.state == "failed"
    assert after.reason is not None
    assert "no policy" in after.reason
    assert f"rollout {rollout.id}: shadow -> failed" in report.moves
    assert ws.deployments.get("credit").config.challenger is None
    assert ws.model("credit-risk@champion").version == 1


def test_the_training_set_is_the_labelled_traffic_with_or_without_the_original_data(
    waiting: tuple[Workspace, Rollout],
) -> None:
    ws, _ = waiting
    champion = ws.model("credit-risk@champion")
    alone = retrain.training_set(ws, "credit", champion, since=CHANGE, until=NOW)
    assert (alone.from_log, alone.from_original) == (2_000, 0)
    table = alone.table
    assert set(table.column_names) == set(champion.contract["columns"]) | {
        lending.TARGET,
        lending.TIME_COLUMN,
    }
    assert table.column("age").type == "int64"  # whole numbers from JSON are integers again
    assert table.column(lending.TARGET).null_count == 0
    first_week = retrain.training_set(
        ws, "credit", champion, since=CHANGE, until=CHANGE + timedelta(days=7)
    )
    assert 800 < first_week.from_log < 1_200  # half of two weeks

    both = retrain.training_set(
        ws, "credit", champion, since=CHANGE, until=NOW, include_original=True
    )
    assert (both.from_log, both.from_original) == (2_000, 4_000)
    assert both.table.num_rows == 6_000
