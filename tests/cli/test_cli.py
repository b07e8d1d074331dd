"""The ``setpoint`` command end to end (in-process), on every storage backend."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from cli_support import Cli, loans
from typer.testing import CliRunner

from setpoint.cli.main import app

SPEC = """\
model: risk
dataset: loans@latest
target: defaulted
features: [income, grade]
estimator:
  class: sklearn.linear_model.LogisticRegression
  params: {max_iter: 500}
segments: [grade]
fairness: {sensitive: grade, max_disparity: 0.5, min_group: 15}
seed: 1
"""


def test_the_whole_foundation_path(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "loans.csv"
    loans().to_csv(data, index=False)

    added = cli.json(
        "data", "add", "loans", str(data), "--description", "loan book", "--tag", "team=risk"
    )
    assert (added["ref"], added["created"], added["row_count"]) == ("loans@1", True, 300)
    assert cli.json("data", "add", "loans", str(data))["created"] is False
    assert "Unchanged" in cli("data", "add", "loans", str(data)).stdout

    listed = cli.json("data", "list")
    assert [d["ref"] for d in listed] == ["loans@1"]
    shown = cli.json("data", "show", "loans@1")
    assert shown["contract"]["columns"]["grade"]["categories"] == ["A", "B", "C"]
    assert {c["name"] for c in shown["profile"]["columns"]} == {"income", "grade", "defaulted"}
    assert "Profile" in cli("data", "show", "loans").stdout

    contract = tmp_path / "contract.yaml"
    cli("data", "contract", "loans@1", "-o", str(contract))
    edited = contract.read_text(encoding="utf-8").replace("- C\n", "- C\n    - D\n")
    contract.write_text(edited, encoding="utf-8")
    attached = cli.json("data", "attach-contract", "loans@1", str(contract), "--note", "grade D")
    assert attached == {"dataset": "loans@1", "revision": 2}
    assert cli.json("data", "contract", "loans")["columns"]["grade"]["categories"][-1] == "D"

    batch = tmp_path / "batch.csv"
    pd.DataFrame({"income": [50_000.0, 1e9], "grade": ["A", "Q"], "defaulted": [0, 1]}).to_csv(
        batch, index=False
    )
    rejected = cli.json("data", "validate", "loans", str(batch), code=5)
    assert rejected["error"]["code"] == "contract_violation"
    rules = {(v["row"], v["column"], v["rule"]) for v in rejected["error"]["details"]["violations"]}
    assert rules == {(1, "income", "max"), (1, "grade", "category")}
    kept = cli.json("data", "validate", "loans", str(batch), "--mode", "quarantine")
    assert (kept["n_accepted"], kept["quarantine"]["n_rejected"]) == (1, 1)
    assert cli.json("data", "quarantine", "list")[0]["id"] == kept["quarantine"]["id"]
    out = tmp_path / "rejected.csv"
    cli("data", "quarantine", "export", str(kept["quarantine"]["id"]), "-o", str(out))
    exported = pd.read_csv(out)
    assert exported["_row"].tolist() == [1]
    assert "category" in exported["_reasons"][0]

    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    trained = cli.json("train", str(spec))
    assert trained["ref"] == "risk@1"
    assert trained["lineage"]["datasets"][0]["ref"] == "loans@1"
    assert trained["evaluation"]["metrics"]["validation"]["roc_auc"] > 0.7
    cli.json("train", str(spec), "--promote", "champion")

    listed = cli.json("models", "list")
    assert [(m["name"], m["latest"], m["aliases"]) for m in listed] == [
        ("risk", 2, {"champion": 2})
    ]
    assert cli.json("models", "show", "risk")["aliases"] == ["champion"]
    assert cli.json("models", "promote", "risk", "1")["to_version"] == 1
    moved = cli.json("models", "rollback", "risk")
    assert (moved["from_version"], moved["to_version"]) == (1, 2)
    shown = cli("models", "show", "risk@champion").stdout
    assert "risk@2" in shown
    importance = trained["evaluation"]["importance"]
    assert "Top features" in shown
    assert next(iter(importance["features"])) in shown  # the most important, listed
    fairness = trained["evaluation"]["fairness"]
    assert {g["values"]["grade"] for g in fairness["groups"]} == {"A", "B", "C"}
    assert "Fairness on the hold-out (positive class 1)" in shown
    assert " differs by " in shown

    actions = [e["action"] for e in cli.json("audit")]
    assert actions[:3] == ["alias.rollback", "alias.promote", "alias.promote"]
    assert {"workspace.init", "dataset.add", "quarantine.add", "model.register"} <= set(actions)
    assert "alias.rollback" in cli("audit", "--entity", "risk@champion").stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["data", "show", "nothing"], 3, "no dataset 'nothing'"),
        (["data", "add", "loans", "missing.csv"], 2, "no such file"),
        (["models", "promote", "risk", "1"], 3, "no model 'risk'"),
        (["train", "missing.yaml"], 2, "no such spec file"),
        (["data", "add", "Bad Name!", "x.csv"], 2, "dataset name"),
        (["data", "show", "loans@99999999999999999999"], 2, "versions are numbered"),
        (["--range-tolerance", "nan", "data", "list"], 2, "finite float"),
        (["train", "missing.yaml", "--promote", "5"], 2, "cannot be an alias"),
        (["data", "attach-contract", "loans", "missing.yaml"], 2, "no such file"),
    ],
)
def test_mistakes_get_a_message_and_an_exit_code_not_a_traceback(
    cli: Cli, args: list[str], code: int, message: str
) -> None:
    result = cli(*args, code=code)
    assert message in result.stderr
    assert "Traceback" not in result.output
    error = cli.json(*args, code=code)["error"]
    assert message in error["message"]


def test_a_default_spec_trains_and_shows(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "loans.csv"
    loans().to_csv(data, index=False)
    cli("data", "add", "loans", str(data))
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: plain\ndataset: loans\ntarget: defaulted\n", encoding="utf-8")
    assert "default for the task" in cli("train", str(spec)).stdout
    assert "default for the task" in cli("models", "show", "plain").stdout
    cli("data", "contract", "loans", "-o", str(tmp_path / "no" / "such" / "c.yaml"), code=2)


def test_no_workspace_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["-w", str(tmp_path / "none"), "data", "list"])
    assert result.exit_code == 3
    assert "setpoint init" in result.stderr


def test_settings_show_their_source(cli: Cli) -> None:
    rows = {r["name"]: r for r in cli.json("--max-categories", "7", "settings")}
    assert (rows["max_categories"]["value"], rows["max_categories"]["source"]) == (7, "flag")
    assert rows["validation_mode"]["source"] == "default"


def test_help_reads_well() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("init", "data", "train", "models", "audit", "demo"):
        assert command in result.stdout
