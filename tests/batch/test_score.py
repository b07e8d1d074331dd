"""Batch scoring with the local engine: outputs, quarantine, order, formats, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from setpoint.errors import InvalidDataError, NotFoundError, SetpointError, UsageError
from setpoint.workspace import Workspace


def reference(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.uniform(0, 10, n)})
    data["y"] = np.where(data.x1 + data.x2 / 5 > 1, "yes", "no")
    return data


def classifier(ws: Workspace) -> str:
    data = reference()
    model = LogisticRegression().fit(data[["x1", "x2"]], data["y"])
    return ws.register_model("clf", model, reference=data, target="y").ref


def inputs(n: int = 50, seed: int = 1) -> pd.DataFrame:
    """Rows inside the contract's ranges (x1 within the reference's, x2 in 0..10)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x1": rng.uniform(-1.5, 1.5, n), "x2": rng.uniform(0, 9.5, n)})


def test_the_output_holds_each_row_with_the_predictors_answers(
    workspace: Workspace, tmp_path: Path
) -> None:
    ref = classifier(workspace)
    rows = inputs(300)
    source = tmp_path / "in.csv"
    rows.to_csv(source, index=False)
    out = tmp_path / "out.parquet"
    run = workspace.predict_files(ref, source, out, block_size=2_000)  # several batches
    scored = pq.read_table(out).to_pandas()
    predictor = workspace.load_model(ref)
    assert scored["prediction"].tolist() == predictor.predict(rows).tolist()
    proba = predictor.predict_proba(rows)
    assert proba is not None
    assert np.allclose(scored[["proba_no", "proba_yes"]].to_numpy(), proba)
    assert np.allclose(scored[["x1", "x2"]].to_numpy(), rows.to_numpy())  # order kept
    assert (run.n_rows, run.n_scored, run.n_quarantined) == (300, 300, 0)
    assert run.n_batches > 1
    assert run.model == "clf@1"
    assert run.quarantine == []
    as_dict = run.to_dict()
    json.dumps(as_dict)
    assert as_dict["n_scored"] == 300


def test_rows_breaking_the_contract_are_quarantined_not_scored(
    workspace: Workspace, tmp_path: Path
) -> None:
    ref = classifier(workspace)
    rows = inputs(20)
    rows.loc[[3, 11], "x1"] = np.nan  # x1 may not be null
    source = tmp_path / "in.parquet"
    rows.to_parquet(source, index=False)
    out = tmp_path / "out.csv"
    run = workspace.predict_files(ref, source, out)
    assert (run.n_rows, run.n_scored, run.n_quarantined) == (20, 18, 2)
    scored = pd.read_csv(out)
    kept = rows.drop(index=[3, 11])
    assert np.allclose(scored["x1"], kept["x1"])
    assert scored["prediction"].tolist() == workspace.load_model(ref).predict(kept).tolist()
    [batch] = run.quarantine
    assert batch.n_rejected == 2
    assert batch.source == str(source)
    held = workspace.quarantine.rows(batch.id).to_pandas()
    assert held["_row"].tolist() == [3, 11]
    assert all("x1" in reasons for reasons in held["_reasons"])


def test_a_glob_of_two_files_is_scored_in_order(workspace: Workspace, tmp_path: Path) -> None:
    ref = classifier(workspace)
    first, second = inputs(30, seed=2), inputs(40, seed=3)
    first.to_csv(tmp_path / "part-1.csv", index=False)
    second.to_parquet(tmp_path / "part-2.parquet", index=False)
    out = tmp_path / "out.csv"
    run = workspace.predict_files(ref, str(tmp_path / "part-*"), out, workers=2)
    assert run.inputs == [str(tmp_path / "part-1.csv"), str(tmp_path / "part-2.parquet")]
    scored = pd.read_csv(out)
    both = pd.concat([first, second], ignore_index=True)
    assert np.allclose(scored[["x1", "x2"]].to_numpy(), both.to_numpy())
    assert scored["prediction"].tolist() == workspace.load_model(ref).predict(both).tolist()
    assert run.n_scored == 70


def test_a_regressor_gets_a_prediction_column_only(workspace: Workspace, tmp_path: Path) -> None:
    data = reference()
    data["y"] = data.x1 * 2 + data.x2
    model = LinearRegression().fit(data[["x1", "x2"]], data["y"])
    ref = workspace.register_model("reg", model, reference=data, target="y").ref
    rows = inputs(25)
    source = tmp_path / "in.parquet"
    rows.to_parquet(source, index=False)
    out = tmp_path / "out.parquet"
    workspace.predict_files(ref, source, out, workers=1)
    scored = pq.read_table(out)
    assert scored.column_names == ["x1", "x2", "prediction"]
    expected = workspace.load_model(ref).predict(rows)
    assert np.allclose(scored.column("prediction").to_numpy(), expected)


def test_the_worker_count_does_not_change_the_output(workspace: Workspace, tmp_path: Path) -> None:
    ref = classifier(workspace)
    source = tmp_path / "in.csv"
    inputs(500).to_csv(source, index=False)
    one, four = tmp_path / "one.parquet", tmp_path / "four.parquet"
    workspace.predict_files(ref, source, one, workers=1, block_size=1_000)
    workspace.predict_files(ref, source, four, workers=4, block_size=1_000)
    assert pq.read_table(one).equals(pq.read_table(four))


@pytest.mark.parametrize(
    ("model", "given", "output", "error", "message"),
    [
        ("clf@1", "missing.csv", "out.csv", UsageError, "no such file"),
        ("clf@1", "nothing-*.csv", "out.csv", UsageError, "no file matches"),
        ("clf@1", "in.txt", "out.csv", UsageError, "unsupported file type"),
        ("clf@1", "in.csv", "out.json", UsageError, ".csv or .parquet"),
        ("clf@1", "in.csv", "nowhere/out.csv", UsageError, "does not exist"),
        ("nope@1", "in.csv", "out.csv", NotFoundError, "nope"),
        ("clf@1", "bad.csv", "out.csv", InvalidDataError, "as many fields as the header"),
        ("clf@1", "in.csv", "in.csv", UsageError, "also an input"),
        ("clf@1", "folder*", "out.csv", UsageError, "no file matches"),
    ],
)
def test_bad_inputs_are_refused_with_a_clear_error(
    workspace: Workspace,
    tmp_path: Path,
    model: str,
    given: str,
    output: str,
    error: type[SetpointError],
    message: str,
) -> None:
    classifier(workspace)
    inputs(5).to_csv(tmp_path / "in.csv", index=False)
    (tmp_path / "in.txt").write_text("x1,x2\n1,2\n", encoding="utf-8")
    (tmp_path / "bad.csv").write_text("x1,x2\n1,2\n1,2,3\n", encoding="utf-8")
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(error, match=message.replace(".", r"\.").replace("*", r"\*")):
        workspace.predict_files(model, str(tmp_path / given), tmp_path / output)
    assert output == given or not (tmp_path / output).exists()


def test_a_file_missing_a_feature_is_refused_whole(workspace: Workspace, tmp_path: Path) -> None:
    ref = classifier(workspace)
    source = tmp_path / "in.csv"
    inputs(5)[["x1"]].to_csv(source, index=False)
    with pytest.raises(SetpointError, match="x2"):
        workspace.predict_files(ref, source, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("n_files", [1, 2])
def test_a_csv_read_again_for_wider_types_is_written_once(
    workspace: Workspace, tmp_path: Path, n_files: int
) -> None:
    ref = classifier(workspace)
    rows = inputs(400)
    rows["x2"] = rows["x2"].round().astype(int)
    body = rows.to_csv(index=False)
    lines = body.splitlines()
    lines[-1] = lines[-1].split(",")[0] + ",2.5"  # an integer column meets a float, late
    rows["x2"] = rows["x2"].astype(float)
    rows.loc[rows.index[-1], "x2"] = 2.5
    for i in range(n_files):
        (tmp_path / f"in-{i}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.parquet"
    run = workspace.predict_files(ref, str(tmp_path / "in-*.csv"), out, block_size=1_000)
    scored = pq.read_table(out).to_pandas()
    assert run.n_rows == run.n_scored == 400 * n_files
    expected = pd.concat([rows] * n_files, ignore_index=True)
    assert np.allclose(scored[["x1", "x2"]].to_numpy(), expected.to_numpy())
    assert not list(tmp_path.glob(".*"))  # no part left behind


def model_breaks_on_the_third_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scoring raises ``RuntimeError("the model broke")`` on its third batch."""
    from setpoint.batch import score

    calls: list[int] = []
    real = score.score_table

    def failing(predictor: object, rows: pa.Table) -> pa.Table:
        calls.append(rows.num_rows)
        if len(calls) == 3:
            raise RuntimeError("the model broke")
        return real(predictor, rows)  # type: ignore[arg-type]

    monkeypatch.setattr(score, "score_table", failing)


def test_a_failure_while_scoring_stops_the_run_and_writes_nothing(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    ref = classifier(workspace)
    source = tmp_path / "in.csv"
    inputs(600).to_csv(source, index=False)
    model_breaks_on_the_third_batch(monkeypatch)
    out = tmp_path / "out.csv"
    with pytest.raises(RuntimeError, match="the model broke"):
        workspace.predict_files(ref, source, out, workers=2, block_size=1_000)
    assert not out.exists()
    assert not list(tmp_path.glob(".*"))


def test_a_file_with_no_acceptable_row_gives_an_output_with_its_header(
    workspace: Workspace, tmp_path: Path
) -> None:
    ref = classifier(workspace)
    rows = inputs(4)
    rows["x1"] = np.nan
    source = tmp_path / "in.parquet"
    rows.to_parquet(source, index=False)
    out = tmp_path / "out.parquet"
    run = workspace.predict_files(ref, source, out)
    assert (run.n_scored, run.n_quarantined) == (0, 4)
    written = pq.read_table(out)
    assert written.num_rows == 0
    assert written.column_names == ["x1", "x2", "prediction", "proba_no", "proba_yes"]


def _codecs(path: Path) -> set[str]:
    meta = pq.ParquetFile(path).metadata
    return {
        meta.row_group(g).column(c).compression
        for g in range(meta.num_row_groups)
        for c in range(meta.num_columns)
    }


def test_a_parquet_output_is_snappy_unless_another_compression_is_asked_for(
    workspace: Workspace, tmp_path: Path
) -> None:
    ref = classifier(workspace)
    source = tmp_path / "in.parquet"
    inputs(200).to_parquet(source, index=False)
    default, zstd, plain = (tmp_path / f"{n}.parquet" for n in ("default", "zstd", "none"))
    workspace.predict_files(ref, source, default)
    workspace.predict_files(ref, source, zstd, compression="zstd")
    workspace.predict_files(ref, source, plain, compression="none")
    assert _codecs(default) == {"SNAPPY"}
    assert _codecs(zstd) == {"ZSTD"}
    assert _codecs(plain) == {"UNCOMPRESSED"}
    # The rows are the same whatever the compression.
    assert pq.read_table(default).equals(pq.read_table(zstd))
    assert pq.read_table(default).equals(pq.read_table(plain))


def test_several_inputs_end_in_one_output_with_the_compression_asked_for(
    workspace: Workspace, tmp_path: Path
) -> None:
    ref = classifier(workspace)
    inputs(30, seed=2).to_parquet(tmp_path / "part-1.parquet", index=False)
    inputs(40, seed=3).to_parquet(tmp_path / "part-2.parquet", index=False)
    out = tmp_path / "out.parquet"
    run = workspace.predict_files(ref, str(tmp_path / "part-*"), out, compression="lz4")
    assert run.n_scored == 70
    assert _codecs(out) == {"LZ4"}


@pytest.mark.parametrize(
    ("output", "compression", "message"),
    [
        ("out.parquet", "gzip9", "use one of snappy, zstd, lz4, none"),
        ("out.csv", "zstd", "a .csv output is written uncompressed"),
    ],
)
def test_a_compression_that_cannot_apply_is_refused_before_reading(
    workspace: Workspace, tmp_path: Path, output: str, compression: str, message: str
) -> None:
    ref = classifier(workspace)
    source = tmp_path / "in.parquet"
    inputs(20).to_parquet(source, index=False)
    with pytest.raises(UsageError, match=message):
        workspace.predict_files(ref, source, tmp_path / output, compression=compression)
    assert not (tmp_path / output).exists()
    assert workspace.scoring_runs.list() == []
