"""Listings in an 80-column terminal: every name whole, no cell cut short, no line too long."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cli_support import Cli, loans
from rich.console import Console
from typer.testing import CliRunner

from setpoint.cli.main import app
from setpoint.cli.monitoring import _table as windows_table
from setpoint.demo import walkthrough
from setpoint.serving.log import RecordLog
from setpoint.workspace import Workspace

# The command line, not the stores (their own tests run on both databases): the
# workspace on SQLite only (conftest.py).
pytestmark = pytest.mark.one_database

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


def _narrow(root: Path | None, *args: str) -> str:
    workspace = [] if root is None else ["-w", str(root)]
    result = CliRunner(env={"COLUMNS": "80", "SETPOINT_WORKSPACE": None}).invoke(
        app, [*workspace, *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def _fits(shown: str, names: list[str]) -> None:
    """No cell cut short, no line past 80 columns, every name there whole."""
    assert "…" not in shown, shown
    too_long = [line for line in shown.splitlines() if len(line) > 80]
    assert not too_long, shown
    for name in names:
        assert _squeezed(name) in _squeezed(shown) or _in_a_column(name, shown), (name, shown)


def _in_a_column(name: str, shown: str) -> bool:
    """Whether ``name`` reads whole down one column of a table: begun on a line and
    folded onto the lines below, at the same place, beside other columns' cells."""
    want = _squeezed(name)
    lines = shown.splitlines()
    for i, line in enumerate(lines):
        for at in (m.start() for m in re.finditer(re.escape(name.split()[0][:6]), line)):
            read = ""
            for below in lines[i:]:
                read += _squeezed(re.split(r"\s{2,}", below[at:].lstrip(" "), maxsplit=1)[0])
                if not want.startswith(read) or read == want:
                    break
            if read == want:
                return True
    return False


def _traffic(ws: Workspace, frame: Any, start: datetime = DAY) -> None:
    """A day of logged requests to the endpoint, as the server would log them."""
    features = frame.drop(columns=["defaulted"]).to_dict(orient="records")
    log = RecordLog(ws.root, kind="predictions")
    log.append(
        [
            {
                "request_id": f"r{i}",
                "row": 0,
                "ts": start + timedelta(minutes=i),
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
        _fits(_narrow(cli.root, *command), names)


def _served(cli: Cli, tmp_path: Path) -> Any:
    """A long-named dataset, model and endpoint (keeping its logs a day), with a day of
    traffic a month ago; the loans it was trained on."""
    frame = loans()
    data = tmp_path / "loans.csv"
    frame.to_csv(data, index=False)
    cli("data", "add", DATASET, str(data))
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"model: {MODEL}\ndataset: {DATASET}@latest\ntarget: defaulted\nseed: 1\n")
    cli("train", str(spec), "--promote", "champion")
    cli("deploy", ENDPOINT, "--model", f"{MODEL}@champion", "--log-retention", "1d")
    ws = Workspace.open(cli.root)
    try:
        _traffic(ws, frame.head(50), start=datetime.now(UTC) - timedelta(days=30))
    finally:
        ws.close()
    return frame


def test_erase_fits_80_columns(cli: Cli, tmp_path: Path) -> None:
    frame = _served(cli, tmp_path)
    income = int(frame["income"].iloc[0])
    shown = _narrow(cli.root, "erase", "--where", f"income={income}")
    _fits(shown, [f"dataset {DATASET}@1", f"now {DATASET}@2", "predictions log", f"{MODEL}@1"])


def test_logs_prune_fits_80_columns(cli: Cli, tmp_path: Path) -> None:
    _served(cli, tmp_path)
    shown = _narrow(cli.root, "logs", "prune", ENDPOINT, "--dry-run")
    _fits(shown, [ENDPOINT, "predictions", "rows would remove", "50"])


def test_logs_compact_fits_80_columns_and_compacts(cli: Cli, tmp_path: Path) -> None:
    _served(cli, tmp_path)
    shown = _narrow(cli.root, "logs", "compact")
    _fits(shown, ["predictions", "feedback", "refused", "parts written", "still open"])
    assert cli.json("logs", "compact")["predictions"]["segments"] == 0  # nothing left


def test_monitor_compare_fits_80_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(5)
    names = [f"{what}_declared_by_the_applicant_at_the_branch" for what in ("income", "savings")]
    names.append("number_of_previous_applications_in_the_partner_channel")

    def table(n: int, shift: float) -> pd.DataFrame:
        columns = {name: rng.normal(50 + shift, 10, n) for name in names}
        return pd.DataFrame(columns).assign(approved=lambda f: (f[names[0]] > 52).astype(int))

    table(2_000, 0.0).to_csv("reference.csv", index=False)
    table(1_500, 8.0).to_csv("current.csv", index=False)
    shown = _narrow(
        None,
        "monitor",
        "compare",
        "reference.csv",
        "current.csv",
        "--target",
        "approved",
        "--chunk",
        "500",
        "--no-multivariate",
    )
    _fits(shown, [*names, "Chunks"])


def test_demo_output_fits_80_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's tables at 80 columns, on a result with long values (the demo itself
    runs in tests/cli/test_demo.py)."""
    gates = (
        f"{MODEL}@2 beat the champion on roc_auc by 0.031 (at least 0.01 asked), "
        "with 90% confidence on 4,212 rows of the partner channel"
    )

    def run(path: Path, **_: Any) -> walkthrough.DemoResult:
        result = walkthrough.DemoResult(path, report=path / "report.html", audit=path / "audit")
        result.add("dataset", f"{DATASET}@1 (30,000 rows)")
        result.add("gates passed", gates)
        result.weeks = [
            walkthrough.Week(
                DAY + timedelta(weeks=k), 1_234_567, 0.5, k > 2, MODEL + "@2", 0.81, 0.7
            )
            for k in range(4)
        ]
        return result

    monkeypatch.setattr(walkthrough, "run", run)
    monkeypatch.chdir(tmp_path)
    shown = _narrow(None, "demo", "--path", "demo")
    _fits(shown, [f"{DATASET}@1", gates, f"{MODEL}@2", "1,234,567"])


def test_monitor_windows_at_80_columns_cut_no_figure() -> None:
    """Hourly windows of a busy endpoint: the figures are whole, or the windows are
    listed one record each, never cut to "0.5…"."""
    window = {
        "start": "2026-06-01T13:00:00+00:00",
        "rows": 1_234_567,
        "judged": False,
        "drift_share": None,
        "prediction_drifted": None,
        "domain_auc": 0.51234,
        "estimated_accuracy": 0.81234,
        "realized_accuracy": 0.80123,
        "labels": 123_456,
        "p99_ms": 1234.5,
    }
    judged = {**window, "judged": True, "drift_share": 0.41, "prediction_drifted": True}
    console = Console(width=80, highlight=False)
    with console.capture() as shown:
        windows_table(console, ENDPOINT, [window, judged])
    _fits(shown.get(), [ENDPOINT, "1,234,567", "0.512", "0.812", "0.801", "123456"])


def test_a_fairness_table_of_long_group_names_fits() -> None:
    from setpoint.cli.models import render_fairness
    from setpoint.models.fairness import fairness_table, judged

    rng = np.random.default_rng(0)
    groups = {"region": rng.choice([DATASET, "south", "tiny"], 400, p=[0.5, 0.45, 0.05])}
    y = rng.integers(0, 2, 400)
    table = fairness_table(y, rng.integers(0, 2, 400), groups, task="classification")
    console = Console(width=80, record=True)
    render_fairness(console, judged(table, positive=1, max_disparity=0.05))
    shown = console.export_text()
    _fits(shown, [f"region={DATASET}", "region=tiny"])
    assert "too few" in shown  # the tiny group, shown but not judged
    assert "over the 0.05 allowed" in " ".join(shown.split())
