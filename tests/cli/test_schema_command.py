"""``setpoint schema NAME`` and the settings files the CLI reads through the same models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import Cli, loans
from typer.testing import CliRunner

from setpoint import _documents
from setpoint.cli.main import app

# The command line, not the stores (their own tests run on both databases): the
# workspace on SQLite only (conftest.py).
pytestmark = pytest.mark.one_database


def _run(*args: str, code: int = 0) -> CliRunner:
    result = CliRunner(env={"COLUMNS": "80"}).invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def test_schema_prints_the_models_json_schema(tmp_path: Path) -> None:
    for name in _documents.DOCUMENTS:
        printed = json.loads(_run("schema", name).stdout)
        assert printed == _documents.schema(name)
    out = tmp_path / "monitor.schema.json"
    _run("schema", "monitor", "-o", str(out))
    assert json.loads(out.read_text()) == _documents.schema("monitor")
    assert Path(_run("schema", "monitor", "--path").stdout.strip()) == _documents.schema_path(
        "monitor"
    )


def test_schema_mistakes_are_named_without_a_traceback(tmp_path: Path) -> None:
    result = _run("schema", "monitr", code=2)
    assert "did you mean 'monitor'?" in result.stderr
    result = _run("schema", "spec", "-o", str(tmp_path / "no" / "such" / "dir.json"), code=2)
    assert "cannot write" in result.stderr
    assert "Traceback" not in result.output


def _add_loans(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "loans.csv"
    loans().to_csv(data, index=False)
    cli("data", "add", "loans", str(data))


def test_monitor_create_reads_a_settings_file_and_options_override_it(
    cli: Cli, tmp_path: Path
) -> None:
    _add_loans(cli, tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: risk\ndataset: loans\ntarget: defaulted\nseed: 1\n")
    cli("train", str(spec), "--promote", "champion")
    cli("deploy", "credit", "--model", "risk@champion")
    settings = tmp_path / "monitor.yaml"
    settings.write_text(
        "window: 6h\nmultivariate: false\ndrift: {alpha: 0.01, effects: {income: 0.3}}\n"
        "webhooks:\n  - {url: 'http://127.0.0.1:9/hook', format: slack}\n"
    )
    made = cli.json("monitor", "create", "credit", "--config", str(settings), "--window", "2h")
    config = made["config"]
    assert config["window"] == "2h"  # the option given wins over the file
    assert config["multivariate"] is False  # the file's value, not the option's default
    assert config["drift"]["alpha"] == 0.01
    assert config["drift"]["effects"] == {"income": 0.3}
    assert config["webhooks"] == [
        {"url": "http://127.0.0.1:9/hook", "format": "slack", "timeout": 5.0}
    ]


def test_a_settings_file_with_mistakes_lists_each_with_its_line(cli: Cli, tmp_path: Path) -> None:
    settings = tmp_path / "monitor.yaml"
    settings.write_text("window: 1d\ndrift:\n  alpah: 0.1\nwebhooks:\n  - url: '[ftp]://x'\n")
    result = cli("monitor", "create", "credit", "--config", str(settings), code=2)
    assert f"{settings} (the monitor settings) has 2 problems:" in result.stderr
    assert f"  - {settings}:3:3: drift.alpah: unknown key; did you mean 'alpha'?" in result.stderr
    # The message is text, not markup: brackets in it are printed as written.
    assert "'[ftp]://x': give an http:// or https:// URL" in result.stderr
    assert "Traceback" not in result.output


def test_an_example_file_starts_with_the_line_that_points_editors_at_the_schema(
    tmp_path: Path,
) -> None:
    for name in _documents.DOCUMENTS:
        out = tmp_path / f"{name}.yaml"
        _run("schema", name, "--example", "-o", str(out))
        text = out.read_text()
        assert text.startswith(
            f"# yaml-language-server: $schema={_documents.schema_path(name).as_uri()}\n"
        )
        _documents.document_class(name).read_yaml(text, source=str(out))
    result = _run("schema", "spec", "--path", "--example", code=2)
    assert "give it alone" in result.stderr


def test_a_contract_written_for_editing_points_editors_at_its_schema(
    cli: Cli, tmp_path: Path
) -> None:
    _add_loans(cli, tmp_path)
    out = tmp_path / "contract.yaml"
    cli("data", "contract", "loans", "-o", str(out))
    first = out.read_text().splitlines()[0]
    assert first == f"# yaml-language-server: $schema={_documents.schema_path('contract').as_uri()}"
    cli("data", "attach-contract", "loans@1", str(out))  # the line is a comment to the reader
