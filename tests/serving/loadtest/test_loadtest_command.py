"""``setpoint loadtest`` end to end: a real ``setpoint serve`` on a loopback port, a
tiny model, a low rate. Nothing here asserts a timing: the objective is set far out
of reach of a busy machine, and the checks are on what was sent, answered and kept."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
from serving_support import SPEC, free_port, setpoint_serve
from typer.testing import CliRunner

from setpoint.cli.main import app
from setpoint.errors import UsageError
from setpoint.workspace import Workspace


@pytest.fixture
def keyed(tmp_path: Path, history: pd.DataFrame) -> tuple[Path, str]:
    """A workspace serving ``credit`` (a logistic regression) that needs an API key."""
    with Workspace.init(tmp_path / "ws", actor="tester") as ws:
        ws.add_dataset("loans", history)
        version = ws.train(SPEC)
        ws.promote(version.name, version.version)
        ws.deploy("credit", model="credit-risk")
        _, key = ws.keys.create("predict", note="load test")
    return ws.root, key


def invoke(root: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    runner = CliRunner(env={"COLUMNS": "80", "SETPOINT_API_KEY": "", **(env or {})})
    result = runner.invoke(app, ["-w", str(root), "loadtest", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.slow
def test_a_served_endpoint_is_loaded_planned_recorded_and_plotted(
    keyed: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, key = keyed
    plot = tmp_path / "latency.svg"
    with setpoint_serve(root, tmp_path / "server.log") as served:
        code, _, err = invoke(root, "credit", "--url", served.url, "--rate", "5")
        assert code == 1, err
        assert "--key" in " ".join(err.split())
        assert "Traceback" not in err

        args = ["credit", "--url", served.url, "--rate", "20", "--step-seconds", "1"]
        args += ["--warmup", "0.2", "--p99-ms", "60000", "--timeout", "60", "--target-rps", "50"]
        code, out, err = invoke(
            root, *args, "--plot", str(plot), "--json", env={"SETPOINT_API_KEY": key}
        )
        assert code == 0, err + served.output()
        run = json.loads(out)
        # Without --plot the plot goes to the current folder: the test's, entered only
        # now that the server runs (a relative PYTHONPATH must resolve where it starts).
        monkeypatch.chdir(tmp_path)
        code, text, err = invoke(root, *args, "--no-batch", "--key", key)
        assert code == 0, err
    [step] = run["steps"]
    assert (step["rate"], step["sent"], step["ok"], step["errors"]) == (20, 20, 20, 0), step
    assert step["met"]
    assert run["sustainable_rps"] == 20
    assert run["model"] == "credit-risk@1"
    plan = run["plan"]
    assert (plan["per_core_rps"], plan["replicas"]) == (20, 3)
    assert plan["workers"] == run["settings"]["workers"] == 1  # as its /metrics said
    assert plan["batch_rows_per_cpu_second"] > 0
    svg = ET.parse(plot).getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert "p99" in ET.tostring(svg, encoding="unicode")
    # The human form: the table, the plan, where the plot went, in 80 columns.
    assert "Sustainable rate: 20 req/s" in text
    assert "For 50 req/s: 3 replicas" in text
    assert all(len(line) <= 80 for line in text.splitlines()), text
    written = Path(text.split("Plot: ")[1].split()[0])
    assert written.name.startswith("loadtest-credit-")
    assert (tmp_path / written).is_file()

    code, out, _ = invoke(root, "credit", "--history", "--json")
    listed = json.loads(out)
    assert [t["id"] for t in listed] == [run["id"] + 1, run["id"]]
    assert listed[1]["steps"] == run["steps"]
    code, text, _ = invoke(root, "credit", "--history")
    assert "credit-risk@1" in text


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """A workspace alone: the refusals come before any model is needed."""
    with Workspace.init(tmp_path / "ws", actor="tester") as ws:
        return ws.root


def test_a_server_that_does_not_answer_is_said_without_a_traceback(bare: Path) -> None:
    root = bare
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = invoke(root, "credit", "--url", url, "--rate", "5")
    assert code == 8
    said = " ".join(err.split())
    assert url in said
    assert "setpoint serve" in said
    assert "Traceback" not in err


def test_a_remote_server_is_refused_without_allow_remote(bare: Path) -> None:
    root = bare
    code, _, err = invoke(root, "credit", "--url", "http://192.0.2.1:8000", "--rate", "5")
    assert code == 2
    assert "--allow-remote" in err


def test_the_python_api_names_an_option_it_does_not_take(bare: Path) -> None:
    with Workspace.open(bare) as ws, pytest.raises(UsageError, match=r"'rat'.*p99_ms"):
        ws.loadtest("credit", rat=5)


@pytest.mark.parametrize(
    ("statuses", "says"),
    [
        ({}, "start lower"),
        ({"transport": 3}, "is the server still running?"),
        ({"429": 2}, "2 429"),
    ],
)
def test_a_first_step_that_fails_says_why(statuses: dict[str, int], says: str) -> None:
    from rich.console import Console

    from setpoint.cli.loadtest import render_plan
    from setpoint.serving.loadtest.plan import CapacityPlan
    from setpoint.serving.loadtest.schedule import StepResult

    first = StepResult(
        rate=100, seconds=5, sent=500, answered=500, ok=500, errors=sum(statuses.values()),
        statuses=statuses, achieved=100, p50_ms=2, p90_ms=3, p99_ms=80, p999_ms=90,
        max_ms=95, lag_p99_ms=0.5, met=False, stopped_early=True,
    )  # fmt: skip
    plan = CapacityPlan(sustainable_rps=None, workers=1, target_rps=None, cpu_hour_price=0.03)
    out = io.StringIO()
    render_plan(Console(file=out, width=80), plan, first)
    text = " ".join(out.getvalue().split())
    assert "Not sustainable" in text
    assert says in text
