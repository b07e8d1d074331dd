"""Inputs and outputs through fsspec: an S3 API on loopback (``s3_support.py``)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_score import classifier, inputs, model_breaks_on_the_third_batch

from s3_support import s3_bucket, s3_endpoint  # noqa: F401
from setpoint.errors import StoreError, UsageError
from setpoint.workspace import Workspace


def _fs() -> object:
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True)


def test_a_glob_of_objects_is_scored_into_an_object(
    workspace: Workspace,
    s3_bucket: str,  # noqa: F811
) -> None:
    fs = _fs()
    ref = classifier(workspace)
    first, second = inputs(40, seed=2), inputs(25, seed=3)
    first.loc[[3], "x1"] = np.nan
    with fs.open(f"{s3_bucket}/in/a.parquet", "wb") as f:  # type: ignore[attr-defined]
        first.to_parquet(f, index=False)
    with fs.open(f"{s3_bucket}/in/b.parquet", "wb") as f:  # type: ignore[attr-defined]
        second.to_parquet(f, index=False)
    with fs.open(f"{s3_bucket}/in/notes.txt", "wb") as f:  # type: ignore[attr-defined]
        f.write(b"not matched by the glob")
    out = f"{s3_bucket}/out/scored.parquet"
    run = workspace.predict_files(ref, f"{s3_bucket}/in/*.parquet", out, block_size=1_000)
    assert run.inputs == [f"{s3_bucket}/in/a.parquet", f"{s3_bucket}/in/b.parquet"]
    assert (run.n_rows, run.n_scored, run.n_quarantined) == (65, 64, 1)
    with fs.open(out, "rb") as f:  # type: ignore[attr-defined]
        scored = pq.read_table(f).to_pandas()
    both = pd.concat([first.drop(index=[3]), second], ignore_index=True)
    assert np.allclose(scored[["x1", "x2"]].to_numpy(), both.to_numpy())
    assert scored["prediction"].tolist() == workspace.load_model(ref).predict(both).tolist()
    recorded = workspace.scoring_runs.get(run.id or 0)
    assert recorded.output == out
    for given in recorded.inputs:
        info = fs.info(given["uri"])  # type: ignore[attr-defined]
        assert given["size"] == info["size"]
        assert given["etag"] == info["ETag"].strip('"')
    [batch] = run.quarantine
    assert batch.source == f"{s3_bucket}/in/a.parquet"


def test_a_csv_object_is_scored_into_a_csv_object(
    workspace: Workspace,
    s3_bucket: str,  # noqa: F811
) -> None:
    fs = _fs()
    ref = classifier(workspace)
    rows = inputs(300)
    rows["x2"] = rows["x2"].round().astype(int)
    lines = rows.to_csv(index=False).splitlines()
    lines[-1] = lines[-1].split(",")[0] + ",2.5"  # read again, wider, from the object
    with fs.open(f"{s3_bucket}/in.csv", "wb") as f:  # type: ignore[attr-defined]
        f.write(("\n".join(lines) + "\n").encode())
    out = f"{s3_bucket}/out.csv"
    run = workspace.predict_files(ref, f"{s3_bucket}/in.csv", out, block_size=1_000)
    assert run.n_scored == 300
    with fs.open(out, "rb") as f:  # type: ignore[attr-defined]
        scored = pd.read_csv(io.BytesIO(f.read()))
    assert len(scored) == 300
    assert scored["x2"].iloc[-1] == 2.5


def test_a_failed_run_leaves_no_object(
    workspace: Workspace,
    s3_bucket: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    fs = _fs()
    ref = classifier(workspace)
    source = tmp_path / "in.csv"
    inputs(600).to_csv(source, index=False)
    model_breaks_on_the_third_batch(monkeypatch)
    out = f"{s3_bucket}/out.parquet"
    with pytest.raises(RuntimeError, match="the model broke"):
        workspace.predict_files(ref, source, out, block_size=1_000)
    assert not fs.exists(out)  # type: ignore[attr-defined]
    assert workspace.scoring_runs.list()[0].state == "failed"


def test_missing_objects_are_named(workspace: Workspace, s3_bucket: str) -> None:  # noqa: F811
    ref = classifier(workspace)
    out = f"{s3_bucket}/out.csv"
    with pytest.raises(UsageError, match="no such file"):
        workspace.predict_files(ref, f"{s3_bucket}/missing.csv", out)
    with pytest.raises(UsageError, match="no file matches"):
        workspace.predict_files(ref, f"{s3_bucket}/none-*.csv", out)
    with pytest.raises(UsageError, match=r"\.csv or \.parquet"):
        workspace.predict_files(ref, f"{s3_bucket}/missing.csv", f"{s3_bucket}/out.json")


def test_an_output_bucket_that_does_not_exist_is_said_before_scoring(
    workspace: Workspace,
    s3_bucket: str,  # noqa: F811
) -> None:
    from typer.testing import CliRunner

    from setpoint.cli.main import app

    classifier(workspace)
    with _fs().open(f"{s3_bucket}/in.parquet", "wb") as f:  # type: ignore[attr-defined]
        inputs(10).to_parquet(f, index=False)
    out = "s3://setpoint-no-such-bucket/out.parquet"
    args = ["-w", str(workspace.root), "predict", "clf@1", "-i", f"{s3_bucket}/in.parquet"]
    result = CliRunner().invoke(app, [*args, "-o", out])
    assert result.exit_code != 0
    assert "the bucket 'setpoint-no-such-bucket'" in result.stderr
    assert "does not exist; create it" in result.stderr
    assert "Traceback" not in result.output
    assert workspace.scoring_runs.list() == []  # refused before a run began


def test_the_command_line_takes_uris(workspace: Workspace, s3_bucket: str) -> None:  # noqa: F811
    from typer.testing import CliRunner

    from setpoint.cli.main import app

    fs = _fs()
    classifier(workspace)
    with fs.open(f"{s3_bucket}/in/a.parquet", "wb") as f:  # type: ignore[attr-defined]
        inputs(10).to_parquet(f, index=False)
    out = f"{s3_bucket}/out/a.csv"
    args = ["-w", str(workspace.root), "predict", "clf@1", "-i", f"{s3_bucket}/in/*", "-o", out]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"Wrote {out}." in result.stdout
    assert fs.exists(out)  # type: ignore[attr-defined]


def test_an_object_store_that_does_not_answer_is_named_not_a_traceback(
    workspace: Workspace,
    s3_bucket: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    import s3fs

    ref = classifier(workspace)
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    s3fs.S3FileSystem.clear_instance_cache()  # its clients keep the old endpoint
    try:
        with pytest.raises(StoreError, match="cannot reach the object store") as caught:
            workspace.predict_files(ref, f"{s3_bucket}/in/*.parquet", f"{s3_bucket}/out.parquet")
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
    assert f"127.0.0.1:{port}" in caught.value.message
    assert "AWS_ENDPOINT_URL" in caught.value.message
