"""The demo's server: the real app under uvicorn on a free loopback port, in a thread,
with a clock the demo sets (so a week of traffic is logged as a week in seconds)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import uvicorn

from setpoint.errors import SetpointError
from setpoint.serving.app import create_app
from setpoint.serving.log import RecordLog
from setpoint.workspace import Workspace


class Clock:
    """A settable clock: what the server stamps its log records with."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Running:
    url: str
    app: Any

    def follow(self) -> None:
        """Load what the deployments say now (the server also does this on its own,
        every few seconds; the demo does not wait for that)."""
        self.app.state.serving.refresh()


@contextlib.contextmanager
def serve(workspace: Workspace, clock: Clock) -> Iterator[Running]:
    app = create_app(
        workspace,
        RecordLog(workspace.logs, kind="predictions"),
        feedback_log=RecordLog(workspace.logs, kind="feedback"),
        refused_log=RecordLog(workspace.logs, kind="refused"),
        clock=clock,
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="setpoint-demo-server", daemon=True)
    thread.start()
    started = threading.Event()
    while not started.wait(0.02):  # uvicorn sets `started` once it listens
        if server.started:
            started.set()
        elif not thread.is_alive():
            raise SetpointError("the demo's server did not start; see the messages above")
    try:
        yield Running(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
