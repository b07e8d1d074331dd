"""``setpoint scoring list|show`` and ``models show``: the scoring runs, read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_support import Cli
from typer.testing import CliRunner

from setpoint.cli.main import app
from setpoint.workspace import Workspace

# The command line, not the stores (their own tests run on both databases): the
# workspace on SQLite only (conftest.py).
pytestmark = pytest.mark.one_database


@pytest.fixture
def scored(cli: Cli, tmp_path: Path) -> dict[str, object]:
    """A classifier ``clf@1`` and one run of it over a file with one bad row."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    data = pd.DataFrame({"x1": rng.normal(size=200), "x2": rng.uniform(0, 10, 200)})
    data["y"] = np.where(data.x1 > 0, "yes", "no")
    with Workspace.open(cli.root) as ws:
        ws.register_model(
            "clf",
            LogisticRegression().fit(data[["x1", "x2"]], data["y"]),
            reference=data,
            target="y",
        )
    rows = pd.DataFrame({"x1": [0.1, None, 0.3], "x2": [1.0, 2.0, 3.0]})
    source = tmp_path / "a-rather-long-input-file-name-for-the-listing.csv"
    rows.to_csv(source, index=False)
    done: dict[str, object] = cli.json(
        "predict", "clf@1", "-i", str(source), "-o", str(tmp_path / "out.csv")
    )
    return done


def _narrow(cli: Cli, *args: str) -> str:
    """The command's output in an 80-column terminal; no line is longer, but for a
    path of the test's (longer than 80 characters itself)."""
    result = CliRunner(env={"COLUMNS": "80"}).invoke(
        app, ["-w", str(cli.root), *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "/tmp" not in line]
    assert all(len(line) <= 80 for line in lines), result.stdout
    return str(result.stdout)


def test_scoring_list_and_show_read_the_run_back(
    cli: Cli, scored: dict[str, object], tmp_path: Path
) -> None:
    run_id = scored["id"]
    assert isinstance(run_id, int)
    [listed] = cli.json("scoring", "list")
    assert listed["id"] == run_id
    assert listed["model"] == "clf@1"
    assert (listed["n_rows"], listed["n_scored"], listed["n_quarantined"]) == (3, 2, 1)
    assert listed["state"] == "succeeded"
    assert cli.json("scoring", "list", "--model", "clf@2") == []
    assert len(cli.json("scoring", "list", "--model", "clf")) == 1
    table = _narrow(cli, "scoring", "list")
    assert "clf@1" in table
    assert "succeeded" in table

    shown = cli.json("scoring", "show", str(run_id))
    assert shown["inputs"][0]["uri"].endswith(".csv")
    assert len(shown["inputs"][0]["sha256"]) == 64
    said = _narrow(cli, "scoring", "show", str(run_id))
    assert f"scoring run {run_id}: clf@1, succeeded" in said
    assert "3 read, 2 scored, 1 quarantined" in said
    assert "sha256" in said


def test_models_show_mentions_its_scoring_runs(cli: Cli, scored: dict[str, object]) -> None:
    data = cli.json("models", "show", "clf@1")
    assert data["scoring_runs"]["count"] == 1
    assert data["scoring_runs"]["latest"]["id"] == scored["id"]
    said = _narrow(cli, "models", "show", "clf@1")
    assert f"Scoring runs: 1; the latest, {scored['id']}, succeeded" in said


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["scoring", "show", "99"], 3, "no scoring run 99"),
        (["scoring", "list", "--state", "lost"], 2, "use one of running"),
        (["scoring", "list", "--model", "clf@champion"], 2, "NAME@VERSION"),
    ],
)
def test_scoring_refuses_mistakes_clearly(
    cli: Cli, args: list[str], code: int, message: str
) -> None:
    cli.fails(*args, code=code, message=message)


def test_no_runs_says_how_to_make_one(cli: Cli) -> None:
    assert "setpoint predict" in cli("scoring", "list").stdout
