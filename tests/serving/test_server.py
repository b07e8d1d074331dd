"""The real server on a real socket: `setpoint serve` in a child process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from serving_support import SPEC, requests_of, setpoint_serve

from setpoint.serving.log import read_log
from setpoint.workspace import Workspace

SETPOINT = (sys.executable, "-c", "from setpoint.cli import main; main()")


@pytest.fixture
def server(
    tmp_path: Path, history: pd.DataFrame
) -> Iterator[tuple[str, Workspace, subprocess.Popen[bytes]]]:
    ws = Workspace.init(tmp_path / "ws", actor="tester")
    ws.add_dataset("loans", history)
    version = ws.train(SPEC)
    ws.promote(version.name, version.version)
    ws.deploy("credit", model="credit-risk")
    with setpoint_serve(ws.root, tmp_path / "server.log") as served:
        yield served.url, ws, served.process
    ws.close()


def test_a_plain_json_client_gets_what_the_model_says(
    server: tuple[str, Workspace, Any], history: pd.DataFrame
) -> None:
    url, ws, _ = server
    rows = requests_of(history.tail(50))
    response = httpx.post(f"{url}/v1/endpoints/credit/predict", json={"records": rows}, timeout=30)
    assert response.status_code == 200, response.text
    expected = ws.load_model("credit-risk").predict_proba(pd.DataFrame(rows))
    assert expected is not None
    np.testing.assert_allclose(response.json()["probabilities"], expected, atol=1e-6)
    label = {"request_id": response.json()["request_id"], "row": 3, "label": 1}
    assert httpx.post(f"{url}/v1/endpoints/credit/feedback", json=label).status_code == 200
    stored = read_log(ws.root, kind="feedback").to_pylist()
    assert [(r["request_id"], r["row"]) for r in stored] == [(label["request_id"], 3)]


def test_sigkill_under_load_loses_no_acknowledged_prediction(
    server: tuple[str, Workspace, subprocess.Popen[bytes]], history: pd.DataFrame
) -> None:
    url, ws, process = server
    rows = requests_of(history.head(200))
    acknowledged: list[str] = []
    lock = threading.Lock()
    enough = threading.Event()

    def client(offset: int) -> None:
        with httpx.Client(timeout=10) as http:
            for i in range(10_000):
                try:
                    response = http.post(
                        f"{url}/v1/endpoints/credit/predict",
                        json={"records": [rows[(offset + i) % len(rows)]]},
                    )
                except httpx.TransportError:
                    return  # the server is gone
                if response.status_code == 200:
                    with lock:
                        acknowledged.append(response.json()["request_id"])
                        if len(acknowledged) >= 300:
                            enough.set()

    threads = [threading.Thread(target=client, args=(n * 7,)) for n in range(8)]
    for t in threads:
        t.start()
    assert enough.wait(timeout=120), "the server did not answer 300 requests"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    for t in threads:
        t.join(timeout=60)
    with lock:
        answered = set(acknowledged)
    logged = set(read_log(ws.root).column("request_id").to_pylist())
    assert answered <= logged, f"{len(answered - logged)} acknowledged predictions were lost"


def test_a_busy_port_is_reported_before_serving_is_announced(
    tmp_path: Path, history: pd.DataFrame
) -> None:
    ws = Workspace.init(tmp_path / "ws", actor="tester")
    ws.add_dataset("loans", history)
    version = ws.train(SPEC)
    ws.promote(version.name, version.version)
    ws.deploy("credit", model="credit-risk")
    ws.close()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [*SETPOINT, "-w", str(ws.root), "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Serving" not in output
    assert "Traceback" not in output
    assert f"port {port} on 127.0.0.1 is already in use" in output
    assert "--port" in output
