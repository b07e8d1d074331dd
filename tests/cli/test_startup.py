"""What the ``setpoint`` command loads before it works: only what the command needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from setpoint import __version__
from setpoint.cli.main import app

# Runs the command in a fresh interpreter, then names the heavy packages it loaded.
_PROBE = """
import sys
from setpoint.cli.main import app
try:
    app(sys.argv[1:], prog_name="setpoint")
except SystemExit as exit:
    assert not exit.code, exit.code
heavy = ("sklearn", "scipy", "lightgbm", "xgboost", "uvicorn", "starlette")
print("loaded:", *(name for name in heavy if name in sys.modules))
"""


def _loaded(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, check=True
    )
    last = done.stdout.splitlines()[-1].split()
    assert last[0] == "loaded:", done.stdout
    return set(last[1:])


def test_data_commands_load_no_model_library_nor_the_server(tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("a,b\n1,x\n2,y\n", encoding="utf-8")
    ws = str(tmp_path / "ws")
    assert _loaded("init", ws) == set()
    assert _loaded("-w", ws, "data", "add", "rows", str(data)) == set()
    assert _loaded("-w", ws, "data", "list") == set()


def test_every_command_is_listed_and_runs_its_own_help() -> None:
    runner = CliRunner(env={"COLUMNS": "80"})
    listed = runner.invoke(app, ["--help"])
    assert listed.exit_code == 0
    for name in ("data", "models", "serve", "monitor", "erase", "train", "init"):
        assert f" {name} " in listed.stdout, name
    compare = runner.invoke(app, ["monitor", "compare", "--help"])
    assert compare.exit_code == 0
    assert "REFERENCE" in compare.stdout


def test_version_answers_without_a_command() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert (result.exit_code, result.stdout.strip()) == (0, f"setpoint {__version__}")


_GC_PROBE = """
import gc, sys
import setpoint.cli
assert gc.isenabled()  # importing the package changes nothing
from setpoint.cli import main
from setpoint.cli import _common

seen = []
opened = _common.State.workspace

def workspace(self):
    seen.append(("before", gc.isenabled()))
    try:
        return opened(self)
    finally:
        seen.append(("after", gc.isenabled()))

_common.State.workspace = workspace
try:
    main()
except SystemExit as exit:
    assert not exit.code, exit.code
print(seen[:2], gc.isenabled())
"""


def test_the_collector_is_off_only_until_the_command_opens_its_workspace(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    subprocess.run(
        [sys.executable, "-c", "from setpoint.cli import main; main()", "init", ws],
        capture_output=True,
        check=True,
    )
    done = subprocess.run(
        [sys.executable, "-c", _GC_PROBE, "-w", ws, "data", "list"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.splitlines()[-1] == "[('before', False), ('after', True)] True"
    # A command that opens no workspace ends with the collector on too.
    done = subprocess.run(
        [sys.executable, "-c", _GC_PROBE, "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines()[-1] == "[] True"
