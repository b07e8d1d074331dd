"""The README's main job, ``setpoint demo``, run as a user runs it: a child process, the
default sizes, the real server on a loopback port.

The session's ``demo`` fixture (conftest.py) runs it once for every test that looks at
what it leaves, across pytest-xdist workers too: the first worker to take a file lock
runs it in the run's shared folder, the others wait and read what it left. (The
``xdist_group`` mark cannot keep such tests in one worker: pytest-xdist 3.8's loadgroup
no longer groups on pytest 9.2, pytest-dev/pytest-xdist#1386.)
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DemoRun:
    """What ``setpoint demo --json`` left: its workspace and the summary it printed.
    Tests that change the workspace work on a copy of ``root``."""

    root: Path
    summary: dict[str, Any]


def run_demo(root: Path) -> DemoRun:
    setpoint = [sys.executable, "-c", "from setpoint.cli import main; main()"]
    done = subprocess.run(
        [*setpoint, "demo", "--path", str(root), "--json"],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return DemoRun(root, json.loads(done.stdout))


def shared_demo(folder: Path) -> DemoRun:
    """The demo in ``folder``, run there by the first process to ask (a failure, too,
    is kept and given to the others)."""
    folder.mkdir(parents=True, exist_ok=True)
    summary, failure = folder / "summary.json", folder / "failure.txt"
    with (folder / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not summary.exists() and not failure.exists():
            try:
                run = run_demo(folder / "demo")
            except (AssertionError, subprocess.TimeoutExpired) as error:
                failure.write_text(str(error), encoding="utf-8")
                raise
            summary.write_text(json.dumps(run.summary), encoding="utf-8")
    assert not failure.exists(), failure.read_text(encoding="utf-8")
    return DemoRun(folder / "demo", json.loads(summary.read_text(encoding="utf-8")))
