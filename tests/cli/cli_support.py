"""Helpers the CLI tests share: a way to run commands in a workspace, and loans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from setpoint.cli.main import app


class Cli:
    """``setpoint -w ROOT ...`` in-process, checking the exit code."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runner = CliRunner(env={"COLUMNS": "200"})  # tables unwrapped

    def __call__(self, *args: str, code: int = 0) -> Any:
        result = self.runner.invoke(app, ["-w", str(self.root), *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    def json(self, *args: str, code: int = 0) -> Any:
        return json.loads(self(*args, "--json", code=code).stdout)

    def fails(self, *args: str, code: int, message: str) -> None:
        """The command exits with ``code`` and says ``message``, with and without --json."""
        result = self(*args, code=code)
        # The message is wrapped at the terminal's width wherever its words fall (a
        # long temporary path moves them): compared with the lines joined.
        assert message in " ".join(result.stderr.split()), result.stderr
        assert "Traceback" not in result.output
        assert message in self.json(*args, code=code)["error"]["message"]


def loans(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.normal(50_000, 10_000, n).round()
    grade = rng.choice(["A", "B", "C"], n)
    risk = (grade == "C") * 1.5 - (income - 50_000) / 10_000 + rng.normal(0, 1, n)
    return pd.DataFrame({"income": income, "grade": grade, "defaulted": (risk > 0.5).astype(int)})
