"""Batch scoring with the Ray engine: the local engine's output, row for row, also
after a worker node is lost mid-run; refused rows quarantined as locally."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression
from test_score import _codecs

from ray_support import NODE, ray_cluster  # noqa: F401
from s3_support import outside
from setpoint.batch import _pieces, ray_engine, sources
from setpoint.data import reader
from setpoint.errors import ContractViolationError, InvalidDataError, UsageError
from setpoint.workspace import Workspace

pytestmark = pytest.mark.slow


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """The metadata on PostgreSQL only, as a cluster of several machines has it: what
    Ray does does not depend on the database, and each run here costs seconds."""
    return postgres_url


@pytest.fixture
def cluster(ray_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> Any:  # noqa: F811
    """The session's cluster; Parquet read in batches of 25 rows by both engines, so
    that files of thousands of rows make many pieces (of two batches), each a task."""
    monkeypatch.setattr(reader, "PARQUET_BATCH_ROWS", 25)
    return ray_cluster


def classifier(ws: Workspace) -> str:
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"x1": rng.normal(size=400), "x2": rng.uniform(0, 10, 400)})
    data["y"] = np.where(data.x1 + data.x2 / 5 > 1, "yes", "no")
    model = LogisticRegression().fit(data[["x1", "x2"]], data["y"])
    return ws.register_model("clf", model, reference=data, target="y").ref


def inputs(n: int, seed: int = 1, bad_every: int = 0) -> pd.DataFrame:
    """Rows inside the contract; with ``bad_every``, each such row's x1 is null (refused)."""
    rng = np.random.default_rng(seed)
    rows = pd.DataFrame({"x1": rng.uniform(-1.5, 1.5, n), "x2": rng.uniform(0, 9.5, n)})
    if bad_every:
        rows.loc[rows.index[::bad_every], "x1"] = np.nan
    return rows


def local_and_ray(
    ws: Workspace, ref: str, given: Any, tmp_path: Path, suffix: str = ".parquet", **ray: Any
) -> tuple[Any, Any, Path, Path]:
    local_out, ray_out = tmp_path / f"local{suffix}", tmp_path / f"ray{suffix}"
    local = ws.predict_files(ref, given, local_out)
    on_ray = ws.predict_files(ref, given, ray_out, engine="ray", **ray)
    return local, on_ray, local_out, ray_out


@pytest.mark.every_store  # on S3 the actors load the model from the bucket
def test_ray_scores_as_the_local_engine_does(
    cluster: Any, workspace: Workspace, tmp_path: Path
) -> None:
    ref = classifier(workspace)
    inputs(1_500, seed=1, bad_every=97).to_parquet(tmp_path / "a-1.parquet", row_group_size=100)
    inputs(700, seed=2, bad_every=50).to_csv(tmp_path / "a-2.csv", index=False)
    inputs(900, seed=3).to_parquet(tmp_path / "a-3.parquet", row_group_size=300)
    given = str(tmp_path / "a-*")
    local, on_ray, local_out, ray_out = local_and_ray(workspace, ref, given, tmp_path, workers=2)
    assert pq.read_table(ray_out).equals(pq.read_table(local_out))
    assert _codecs(ray_out) == _codecs(local_out) == {"SNAPPY"}  # predict's default
    for field in ("n_rows", "n_scored", "n_quarantined", "inputs", "model"):
        assert getattr(on_ray, field) == getattr(local, field), field
    assert (on_ray.n_rows, on_ray.n_quarantined) == (3_100, 16 + 14)
    assert on_ray.to_dict()["engine"] == "ray"
    assert len(on_ray.quarantine) == len(local.quarantine) == 2
    for mine, theirs in zip(on_ray.quarantine, local.quarantine, strict=True):
        assert (mine.source, mine.n_rows, mine.n_rejected) == (
            theirs.source,
            theirs.n_rows,
            theirs.n_rejected,
        )
        assert mine.summary == theirs.summary
        held = workspace.quarantine.rows(mine.id)
        assert held.equals(workspace.quarantine.rows(theirs.id))  # _row: in the file
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left
    # Both runs are records, the same but for the engine.
    mine, theirs = (
        workspace.scoring_runs.get(on_ray.id or 0),
        workspace.scoring_runs.get(local.id or 0),
    )
    assert (mine.engine, theirs.engine) == ("ray", "local")
    assert mine.state == theirs.state == "succeeded"
    assert (mine.n_rows, mine.n_scored, mine.n_quarantined, mine.inputs) == (
        theirs.n_rows,
        theirs.n_scored,
        theirs.n_quarantined,
        theirs.inputs,
    )


def test_scoring_through_an_endpoint_logs_what_the_local_engine_logs(
    cluster: Any, workspace: Workspace, tmp_path: Path
) -> None:
    """Each actor encodes its rows' log lines, the driver appends them in input order:
    the endpoint's log gets the local engine's records (but for the run's id and the
    time), its refused rows too, and ``--keep`` columns ride along."""
    from setpoint.serving.log import read_log

    classifier(workspace)
    workspace.deploy("credit", model="clf@1")
    frame = inputs(1_200, seed=4, bad_every=113).assign(account=range(1_200))
    frame.to_parquet(tmp_path / "in-1.parquet", row_group_size=100)
    inputs(300, seed=5, bad_every=61).assign(account=range(300)).to_csv(
        tmp_path / "in-2.csv", index=False
    )
    given = str(tmp_path / "in-*")
    local_out, ray_out = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    local = workspace.predict_files("credit", given, local_out, keep=["account"])
    on_ray = workspace.predict_files(
        "credit", given, ray_out, keep=["account"], engine="ray", workers=2
    )
    assert pq.read_table(ray_out).equals(pq.read_table(local_out))
    assert "account" in pq.read_schema(ray_out).names
    assert (on_ray.endpoint, on_ray.n_rows) == ("credit", 1_500)

    def logged(kind: str, run: Any) -> list[tuple[Any, ...]]:
        table = read_log(workspace.logs, kind=kind, endpoint="credit").to_pylist()
        mine = [r for r in table if r["request_id"].startswith(f"scoring-{run.id}-")]
        return sorted(
            (r["request_id"].split("-", 2)[2], r["row"], r["inputs"], r.get("outputs"))
            for r in mine
        )

    for kind in ("predictions", "refused"):
        assert logged(kind, on_ray) == logged(kind, local), kind
    assert len(logged("predictions", on_ray)) == on_ray.n_scored
    assert len(logged("refused", on_ray)) == on_ray.n_quarantined == 11 + 5


def test_a_csv_output_an_empty_output_and_a_widened_csv_match_too(
    cluster: Any, workspace: Workspace, tmp_path: Path
) -> None:
    ref = classifier(workspace)
    inputs(400, seed=4).to_parquet(tmp_path / "in.parquet", row_group_size=50)
    given = tmp_path / "in.parquet"
    *_, local_out, ray_out = local_and_ray(workspace, ref, given, tmp_path, ".csv")
    assert ray_out.read_bytes() == local_out.read_bytes()

    refused = inputs(30, seed=5)
    refused["x1"] = np.nan
    refused.to_parquet(tmp_path / "none.parquet", row_group_size=10)
    local, on_ray, local_out, ray_out = local_and_ray(
        workspace, ref, tmp_path / "none.parquet", tmp_path
    )
    assert on_ray.n_scored == local.n_scored == 0
    assert pq.read_table(ray_out).equals(pq.read_table(local_out))
    names = ["x1", "x2", "prediction", "proba_no", "proba_yes"]
    assert pq.read_table(ray_out).column_names == names

    rows = inputs(400, seed=7)
    rows["x2"] = rows["x2"].round().astype(int)
    lines = rows.to_csv(index=False).splitlines()
    lines[-1] = lines[-1].split(",")[0] + ",2.5"  # an integer column meets a float, late
    (tmp_path / "wide.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    local_out, ray_out = tmp_path / "wide-local.parquet", tmp_path / "wide-ray.parquet"
    workspace.predict_files(ref, tmp_path / "wide.csv", local_out, block_size=1_000)
    run = workspace.predict_files(
        ref, tmp_path / "wide.csv", ray_out, engine="ray", block_size=1_000
    )
    assert run.n_batches > 1
    assert pq.read_table(ray_out).equals(pq.read_table(local_out))
    assert pq.read_table(ray_out).schema.field("x2").type == "double"


def test_a_file_the_contract_refuses_is_refused_before_ray_scores(
    cluster: Any, workspace: Workspace, tmp_path: Path
) -> None:
    ref = classifier(workspace)
    inputs(5)[["x1"]].to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(ContractViolationError, match="x2"):
        workspace.predict_files(ref, tmp_path / "in.csv", tmp_path / "out.csv", engine="ray")
    assert not list(tmp_path.glob("*out*"))


def test_a_bad_row_found_by_an_actor_is_the_error_raised(
    cluster: Any, workspace: Workspace, tmp_path: Path
) -> None:
    ref = classifier(workspace)
    body = inputs(600).to_csv(index=False) + "1,2,3\n"  # a row with a field too many
    (tmp_path / "in.csv").write_text(body, encoding="utf-8")
    out = tmp_path / "out.parquet"
    with pytest.raises(InvalidDataError, match="fields"):
        workspace.predict_files(ref, tmp_path / "in.csv", out, engine="ray", block_size=1_000)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_losing_a_worker_node_mid_run_still_gives_the_whole_output_once(
    cluster: Any, workspace: Workspace, tmp_path: Path
) -> None:
    # Ray's public state API goes through the dashboard, which the test cluster
    # runs without; this is the function behind ray.available_resources().
    from ray._private.state import available_resources_per_node

    ref = classifier(workspace)
    source = tmp_path / "in.parquet"
    inputs(6_000, seed=6, bad_every=101).to_parquet(source, row_group_size=30)
    pieces = len(ray_engine.plan(sources.expand(source)))
    assert pieces == 120
    local_out, ray_out = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    local = workspace.predict_files(ref, source, local_out)
    extra = cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    finished = threading.Event()
    written: list[int] = []  # the pieces written when the node was removed

    def remove_the_node_after_it_scored() -> None:
        """Once an actor holds a CPU of the extra node and 10 more pieces are written
        after that, take the node away (polling, as no event tells either)."""
        parts: int | None = None
        while not finished.wait(0.01):
            staging = list(tmp_path.glob(".ray.parquet.ray-*"))
            now = len(list(staging[0].glob("part-*.parquet"))) if staging else 0
            if parts is None:
                free = available_resources_per_node().get(extra.node_id, {})
                parts = now if free.get("CPU", NODE["num_cpus"]) < NODE["num_cpus"] else None
            elif now >= parts + 10:
                written.append(now)
                cluster.remove_node(extra)
                return

    remover = threading.Thread(target=remove_the_node_after_it_scored)
    remover.start()
    try:
        run = workspace.predict_files(ref, source, ray_out, engine="ray", workers=3)
    finally:
        finished.set()
        remover.join()
    assert written
    assert written[0] < pieces  # the node left mid-run
    assert extra not in cluster.list_all_nodes()
    scored = pq.read_table(ray_out)
    assert scored.equals(pq.read_table(local_out))  # complete, in order, no duplicate
    assert len(set(scored.column("x2").to_pylist())) == scored.num_rows == local.n_scored
    assert (run.n_rows, run.n_scored, run.n_quarantined) == (6_000, local.n_scored, 60)
    assert len(run.quarantine) == 1
    held = workspace.quarantine.rows(run.quarantine[0].id)
    assert held.column("_row").to_pylist() == list(range(0, 6_000, 101))


def _listing(uri: str) -> list[str]:
    """Every object under ``uri``, as another process sees the store."""
    fs, path = outside(uri)
    return sorted(name.removeprefix(path).lstrip("/") for name in fs.find(path))


def _read_object(uri: str) -> Any:
    fs, path = outside(uri)
    with fs.open(path, "rb") as file:
        return pq.read_table(file)


def test_objects_in_a_store_are_scored_on_ray_as_locally(
    ray_cluster: Any,  # noqa: F811
    workspace: Workspace,
    s3_bucket: str,
) -> None:
    # The reader's own batches: a Parquet object of more than one piece (131,072 rows).
    fs, bucket = outside(s3_bucket)
    ref = classifier(workspace)
    with fs.open(f"{bucket}/in/a-1.parquet", "wb") as file:
        inputs(200_000, seed=1, bad_every=997).to_parquet(file, row_group_size=30_000)
    fs.pipe_file(f"{bucket}/in/a-2.csv", inputs(500, seed=2, bad_every=50).to_csv(index=False))
    given = f"{s3_bucket}/in/a-*"
    assert len(ray_engine.plan(sources.expand(given))) == 3  # two pieces and the CSV
    local_out, ray_out = f"{s3_bucket}/out/local.parquet", f"{s3_bucket}/out/ray.parquet"
    local = workspace.predict_files(ref, given, local_out)
    on_ray = workspace.predict_files(ref, given, ray_out, engine="ray", workers=2)
    assert _read_object(ray_out).equals(_read_object(local_out))
    for field in ("n_rows", "n_scored", "n_quarantined", "inputs", "model"):
        assert getattr(on_ray, field) == getattr(local, field), field
    assert (on_ray.n_rows, on_ray.n_quarantined) == (200_500, 201 + 10)
    assert on_ray.inputs == [f"{s3_bucket}/in/a-1.parquet", f"{s3_bucket}/in/a-2.csv"]
    assert on_ray.output == ray_out
    for mine, theirs in zip(on_ray.quarantine, local.quarantine, strict=True):
        assert (mine.source, mine.n_rows, mine.n_rejected, mine.summary) == (
            theirs.source,
            theirs.n_rows,
            theirs.n_rejected,
            theirs.summary,
        )
        assert workspace.quarantine.rows(mine.id).equals(workspace.quarantine.rows(theirs.id))
    recorded = workspace.scoring_runs.get(on_ray.id or 0)
    assert (recorded.state, recorded.output) == ("succeeded", ray_out)
    assert recorded.inputs == workspace.scoring_runs.get(local.id or 0).inputs  # with ETags
    assert _listing(f"{s3_bucket}/out") == ["local.parquet", "ray.parquet"]  # no staging left


def test_a_remote_outputs_staging_is_removed_also_after_a_failure(
    cluster: Any,
    workspace: Workspace,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ref = classifier(workspace)
    source = tmp_path / "in.parquet"
    inputs(400, seed=8, bad_every=40).to_parquet(source, row_group_size=60)
    local_out = tmp_path / "local.csv"
    workspace.predict_files(ref, source, local_out)
    out = f"{s3_bucket}/out/scored.csv"
    run = workspace.predict_files(ref, source, out, engine="ray", workers=2)
    assert run.n_quarantined == 10
    fs, path = outside(out)
    assert fs.cat_file(path) == local_out.read_bytes()
    assert _listing(f"{s3_bucket}/out") == ["scored.csv"]

    # Failing on the driver once every piece is staged: the parts were in the store,
    # beside the output, and are gone with the failed run.
    staged: list[str] = []

    def breaks(*_args: Any, **_kwargs: Any) -> Any:
        staged.extend(_listing(f"{s3_bucket}/out"))
        raise RuntimeError("the quarantine broke")

    monkeypatch.setattr(ray_engine, "record_quarantine", breaks)
    with pytest.raises(RuntimeError, match="the quarantine broke"):
        workspace.predict_files(ref, source, f"{s3_bucket}/out/again.csv", engine="ray")
    prefix = [name for name in staged if name.startswith(".again.csv.ray-")]
    assert any(name.endswith("/part-000007.parquet") for name in prefix), staged
    assert _listing(f"{s3_bucket}/out") == ["scored.csv"]
    assert workspace.scoring_runs.list()[0].state == "failed"


def test_an_actors_error_leaves_nothing_in_the_store(
    cluster: Any, workspace: Workspace, s3_bucket: str, tmp_path: Path
) -> None:
    # The first piece fails while the others are being scored: none of them may
    # write into the staging prefix once the driver has removed it.
    ref = classifier(workspace)
    body = inputs(600).to_csv(index=False) + "1,2,3\n"  # a row with a field too many
    (tmp_path / "a-0.csv").write_text(body, encoding="utf-8")
    inputs(1_000, seed=9).to_parquet(tmp_path / "a-1.parquet", row_group_size=100)
    with pytest.raises(InvalidDataError, match="fields"):
        workspace.predict_files(
            ref,
            str(tmp_path / "a-*"),
            f"{s3_bucket}/out/scored.parquet",
            engine="ray",
            block_size=1_000,
            workers=3,
        )
    assert _listing(s3_bucket) == []


def test_a_store_that_cannot_take_the_output_is_said_before_ray_scores(
    cluster: Any,
    workspace: Workspace,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    import s3fs
    from typer.testing import CliRunner

    from setpoint.cli.main import app

    classifier(workspace)
    source = tmp_path / "in.parquet"
    inputs(100).to_parquet(source)
    missing = f"s3://{s3_bucket.removeprefix('s3://')}-missing/out/scored.parquet"

    def predict(output: str, given: str = str(source)) -> Any:
        args = ["-w", str(workspace.root), "predict", "clf@1", "-i", given, "-o", output]
        runner = CliRunner(env={"COLUMNS": "200"})  # a URI on one line
        return runner.invoke(app, [*args, "--engine", "ray"], catch_exceptions=False)

    result = predict(missing)
    assert result.exit_code != 0
    assert "does not exist" in result.stderr, result.stderr
    assert missing in result.stderr
    assert "Traceback" not in result.output

    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    s3fs.S3FileSystem.clear_instance_cache()  # its clients keep the old endpoint
    unreachable = f"{s3_bucket}/out/scored.parquet"
    try:
        result = predict(unreachable)
        from_there = predict(str(tmp_path / "out.parquet"), given=f"{s3_bucket}/in/*.parquet")
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
    assert result.exit_code != 0
    assert "cannot reach the object store" in result.stderr, result.stderr
    assert unreachable in result.stderr
    assert "AWS_ENDPOINT_URL" in result.stderr
    assert "Traceback" not in result.output
    assert from_there.exit_code != 0
    assert "cannot reach the object store" in from_there.stderr, from_there.stderr
    assert f"{s3_bucket}/in/*.parquet" in from_there.stderr
    assert "Traceback" not in from_there.output
    # The input's store is checked before the run starts; the output's, in the run.
    # The output's store is looked at before a run begins (sources.output): no record.
    assert workspace.scoring_runs.list() == []


def test_an_input_gone_before_an_actor_opens_it_is_named(s3_bucket: str) -> None:
    uri = f"{s3_bucket}/in/gone.parquet"
    opener = _pieces.opener(uri)
    assert opener is not None
    with pytest.raises(UsageError, match=f"{uri}: no such file"):
        opener()
    assert _pieces.opener("in/local.parquet") is None  # Arrow reads a local file itself


def test_a_staging_folder_in_a_file_system_gets_each_file_whole_by_a_rename(
    tmp_path: Path,
) -> None:
    from setpoint.batch._staging import Staging

    staging = Staging.beside(sources.output("memory://setpoint-test/out/scored.parquet"))
    try:
        assert staging.where.startswith("memory://setpoint-test/out/.scored.parquet.ray-")
        again = Staging(staging.where)  # as an actor opens it
        for body in (b"first", b"again"):  # a piece scored twice replaces its file
            (tmp_path / "part").write_bytes(body)
            again.publish(tmp_path / "part", "part-000000.parquet")
            assert not (tmp_path / "part").exists()
        names = sorted(Path(n).name for n in staging.fs.ls(staging.root, detail=False))
        assert names == ["part-000000.parquet", "run"]  # no temporary name left
        assert staging.fetch("part-000000.parquet").read_bytes() == b"again"
    finally:
        staging.remove()
    assert not staging.fs.exists(staging.root)
    (tmp_path / "late").write_bytes(b"late")  # a piece finished after a failed run
    again.publish(tmp_path / "late", "part-000001.parquet")
    assert not (tmp_path / "late").exists()
    assert not staging.fs.exists(staging.root)


def test_without_ray_the_engine_says_how_to_install_it(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = classifier(workspace)
    inputs(5).to_csv(tmp_path / "in.csv", index=False)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray: ImportError
    with pytest.raises(UsageError, match=r"pip install 'setpoint\[ray\]'"):
        workspace.predict_files(ref, tmp_path / "in.csv", tmp_path / "out.csv", engine="ray")
    assert not (tmp_path / "out.csv").exists()


def test_the_reasons_of_an_inputs_pieces_add_up() -> None:
    first = [{"column": "x1", "rule": "not_null", "count": 2, "example": None}]
    second = [
        {"column": "x2", "rule": "max", "count": 2, "example": 11.0},
        {"column": "x1", "rule": "not_null", "count": 1, "example": None},
    ]
    assert ray_engine.merged_summary([first, [], second]) == [
        {"column": "x1", "rule": "not_null", "count": 3, "example": None},
        {"column": "x2", "rule": "max", "count": 2, "example": 11.0},
    ]


def test_nothing_imports_ray_unless_the_ray_engine_runs() -> None:
    code = (
        "import sys\n"
        "import setpoint.batch.ray_engine, setpoint.cli.main, setpoint.workspace\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
