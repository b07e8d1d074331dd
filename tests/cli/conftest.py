"""The CLI tests' workspace: made with ``setpoint init`` on every storage backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import Cli
from typer.testing import CliRunner

from setpoint.cli.main import app


@pytest.fixture
def cli(tmp_path: Path, database_url: str | None) -> Cli:
    root = tmp_path / "ws"
    args = ["init", str(root)] + (["--database-url", database_url] if database_url else [])
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return Cli(root)
