"""A YAML file with a syntax error is refused naming the file, the line and the column."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import Cli

# The command line, not the stores (their own tests run on both databases): the
# workspace on SQLite only (conftest.py).
pytestmark = pytest.mark.one_database

# Each opens a flow collection and never closes it: the parser notices at the first
# ':' it cannot take (the line and column of that ':', counted from 1).
BROKEN = {
    "spec": ("spec.yaml", "name: risk\ndataset: [loans\nlabel: defaulted\n", "3:6"),
    "contract": (
        "contract.yaml",
        "columns:\n  grade: {kind: [A, B\nunknown_columns: reject\n",
        "3:16",
    ),
    "policy": ("policy.yaml", "triggers: [drift_share: 0.3\ncooldown: 1d\n", "2:9"),
}
COMMANDS = {
    "spec": ["train", "{file}"],
    "contract": ["data", "attach-contract", "loans", "{file}"],
    "policy": ["policy", "set", "credit", "{file}"],
}


@pytest.mark.parametrize("kind", BROKEN)
def test_a_yaml_syntax_error_names_the_file_line_and_column(
    cli: Cli, tmp_path: Path, kind: str
) -> None:
    name, text, where = BROKEN[kind]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    args = [a.format(file=path) for a in COMMANDS[kind]]
    result = cli(*args, code=2)
    assert f"{path}:{where}: " in result.stderr, result.stderr
    assert "<unicode string>" not in result.output
    assert "Traceback" not in result.output
    assert f"{path}:{where}: " in cli.json(*args, code=2)["error"]["message"]


def test_a_specs_mistakes_come_before_any_progress(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: risk\ndataset: loans\ntarget: y\nsead: 1\n", encoding="utf-8")
    result = cli("train", str(spec), code=2)
    assert result.stderr.startswith(f"error: {spec}:4:1: sead: unknown key; did you mean 'seed'?")
