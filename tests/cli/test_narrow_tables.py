"""Listings in an 80-column terminal: every name whole, no cell cut short, no line too long."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cli_support import Cli, loans
from typer.testing import CliRunner

from setpoint.cli.main import app
from setpoint.serving.log import RecordLog
from setpoint.workspace import Workspace

DATASET = "housing-high-value-neighbourhoods-2024-q1"  # 41 characters
MODEL = "classification-of-default-risk-per-grade"
ENDPOINT = "credit-decisions-for-the-partner-channel"
MESSAGE = (
    "income: distribution moved (PSI 0.31 > 0.2; the mean rose from 50,120 to 61,870) "
    "in 41% of the input features"
)
DAY = datetime(2026, 6, 1, tzinfo=UTC)


def _squeezed(text: str) -> str:
    """The output without whitespace and table rules: a wrapped name reads whole again."""
    return re.sub(r"[\s│┃─━┡┩┏┓┗┛┳┻╇╈┼╋┃╭╮╰╯]", "", text)


def _narrow(root: Path, *args: str) -> str:
    result = CliRunner(env={"COLUMNS": "80"}).invoke(
        app, ["-w", str(root), *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def _traffic(ws: Workspace, frame: Any) -> None:
    """A day of logged requests to the endpoint, as the server would log them."""
    features = frame.drop(columns=["defaulted"]).to_dict(orient="records")
    log = RecordLog(ws.root, kind="predictions")
    log.append(
        [
            {
                "request_id": f"r{i}",
                "row": 0,
                "ts": DAY + timedelta(minutes=i),
                "endpoint": ENDPOINT,
                "model": MODEL,
                "version": 1,
                "route": "champion",
                "inputs": row,
                "outputs": {"prediction": i % 2, "probabilities": [0.6, 0.4]},
                "latency_ms": 2.0,
                "cached": False,
                "fallback": False,
            }
            for i, row in enumerate(features)
        ]
    )
    log.close()


def test_listings_fit_80_columns_without_cutting_a_name(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "loans.csv"
    loans().to_csv(data, index=False)
    cli("data", "add", DATASET, str(data), "--description", "sales of the upper decile")
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"model: {MODEL}\ndataset: {DATASET}@latest\ntarget: defaulted\nseed: 1\n")
    cli("train", str(spec), "--promote", "champion")
    cli("deploy", ENDPOINT, "--model", f"{MODEL}@champion")
    cli("monitor", "create", ENDPOINT, "--window", "1d", "--no-multivariate")
    ws = Workspace.open(cli.root)
    try:
        _traffic(ws, loans(n=400, seed=3))
        ws.monitors.alerts.raise_alert(ENDPOINT, "drift:dataset", "warning", MESSAGE)
    finally:
        ws.close()
    cli("monitor", "run", ENDPOINT, "--until", "2026-06-02T00:00:00")

    for command, names in (
        (("data", "list"), [f"{DATASET}@1", "sales of the upper decile"]),
        (("models", "list"), [MODEL, "champion→1"]),
        (("alerts", "list"), [ENDPOINT, MESSAGE]),
        (("monitor", "show", ENDPOINT), [ENDPOINT, f"{DATASET}@1", "2026-06-01"]),
    ):
        shown = _narrow(cli.root, *command)
        assert "…" not in shown, shown
        too_long = [line for line in shown.splitlines() if len(line) > 80]
        assert not too_long, shown
        for name in names:
            assert _squeezed(name) in _squeezed(shown), (name, shown)
