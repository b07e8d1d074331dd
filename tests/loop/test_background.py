"""The loop beside the server: ``setpoint serve`` runs the job worker in a thread."""

from __future__ import annotations

import threading

import pytest
from starlette.testclient import TestClient

from setpoint.errors import UsageError
from setpoint.loop.background import background
from setpoint.serving.app import create_app
from setpoint.serving.log import RecordLog
from setpoint.serving.server import serve
from setpoint.workspace import Workspace


def test_the_server_runs_its_background_work_and_stops_it(workspace: Workspace) -> None:
    running, stopped = threading.Event(), threading.Event()

    def work(stop: threading.Event) -> None:
        running.set()
        stop.wait()
        stopped.set()

    app = create_app(workspace, RecordLog(workspace.root, kind="predictions"), background=work)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert running.wait(10)
        assert not stopped.is_set()
    assert stopped.wait(10)


def test_background_modes(workspace: Workspace) -> None:
    assert background(workspace, "off") is None
    assert callable(background(workspace, "worker"))
    assert callable(background(workspace, "loop", every=60))
    with pytest.raises(UsageError, match="off, worker or loop"):
        background(workspace, "sometimes")
    with pytest.raises(UsageError, match="positive"):
        background(workspace, "loop", every=0)


def test_the_worker_thread_runs_due_jobs(workspace: Workspace) -> None:
    from setpoint.jobs import JobStore

    job = JobStore(workspace.db).enqueue("unknown-kind", {})
    stop = threading.Event()
    work = background(workspace, "worker", poll_seconds=0.05)
    assert work is not None
    thread = threading.Thread(target=work, args=(stop,))
    thread.start()
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert JobStore(workspace.db).get(job.id).state == "queued"  # no handler: left alone


def test_serving_refuses_the_loop_in_several_processes(workspace: Workspace) -> None:
    with pytest.raises(UsageError, match="setpoint loop"):
        serve(
            str(workspace.root),
            host="127.0.0.1",
            port=0,
            workers=2,
            insecure=False,
            has_keys=False,
            overrides={},
            background="loop",
        )
