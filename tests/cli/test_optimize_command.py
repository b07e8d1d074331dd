"""``setpoint optimize`` and ``setpoint models optimize``: the table, --json, the options
and the mistakes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
from cli_support import Cli, loans
from typer.testing import CliRunner

from setpoint.cli.main import app
from setpoint.workspace import Workspace

# The command, not the stores: on SQLite only (conftest.py).
pytestmark = pytest.mark.one_database


def trained(cli: Cli, estimator: str = "lightgbm.LGBMClassifier", **params: Any) -> str:
    with Workspace.open(cli.root) as ws:
        ws.add_dataset("loans", loans(400))
        version = ws.train(
            {
                "model": "risk",
                "dataset": "loans@latest",
                "target": "defaulted",
                "estimator": {"class": estimator, "params": params},
                "seed": 1,
            }
        )
        return version.ref


def test_optimize_prints_the_table_in_80_columns(cli: Cli) -> None:
    ref = trained(cli, n_estimators=30)
    narrow = CliRunner(env={"COLUMNS": "80"})
    plot = cli.root / "pareto.svg"
    result = narrow.invoke(
        app,
        ["-w", str(cli.root), "optimize", ref, "--calls", "5", "--plot", str(plot)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    svg = ET.fromstring(plot.read_text(encoding="utf-8"))  # the candidates, on the hold-out
    labels = {el.text for el in svg.iter("{http://www.w3.org/2000/svg}text")}
    assert {"original", "compiled", "onnx", "pruned", "distilled"} <= labels
    lines = result.stdout.splitlines()
    assert f"Plot: {plot}" in lines
    # the tables fit; the plot's path (the caller's own, here a long temporary one) is said whole
    assert max(len(line) for line in lines if not line.startswith("Plot: ")) <= 80, result.stdout
    header = next(line for line in lines if line.startswith("candidate") and "same label" in line)
    assert header.split()[:5] == ["candidate", "version", "same", "label", "max"]
    for name, version in [("compiled", 2), ("onnx", 3), ("pruned", 4), ("distilled", 5)]:
        assert any(line.split()[:2] == [name, f"risk@{version}"] for line in lines), name
    assert "no int8 quantization" in result.stdout
    assert "setpoint models promote risk 2" in result.stdout
    shown = cli("models", "show", "risk@2").stdout
    assert "optimised from  risk@1 (compiled)" in shown
    assert "compiled / classification" in shown
    card = cli("models", "card", "risk@3").stdout
    assert "risk@1 (onnx candidate of `setpoint optimize`)" in card


def test_models_optimize_json_with_the_options(cli: Cli) -> None:
    ref = trained(cli, n_estimators=30)
    report = cli.json(
        "models",
        "optimize",
        ref,
        "--only",
        "pruned,onnx",
        "--trees",
        "3",
        "--no-register",
        "--calls",
        "5",
    )
    assert report["original"] == ref
    assert [(row["candidate"], row["ref"]) for row in report["candidates"]] == [
        ("original", None),
        ("onnx", None),
        ("pruned", None),
    ]
    onnx = report["candidates"][1]
    assert onnx["max_difference"] <= 1e-5
    assert set(onnx) >= {
        "same_labels",
        "metric",
        "delta",
        "p50_ms",
        "p99_ms",
        "rows_per_second",
        "size_bytes",
        "cost_per_1000",
    }
    assert cli.json("models", "list")[0]["latest"] == 1
    folder = cli.root / "plots"
    folder.mkdir()
    cli.fails("optimize", ref, "--plot", str(folder), code=2, message="is a folder")
    missing = str(folder / "no" / "p.svg")
    cli.fails("optimize", ref, "--plot", missing, code=2, message="its folder does not exist")


def test_mistakes_exit_without_a_traceback(cli: Cli) -> None:
    ref = trained(cli, n_estimators=5)
    cli.fails("optimize", ref, "--only", "int4", code=2, message="unknown candidate(s) int4")
    cli.fails("optimize", "nosuch@1", code=3, message="nosuch")
    with Workspace.open(cli.root) as ws:
        linear = ws.train(
            {
                "model": "linear",
                "dataset": "loans@latest",
                "target": "defaulted",
                "estimator": {"class": "sklearn.linear_model.LogisticRegression"},
                "seed": 1,
            }
        ).ref
    cli.fails("optimize", linear, "--only", "compiled", code=2, message="compiled does not apply")
