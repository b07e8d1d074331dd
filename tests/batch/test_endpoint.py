"""Scoring through an endpoint: its serving version scores, the rows go to its logs,
and ``monitor run`` counts them as it counts online traffic."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression
from test_score import classifier, inputs, reference

from setpoint.errors import NotFoundError, UsageError
from setpoint.monitoring.settings import MonitorConfig
from setpoint.serving._logtables import read_log
from setpoint.workspace import Workspace


@pytest.fixture
def served(workspace: Workspace) -> Workspace:
    """``clf`` with two versions, the first champion, served by endpoint ``scores``."""
    classifier(workspace)
    data = reference(seed=3)
    second = LogisticRegression(C=0.01).fit(data[["x1", "x2"]], data["y"])
    workspace.register_model("clf", second, reference=data, target="y")
    workspace.promote("clf", 1)
    workspace.deploy("scores", model="clf@champion")
    return workspace


def test_an_endpoint_scores_with_its_champion_and_logs_each_row(
    served: Workspace, tmp_path: Path
) -> None:
    rows = inputs(300)
    rows.loc[[7, 8, 9], "x1"] = np.nan  # refused: x1 may not be null
    rows.insert(0, "x0", 1.0)  # not a feature: not logged
    source = tmp_path / "in.csv"
    rows.drop(columns="x0").to_csv(source, index=False)
    before = datetime.now(UTC)
    run = served.predict_files("scores", source, tmp_path / "out.parquet", block_size=2_000)
    after = datetime.now(UTC)
    assert run.endpoint == "scores"
    assert run.model == "clf@1"  # the champion, not the latest
    assert (run.n_scored, run.n_quarantined) == (297, 3)
    recorded = served.scoring_runs.get(run.id or 0)
    assert (recorded.endpoint, recorded.ref) == ("scores", "clf@1")
    assert [r.id for r in served.scoring_runs.list(endpoint="scores")] == [run.id]
    assert served.scoring_runs.list(endpoint="other") == []

    logged = read_log(served.root, kind="predictions", endpoint="scores")
    assert logged.num_rows == 297
    assert set(logged["model"].to_pylist()) == {"clf"}
    assert set(logged["version"].to_pylist()) == {1}
    assert set(logged["route"].to_pylist()) == {"champion"}
    assert set(logged["source"].to_pylist()) == {json.dumps("batch")}
    assert set(logged["scoring_run"].to_pylist()) == {str(run.id)}
    stamps = logged["ts"].to_pylist()
    assert all(before <= ts <= after for ts in stamps)
    scored = pq.read_table(tmp_path / "out.parquet").to_pandas()
    first = json.loads(logged["inputs"][0].as_py())
    assert first == {"x1": scored["x1"][0], "x2": scored["x2"][0]}
    outputs = [json.loads(o) for o in logged["outputs"].to_pylist()]
    assert [o["prediction"] for o in outputs] == scored["prediction"].tolist()
    assert np.allclose(
        [o["probabilities"] for o in outputs], scored[["proba_no", "proba_yes"]].to_numpy()
    )
    keys = set(zip(logged["request_id"].to_pylist(), logged["row"].to_pylist(), strict=True))
    assert len(keys) == 297  # each row its own (request, row), for feedback to join on

    refused = read_log(served.root, kind="refused", endpoint="scores")
    assert sorted(refused["row"].to_pylist()) == [7, 8, 9]
    assert all("x1" in text for text in refused["reasons"].to_pylist())


def test_monitor_run_counts_batch_traffic_as_online_traffic(
    served: Workspace, tmp_path: Path
) -> None:
    rows = inputs(400)
    rows.loc[[0, 1], "x2"] = np.nan
    source = tmp_path / "in.parquet"
    rows.to_parquet(source, index=False)
    run = served.predict_files("scores", source, tmp_path / "out.csv")
    config = MonitorConfig(window="1d", multivariate=False)
    served.monitors.create("scores", config, reference="clf-reference@1")
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    windows = served.monitors.run("scores", until=tomorrow)
    assert sum(w.n_rows for w in windows) == run.n_scored == 398
    quality = windows[-1].results["quality"]
    assert quality["volume"] == 398
    assert quality["contract"]["refused"] == quality["rejected"] == 2  # the refused log


def test_a_name_that_is_both_a_model_and_an_endpoint_is_refused_with_the_fix(
    served: Workspace, tmp_path: Path
) -> None:
    served.deploy("clf", model="clf@2")
    source = tmp_path / "in.csv"
    inputs(20).to_csv(source, index=False)
    with pytest.raises(UsageError, match=r"both a model and an endpoint.*models:/clf@.*--endpoint"):
        served.predict_files("clf", source, tmp_path / "out.csv")
    as_model = served.predict_files("clf@2", source, tmp_path / "a.csv")
    assert (as_model.model, as_model.endpoint) == ("clf@2", None)
    as_endpoint = served.predict_files("clf", source, tmp_path / "b.csv", endpoint=True)
    assert (as_endpoint.model, as_endpoint.endpoint) == ("clf@2", "clf")
    assert read_log(served.root, kind="predictions", endpoint="clf").num_rows == 20
    as_model_again = served.predict_files("clf", source, tmp_path / "c.csv", endpoint=False)
    assert as_model_again.endpoint is None


def test_a_model_alone_logs_nothing(served: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    inputs(10).to_csv(source, index=False)
    run = served.predict_files("clf", source, tmp_path / "out.csv")
    assert run.endpoint is None
    assert read_log(served.root, kind="predictions", endpoint="scores").num_rows == 0


def test_a_name_of_nothing_says_so(served: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    inputs(5).to_csv(source, index=False)
    with pytest.raises(NotFoundError, match="neither a model nor an endpoint"):
        served.predict_files("nothing", source, tmp_path / "out.csv")
    with pytest.raises(NotFoundError, match="no endpoint 'clf'"):
        served.predict_files("clf", source, tmp_path / "out.csv", endpoint=True)


def test_a_csv_read_again_is_logged_once(served: Workspace, tmp_path: Path) -> None:
    rows = inputs(400)
    rows["x2"] = rows["x2"].round().astype(int)
    lines = rows.to_csv(index=False).splitlines()
    lines[-1] = lines[-1].split(",")[0] + ",2.5"  # an integer column meets a float, late
    source = tmp_path / "in.csv"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = served.predict_files("scores", source, tmp_path / "out.csv", block_size=1_000)
    assert run.n_scored == 400
    logged = read_log(served.root, kind="predictions", endpoint="scores")
    assert logged.num_rows == 400
    xs = [json.loads(t)["x1"] for t in logged["inputs"].to_pylist()]
    assert np.allclose(xs, pd.read_csv(tmp_path / "out.csv")["x1"])


def test_a_row_outside_the_ranges_is_scored_and_marked_as_online(
    served: Workspace, tmp_path: Path
) -> None:
    rows = inputs(100)
    rows.loc[[10, 60], "x2"] = 50.0  # beyond what the model saw: a soft rule, scored
    rows.loc[[30], "x1"] = np.nan  # refused
    source = tmp_path / "in.parquet"
    rows.to_parquet(source, index=False)
    run = served.predict_files("scores", source, tmp_path / "out.parquet", block_size=1_000)
    assert (run.n_scored, run.n_quarantined) == (99, 1)
    logged = read_log(served.root, kind="predictions", endpoint="scores")
    marks = logged["violations"].to_pylist()
    marked = [i for i, m in enumerate(marks) if m is not None]
    assert marked == [10, 59]  # row 30 refused: the rows after it move up one
    assert json.loads(marks[10]) == [{"column": "x2", "rule": "max"}]
    config = MonitorConfig(window="1d", multivariate=False)
    served.monitors.create("scores", config, reference="clf-reference@1")
    [window] = served.monitors.run("scores", until=datetime.now(UTC) + timedelta(days=1))
    assert window.results["quality"]["contract"]["scored"] == 2


def test_another_engine_records_the_same_run_and_log_through_the_steps(
    served: Workspace, tmp_path: Path
) -> None:
    """What the Ray engine calls: prepare, the run's recording, score_table, the log."""
    from setpoint.batch.score import endpoint_log, prepare, score_table

    source = tmp_path / "in.parquet"
    inputs(30).to_parquet(source, index=False)
    job = prepare(served, "scores", source, tmp_path / "out.parquet")
    assert (job.ref, job.endpoint, job.paths, job.target) == (
        "clf@1",
        "scores",
        [source],
        tmp_path / "out.parquet",
    )
    with job.recording("ray") as (run_id, counts):
        log = endpoint_log(served, "scores", job.scoring, run_id)
        log.begin_file(0)
        scored = score_table(job.predictor, pq.read_table(source))
        log.append(scored)
        log.close()
        counts.n_rows = counts.n_scored = scored.num_rows
    recorded = served.scoring_runs.get(run_id)
    assert (recorded.engine, recorded.state, recorded.n_scored) == ("ray", "succeeded", 30)
    logged = read_log(served.root, kind="predictions", endpoint="scores")
    assert set(logged["scoring_run"].to_pylist()) == {str(run_id)}
    assert logged.num_rows == 30
