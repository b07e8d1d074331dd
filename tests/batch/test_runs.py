"""Scoring runs as records: written at the start, finished at the end, audited."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from test_score import classifier, inputs

from setpoint.batch.runs import RunCounts, runner
from setpoint.errors import NotFoundError
from setpoint.store.schema import scoring_runs
from setpoint.workspace import Workspace


def test_a_run_is_recorded_with_its_inputs_counts_and_quarantine(
    workspace: Workspace, tmp_path: Path
) -> None:
    ref = classifier(workspace)
    rows = inputs(30)
    rows.loc[[4], "x1"] = np.nan
    first, second = tmp_path / "a.csv", tmp_path / "b.parquet"
    rows.to_csv(first, index=False)
    inputs(12, seed=5).to_parquet(second, index=False)
    out = tmp_path / "out.parquet"
    run = workspace.predict_files(ref, [first, second], out)
    assert run.id is not None
    recorded = workspace.scoring_runs.get(run.id)
    assert recorded.ref == "clf@1"
    assert recorded.endpoint is None
    assert recorded.engine == "local"
    assert recorded.state == "succeeded"
    assert recorded.error is None
    assert (recorded.n_rows, recorded.n_scored, recorded.n_quarantined) == (42, 41, 1)
    assert recorded.quarantine == [q.id for q in run.quarantine] != []
    assert recorded.output == str(out)
    assert recorded.created_by == "tester"
    assert recorded.finished_at is not None
    assert recorded.finished_at >= recorded.started_at
    assert [i["uri"] for i in recorded.inputs] == [str(first), str(second)]
    for given, path in zip(recorded.inputs, (first, second), strict=True):
        assert given["size"] == path.stat().st_size
        assert given["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert run.to_dict()["id"] == run.id
    actions = [e.action for e in workspace.audit(entity_type="model", entity="clf@1")]
    assert actions[:2] == ["scoring.finish", "scoring.start"]


def test_a_failed_run_says_failed_with_the_error(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from setpoint.batch import score

    ref = classifier(workspace)
    source = tmp_path / "in.csv"
    inputs(20).to_csv(source, index=False)

    def failing(predictor: object, rows: pa.Table) -> pa.Table:
        raise RuntimeError("the model broke")

    monkeypatch.setattr(score, "score_table", failing)
    with pytest.raises(RuntimeError, match="the model broke"):
        workspace.predict_files(ref, source, tmp_path / "out.csv")
    [recorded] = workspace.scoring_runs.list()
    assert recorded.state == "failed"
    assert recorded.error == "RuntimeError: the model broke"
    assert recorded.finished_at is not None
    assert workspace.audit(entity_type="model")[0].action == "scoring.fail"


def test_a_mistake_before_scoring_records_no_run(workspace: Workspace, tmp_path: Path) -> None:
    ref = classifier(workspace)
    with pytest.raises(Exception, match="no such file"):
        workspace.predict_files(ref, tmp_path / "missing.csv", tmp_path / "out.csv")
    assert workspace.scoring_runs.list() == []


def test_a_run_whose_process_died_stays_running_and_says_so(workspace: Workspace) -> None:
    classifier(workspace)
    runs = workspace.scoring_runs
    run_id = runs.start(
        model="clf", version=1, endpoint=None, engine="local", inputs=[], output="o.csv"
    )
    alive = runs.get(run_id)
    assert alive.state == "running"
    assert alive.runner == runner()
    assert not alive.orphaned  # this very process
    host = runner().rpartition(":")[0]
    gone = _pid_not_running()
    with workspace.db.write() as conn:
        conn.execute(
            scoring_runs.update().where(scoring_runs.c.id == run_id).values(runner=f"{host}:{gone}")
        )
    dead = runs.get(run_id)
    assert dead.state == "running"
    assert dead.orphaned
    assert dead.to_dict()["orphaned"] is True
    finished = runs.finish(run_id, RunCounts(n_rows=3, n_scored=3))
    assert finished.state == "succeeded"
    assert not finished.orphaned


def _pid_not_running() -> int:
    pid = 4_000_000  # above Linux's pid_max
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1


def test_runs_are_listed_newest_first_and_filtered(workspace: Workspace, tmp_path: Path) -> None:
    ref = classifier(workspace)
    data = pd.DataFrame({"x1": [0.1, 0.2], "x2": [1.0, 2.0]})
    source = tmp_path / "in.csv"
    data.to_csv(source, index=False)
    first = workspace.predict_files(ref, source, tmp_path / "one.csv")
    second = workspace.predict_files(ref, source, tmp_path / "two.csv")
    listed = workspace.scoring_runs.list()
    assert [r.id for r in listed] == [second.id, first.id]
    assert workspace.scoring_runs.list(model="clf", version=1, limit=1)[0].id == second.id
    assert workspace.scoring_runs.list(model="other") == []
    assert workspace.scoring_runs.count("clf", 1) == 2
    with pytest.raises(NotFoundError, match="setpoint scoring list"):
        workspace.scoring_runs.get(999)
