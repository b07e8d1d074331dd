"""What a new user types: MLflow's model URIs, capitalised names, and the global
flags (``--json``, ``-w``) before or after the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import Cli, loans
from typer.testing import CliRunner

from setpoint.cli.main import app

# The command line, not the stores (their own tests run on both databases): the
# workspace on SQLite only (conftest.py).
pytestmark = pytest.mark.one_database

SPEC = """\
model: {model}
dataset: loans
target: defaulted
estimator:
  class: sklearn.linear_model.LogisticRegression
  params: {{max_iter: 500}}
seed: 1
"""


@pytest.fixture
def trained(cli: Cli, tmp_path: Path) -> Cli:
    """risk@1, and risk@2 as its champion."""
    data = tmp_path / "loans.csv"
    loans().to_csv(data, index=False)
    cli("data", "add", "loans", str(data))
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(model="risk"), encoding="utf-8")
    cli("train", str(spec))
    cli("train", str(spec), "--promote", "champion")
    return cli


def test_mlflow_model_uris_mean_setpoint_references(trained: Cli) -> None:
    assert trained.json("models", "show", "models:/risk@champion")["ref"] == "risk@2"
    assert trained.json("models", "show", "models:/risk/1")["ref"] == "risk@1"

    moved = trained.json("models", "promote", "models:/risk/1")
    assert (moved["model"], moved["alias"], moved["to_version"]) == ("risk", "champion", 1)
    moved = trained.json("models", "promote", "risk@2", "--alias", "stable")
    assert (moved["alias"], moved["to_version"]) == ("stable", 2)
    moved = trained.json("models", "promote", "models:/risk@stable")
    assert (moved["from_version"], moved["to_version"]) == (1, 2)
    assert trained.json("models", "promote", "models:/risk", "1")["to_version"] == 1

    deployed = trained.json(
        "deploy",
        "credit",
        "--model",
        "models:/risk@champion",
        "--challenger",
        "models:/risk/2",
        "--mode",
        "shadow",
        "--fallback-model",
        "models:/risk/1",
    )
    config = deployed["config"]
    # Stored in setpoint's spelling, so everything that reads them later reads one form.
    assert (config["model"], config["challenger"], config["fallback"]["model"]) == (
        "risk@champion",
        "risk@2",
        "risk@1",
    )
    assert trained.json("deploy", "bare", "--model", "models:/risk")["config"]["model"] == (
        "risk@champion"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["models", "show", "models:/risk/Production"],
        ["models", "promote", "models:/risk@"],
        ["deploy", "credit", "--model", "models:/risk/"],
        ["deploy", "credit", "--model", "risk@1", "--challenger", "models:/risk/1/2"],
    ],
)
def test_a_malformed_mlflow_uri_shows_the_accepted_forms(cli: Cli, args: list[str]) -> None:
    cli.fails(*args, code=2, message="write models:/NAME@ALIAS or models:/NAME/VERSION")


def test_rollback_takes_the_alias_in_the_reference(trained: Cli) -> None:
    trained("models", "promote", "risk@1", "--alias", "stable")
    trained("models", "promote", "risk@2", "--alias", "stable")
    moved = trained.json("models", "rollback", "models:/risk@stable")
    assert (moved["alias"], moved["from_version"], moved["to_version"]) == ("stable", 2, 1)
    trained("models", "promote", "risk@1")
    moved = trained.json("models", "rollback", "risk@champion")  # back to 2
    assert (moved["alias"], moved["from_version"], moved["to_version"]) == ("champion", 1, 2)
    trained.fails("models", "rollback", "models:/risk/2", code=2, message="names a version")
    trained.fails("models", "rollback", "risk@stable", "--alias", "x", code=2, message="--alias")


def test_promote_needs_a_version_from_somewhere(trained: Cli) -> None:
    trained.fails("models", "promote", "risk", code=2, message="risk@VERSION")
    trained.fails("models", "promote", "risk@1", "2", code=2, message="not both")


def test_a_capitalised_name_is_refused_with_the_lowercase_one(trained: Cli, tmp_path: Path) -> None:
    data = tmp_path / "loans.csv"
    trained.fails(
        "data",
        "add",
        "Loans",
        str(data),
        code=2,
        message="'Loans' is not a valid dataset name: names are lowercase; did you mean 'loans'?",
    )
    trained.fails("deploy", "Credit", "--model", "risk@1", code=2, message="did you mean 'credit'?")
    trained.fails("deploy", "credit", "--model", "Risk@1", code=2, message="did you mean 'risk'?")
    trained.fails("models", "show", "models:/Risk/1", code=2, message="did you mean 'risk'?")
    spec = tmp_path / "capital.yaml"
    spec.write_text(SPEC.format(model="Credit-Risk"), encoding="utf-8")
    trained.fails("train", str(spec), code=2, message="did you mean 'credit-risk'?")


@pytest.mark.parametrize("command", [["data", "list"], ["models", "list"], ["audit"]])
def test_json_before_or_after_the_command_gives_the_same_json(
    trained: Cli, command: list[str]
) -> None:
    after = json.loads(trained(*command, "--json").stdout)
    before = json.loads(trained("--json", *command).stdout)
    assert after
    assert before == after


def test_a_mistake_under_a_leading_json_is_json(cli: Cli) -> None:
    result = cli("--json", "data", "show", "nothing", code=3)
    assert json.loads(result.stdout)["error"]["code"] == "not_found"


def test_the_workspace_flag_goes_before_or_after_the_command(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "loans.csv"
    loans(20).to_csv(data, index=False)
    cli("data", "add", "loans", str(data))
    monkeypatch.chdir(tmp_path)  # no workspace here: only the flag finds it
    runner = CliRunner(env={"SETPOINT_WORKSPACE": None})
    root = str(cli.root)
    for args in (
        ["-w", root, "data", "list", "--json"],
        ["data", "list", "-w", root, "--json"],
        ["data", "list", "--json", "--workspace", root],
        ["--json", "data", "list", f"--workspace={root}"],
        ["data", "-w", root, "list", "--json"],
        ["data", "quarantine", "list", "-w", root, "--json"],
        ["audit", "-w", root, "--json"],
    ):
        result = runner.invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, (args, result.output)
        assert isinstance(json.loads(result.stdout), list), args
    listed = runner.invoke(app, ["data", "list", "-w", root, "--json"])
    assert [d["ref"] for d in json.loads(listed.stdout)] == ["loans@1"]


def test_help_shows_the_global_flags_where_they_work() -> None:
    runner = CliRunner(env={"COLUMNS": "80"})
    root = runner.invoke(app, ["--help"])
    assert root.exit_code == 0
    assert "--json" in root.stdout
    assert "--workspace" in root.stdout
    sub = runner.invoke(app, ["data", "list", "--help"])
    assert sub.exit_code == 0
    assert "--json" in sub.stdout
    assert "--workspace" in sub.stdout
