"""``setpoint predict``: files scored with a registered model, from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cli_support import Cli

from ray_support import ray_cluster  # noqa: F401
from setpoint.workspace import Workspace


@pytest.fixture
def model(cli: Cli, tmp_path: Path) -> str:
    """A classifier registered as ``clf@1`` and promoted to champion."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    data = pd.DataFrame({"x1": rng.normal(size=300), "x2": rng.uniform(0, 10, 300)})
    data["y"] = np.where(data.x1 > 0, "yes", "no")
    with Workspace.open(cli.root) as ws:
        fitted = LogisticRegression().fit(data[["x1", "x2"]], data["y"])
        ws.register_model("clf", fitted, reference=data, target="y")
        ws.promote("clf", 1)
    return "clf@champion"


def rows(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"x1": rng.uniform(-1.5, 1.5, n), "x2": rng.uniform(0, 9.5, n)})


def test_predict_scores_a_file_and_says_what_it_did(cli: Cli, model: str, tmp_path: Path) -> None:
    given = rows()
    given.loc[5, "x1"] = np.nan
    source = tmp_path / "in.csv"
    given.to_csv(source, index=False)
    out = tmp_path / "out.csv"
    done = cli.json("predict", model, "--input", str(source), "--output", str(out))
    assert (done["n_rows"], done["n_scored"], done["n_quarantined"]) == (40, 39, 1)
    assert done["n_batches"] >= 1
    assert done["model"] == "clf@1"
    assert done["engine"] == "local"
    assert isinstance(done["seconds"], float)
    scored = pd.read_csv(out)
    assert list(scored.columns) == ["x1", "x2", "prediction", "proba_no", "proba_yes"]
    with Workspace.open(cli.root) as ws:
        expected = ws.load_model("clf@1").predict(given.drop(index=5))
    assert scored["prediction"].tolist() == expected.tolist()

    out.unlink()
    said = cli("predict", "models:/clf/1", "--input", str(source), "-o", str(out)).stdout
    assert "Scored 39 of 40 rows with clf@1" in said
    assert "quarantined 1 row" in said
    assert "setpoint data quarantine export" in said
    assert f"Wrote {out}." in said
    assert all(len(line) <= 80 for line in said.splitlines() if str(out) not in line)
    assert out.exists()


def test_predict_takes_a_glob_and_writes_parquet(cli: Cli, model: str, tmp_path: Path) -> None:
    rows(10).to_csv(tmp_path / "a.csv", index=False)
    rows(15).to_parquet(tmp_path / "b.parquet", index=False)
    out = tmp_path / "out.parquet"
    done = cli.json("predict", model, "--input", str(tmp_path / "[ab].*"), "-o", str(out))
    assert done["n_scored"] == 25
    assert len(done["inputs"]) == 2
    assert len(pd.read_parquet(out)) == 25


def test_predict_compresses_parquet_with_snappy_or_what_it_is_told(
    cli: Cli, model: str, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    rows(20).to_csv(tmp_path / "in.csv", index=False)
    for compression in (None, "zstd"):
        out = tmp_path / f"{compression}.parquet"
        told = [] if compression is None else ["--compression", compression]
        cli.json("predict", model, "-i", str(tmp_path / "in.csv"), "-o", str(out), *told)
        meta = pq.ParquetFile(out).metadata
        codecs = {meta.row_group(0).column(c).compression for c in range(meta.num_columns)}
        assert codecs == {"SNAPPY" if compression is None else "ZSTD"}
    help_text = cli("predict", "--help").stdout
    assert "--compression" in help_text
    assert "snappy (default)" in help_text


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["clf@1", "--input", "missing.csv", "-o", "out.csv"], 2, "no such file"),
        (["nope@1", "--input", "in.csv", "-o", "out.csv"], 3, "nope"),
        (["clf@1", "--input", "in.csv", "-o", "nowhere/out.csv"], 2, "does not exist"),
        (["clf@1", "--input", "in.csv", "-o", "out.json"], 2, ".csv or .parquet"),
        (["clf@1", "--input", "in.txt", "-o", "out.csv"], 2, "unsupported file type"),
        (["clf@1", "--input", "in.csv", "-o", "out.csv", "--address", "h:1"], 2, "--engine ray"),
        (["clf@1", "--input", "in.csv", "-o", "out.csv", "--engine", "spark"], 2, "local or ray"),
        (["clf@1", "--input", "in.csv", "-o", "o.parquet", "--compression", "gz"], 2, "one of"),
        (["clf@1", "--input", "in.csv", "-o", "out.csv", "--compression", "zstd"], 2, "a .csv"),
    ],
)
def test_predict_refuses_bad_arguments_clearly(
    cli: Cli,
    model: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    code: int,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    rows(3).to_csv("in.csv", index=False)
    Path("in.txt").write_text("x1,x2\n1,2\n", encoding="utf-8")
    cli.fails("predict", *args, code=code, message=message)
    assert not Path("out.csv").exists()
    assert "scoring" not in cli("predict", *args, code=code).stderr  # the error alone


def test_predict_through_an_endpoint_logs_and_refuses_an_ambiguous_name(
    cli: Cli, model: str, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    rows(12).to_csv(source, index=False)
    cli("deploy", "web", "--model", model)
    said = cli("predict", "web", "-i", str(source), "-o", str(tmp_path / "a.csv")).stdout
    assert "Scored 12 of 12 rows with clf@1" in said
    assert "Logged the rows to endpoint web" in said
    assert "setpoint scoring show 1" in said
    cli("deploy", "clf", "--model", model)
    out = str(tmp_path / "b.csv")
    cli.fails("predict", "clf", "-i", str(source), "-o", out, code=2, message="--endpoint")
    done = cli.json("predict", "clf", "--endpoint", "-i", str(source), "-o", out)
    assert (done["endpoint"], done["model"]) == ("clf", "clf@1")


def test_predict_keeps_an_id_column_and_logs_only_the_features(
    cli: Cli, model: str, tmp_path: Path
) -> None:
    from setpoint.serving._logtables import read_log

    given = rows(8)
    given["id"] = range(100, 108)
    source = tmp_path / "in.csv"
    given.to_csv(source, index=False)
    out = tmp_path / "out.csv"
    cli("deploy", "web", "--model", model)
    cli("predict", "web", "-i", str(source), "-o", str(out), "--keep", "id")
    assert pd.read_csv(out)["id"].tolist() == list(range(100, 108))
    logged = read_log(cli.root, kind="predictions", endpoint="web")
    assert all("id" not in text for text in logged["inputs"].to_pylist())


@pytest.mark.slow
def test_predict_on_ray_writes_what_the_local_engine_writes(
    ray_cluster: Any,  # noqa: F811
    cli: Cli,
    model: str,
    tmp_path: Path,
) -> None:
    given = rows(300)
    given.loc[7, "x1"] = np.nan
    given.to_parquet(tmp_path / "in.parquet", row_group_size=50)
    local, on_ray = tmp_path / "local.csv", tmp_path / "ray.csv"
    cli.json("predict", model, "-i", str(tmp_path / "in.parquet"), "-o", str(local))
    args = ["-i", str(tmp_path / "in.parquet"), "-o", str(on_ray), "--engine", "ray"]
    done = cli.json("predict", model, *args, "--workers", "2")
    assert done["engine"] == "ray"
    assert (done["n_rows"], done["n_scored"], done["n_quarantined"]) == (300, 299, 1)
    assert done["workers"] == 2
    assert on_ray.read_bytes() == local.read_bytes()
    on_ray.unlink()
    said = cli("predict", model, *args).stdout
    assert "Scored 299 of 300 rows with clf@1" in said
    assert "Ray actor(s)" in said
    assert "quarantined 1 row" in said
    assert all(len(line) <= 80 for line in said.splitlines() if str(on_ray) not in line)
