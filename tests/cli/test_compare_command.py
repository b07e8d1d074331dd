"""``setpoint monitor compare``: files compared with no workspace, datasets with one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_support import Cli
from typer.testing import CliRunner, Result

from setpoint.cli.main import app

# The command line, not the stores (their own tests run on both databases): the
# workspace on SQLite only (conftest.py).
pytestmark = pytest.mark.one_database


def applications(n: int, start: str, *, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.normal(50 + shift, 10, n)
    return pd.DataFrame(
        {
            "applied": pd.date_range(start, periods=n, freq="41min"),
            "income": income,
            "grade": rng.choice(["A", "B", "C"], n),
            "approved": (income > 52).astype(np.int64),
        }
    )


@pytest.fixture
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with no workspace at or above it, and SETPOINT_WORKSPACE unset."""
    folder = tmp_path / "anywhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("SETPOINT_WORKSPACE", raising=False)
    return folder


def setpoint(*args: str, code: int = 0) -> Result:
    runner = CliRunner(env={"SETPOINT_WORKSPACE": None, "COLUMNS": "80"})
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def test_two_csv_files_with_no_workspace(nowhere: Path) -> None:
    applications(2_000, "2024-01-01", seed=1).to_csv("reference.csv", index=False)
    applications(1_500, "2024-06-01", seed=2, shift=6.0).to_csv("current.csv", index=False)
    result = setpoint("monitor", "compare", "reference.csv", "current.csv", "--no-multivariate")
    report = nowhere / "current-vs-reference.html"
    assert report.is_file()
    assert "Monitoring report: current.csv against reference.csv" in report.read_text()
    out = result.stdout
    assert "Wrote the report to current-vs-reference.html" in out
    assert "all rows" in out
    assert "drift" in out
    assert "income" in out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert not (nowhere / "setpoint.toml").exists()  # nothing made a workspace


def test_one_timestamped_parquet_file_cut_by_month(nowhere: Path) -> None:
    applications(3_000, "2024-01-01", seed=3).to_parquet("reference.parquet")
    traffic = pd.concat(
        [
            applications(1_000, "2024-06-01", seed=4),
            applications(1_000, "2024-07-01", seed=5, shift=8.0),
        ]
    )
    traffic.to_parquet("traffic.parquet")
    result = setpoint(
        "monitor",
        "compare",
        "reference.parquet",
        "traffic.parquet",
        "--time-column",
        "applied",
        "--chunk",
        "1M",
        "--prediction",
        "approved",
        "-o",
        "out/month.html",
        "--no-multivariate",
        "--json",
    )
    found = json.loads(result.stdout)
    assert found["report"] == "out/month.html"
    assert (nowhere / "out" / "month.html").is_file()
    chunks = found["chunks"]
    assert [c["label"] for c in chunks] == ["2024-06", "2024-07"]
    assert [c["start"] for c in chunks] == [
        "2024-06-01T00:00:00+00:00",
        "2024-07-01T00:00:00+00:00",
    ]
    assert chunks[0]["drift"]["drifted_features"] == []
    assert chunks[1]["drift"]["drifted_features"] == ["income"]
    assert chunks[1]["drift"]["prediction"]["__prediction__"]["drifted"] is True
    assert [a["key"] for a in chunks[1]["alerts"]] == [
        "drift:feature:income",
        "drift:prediction",
        "drift:dataset",
    ]


def test_datasets_of_a_workspace_are_named_by_version(cli: Cli, tmp_path: Path) -> None:
    applications(2_000, "2024-01-01", seed=6).to_csv(tmp_path / "history.csv", index=False)
    applications(800, "2024-06-01", seed=7).to_csv(tmp_path / "june.csv", index=False)
    cli("data", "add", "loans", str(tmp_path / "history.csv"))
    page = tmp_path / "report.html"
    found = cli.json(
        "monitor", "compare", "loans@latest", str(tmp_path / "june.csv"), "-o", str(page),
        "--no-multivariate",
    )  # fmt: skip
    assert found["reference"]["source"] == "loans@1"
    assert found["current"]["source"] == "june.csv"
    assert "june.csv against loans@1" in page.read_text()


def test_mistakes_exit_with_a_message_and_no_traceback(nowhere: Path) -> None:
    applications(500, "2024-01-01", seed=8).to_csv("reference.csv", index=False)
    applications(500, "2024-06-01", seed=9).drop(columns="grade").to_csv("current.csv", index=False)
    base = ("monitor", "compare", "reference.csv")
    cases = [
        ((*base, "loans@2"), "'loans@2' is not a file here; as a dataset NAME@VERSION"),
        ((*base, "gone.csv"), "gone.csv: no such file"),
        ((*base, "current.csv"), "lacks the reference's feature(s) grade"),
        ((*base, "reference.csv", "--time-column", "when"), "time column 'when' is not"),
        ((*base, "reference.csv", "--time-column", "income"), "not times"),
        ((*base, "reference.csv", "--chunk", "monthly"), "not a chunk size"),
        ((*base, "reference.csv", "--features", " , "), "--features names no column"),
        ((*base, "reference.csv", "-o", "reference.csv/report.html"), "cannot write"),
    ]
    for args, message in cases:
        result = setpoint(*args, code=2)
        assert message in result.stderr, (args, result.stderr)
        error = json.loads(setpoint(*args, "--json", code=2).stdout)["error"]
        assert message in error["message"]
