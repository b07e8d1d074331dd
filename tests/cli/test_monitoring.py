"""``setpoint monitor run --workers N --engine local|ray``."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_support import Cli, loans
from typer.testing import CliRunner

from setpoint.cli.main import app
from setpoint.serving.log import RecordLog
from setpoint.workspace import Workspace

# The command line, not the stores (their own tests run on both databases): the
# workspace on SQLite only (conftest.py).
pytestmark = pytest.mark.one_database

DAY = datetime(2026, 6, 1, tzinfo=UTC)
UNTIL = "2026-06-03T00:00:00"


def monitored(cli: Cli, tmp_path: Path) -> None:
    """Endpoint ``credit`` with a 12-hour monitor and two days of logged traffic, the
    second day of poorer applicants."""
    data = tmp_path / "loans.csv"
    loans(n=400).to_csv(data, index=False)
    cli("data", "add", "loans", str(data))
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: risk\ndataset: loans@latest\ntarget: defaulted\nseed: 1\n")
    cli("train", str(spec), "--promote", "champion")
    cli("deploy", "credit", "--model", "risk@champion")
    cli("monitor", "create", "credit", "--window", "12h")
    ws = Workspace.open(cli.root)
    try:
        for day in range(2):
            frame = loans(n=600, seed=day + 1)
            if day:
                frame["income"] -= 15_000
            with RecordLog(ws.root, kind="predictions") as log:
                log.append(
                    [
                        {
                            "request_id": f"d{day}-{i}",
                            "row": 0,
                            "ts": DAY + timedelta(days=day, minutes=2 * i),
                            "endpoint": "credit",
                            "model": "risk",
                            "version": 1,
                            "route": "champion",
                            "inputs": row,
                            "outputs": {"prediction": i % 2, "probabilities": [0.6, 0.4]},
                            "latency_ms": 1.0 + i % 7,
                            "cached": False,
                            "fallback": False,
                        }
                        for i, row in enumerate(
                            frame.drop(columns=["defaulted"]).to_dict(orient="records")
                        )
                    ]
                )
    finally:
        ws.close()


def test_two_workers_give_the_windows_one_gives(cli: Cli, tmp_path: Path) -> None:
    monitored(cli, tmp_path)
    split = cli.json("monitor", "run", "credit", "--until", UNTIL, "--workers", "2")
    cli("monitor", "create", "credit", "--window", "12h", "--replace")
    sequential = cli.json("monitor", "run", "credit", "--until", UNTIL)
    assert len(split["credit"]) == 4
    assert split == sequential
    assert "income" in split["credit"][-1]["drifted"]


def test_mistakes_are_named_without_a_traceback(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitored(cli, tmp_path)
    run = ("monitor", "run", "credit", "--until", UNTIL)
    cli.fails(*run, "--engine", "spark", code=2, message="--engine 'spark': use local or ray")
    cli.fails(*run, "--address", "10.0.0.5:6379", code=2, message="add --engine ray")
    result = cli(*run, "--workers", "0", code=2)
    assert "Invalid value for '--workers'" in result.stderr
    assert "Traceback" not in result.output
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    cli.fails(*run, "--engine", "ray", code=2, message="pip install 'setpoint[ray]'")


def test_help_names_the_flags_in_80_columns() -> None:
    result = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["monitor", "run", "--help"])
    assert result.exit_code == 0
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    for words in ("--workers", "N processes (or Ray", "--engine", "setpoint[ray]"):
        assert words in result.stdout
