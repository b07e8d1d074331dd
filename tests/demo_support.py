"""The README's main job, ``setpoint demo``, run as a user runs it: a child process, the
default sizes, the real server on a loopback port. The session's ``demo`` fixture
(conftest.py) runs it once for every test that looks at what it leaves."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DemoRun:
    """What ``setpoint demo --json`` left: its workspace and the summary it printed."""

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
