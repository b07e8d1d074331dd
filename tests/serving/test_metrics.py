"""Prometheus metrics: what the server records, in one process and across workers."""

from __future__ import annotations

import contextlib
import enum
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace as NS

import httpx
import pandas as pd
import pytest
from serving_support import SPEC, MemoryLog, requests_of, setpoint_serve
from starlette.testclient import TestClient

from setpoint.serving.app import create_app
from setpoint.serving.metrics import ServingMetrics, _circuit_code
from setpoint.workspace import Workspace


class LaggingLog(MemoryLog):
    """A log that can tell how long its oldest record has waited to become durable."""

    def __init__(self, age: float | None) -> None:
        super().__init__()
        self.age = age

    def pending_age(self) -> float | None:
        return self.age


@contextlib.contextmanager
def client_for(workspace: Workspace, log: MemoryLog) -> Iterator[TestClient]:
    with TestClient(create_app(workspace, log)) as client:
        yield client


@pytest.fixture
def client(served: Workspace, memory_log: MemoryLog) -> Iterator[TestClient]:
    with client_for(served, memory_log) as client:
        yield client


def metrics_of(client: TestClient) -> ServingMetrics:
    metrics: ServingMetrics = client.app.state.serving.metrics  # type: ignore[attr-defined]
    return metrics


def value(text: str, series: str) -> float | None:
    """The value of one exact series (name and labels) in the exposition text."""
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    return None if match is None else float(match.group(1))


def total(text: str, name: str) -> float:
    """The sum of every series of ``name`` over all its labels."""
    return sum(
        float(m.group(1)) for m in re.finditer(rf"^{re.escape(name)}(?:{{.*}})? (\S+)$", text, re.M)
    )


def test_cache_fallback_shed_and_routing_are_counted(client: TestClient) -> None:
    metrics = metrics_of(client)
    for hit in (True, True, False):
        metrics.cache("credit", hit)
    metrics.fallback("credit", "circuit_open")
    metrics.fallback("credit", "circuit_open")
    metrics.fallback("credit", "latency_budget")
    metrics.shed("credit")
    metrics.routed("credit", "champion", 5)
    metrics.routed("credit", "champion")
    metrics.routed("credit", "shadow", 2)
    text = client.get("/metrics").text
    expected = {
        'setpoint_cache_requests_total{endpoint="credit",result="hit"}': 2,
        'setpoint_cache_requests_total{endpoint="credit",result="miss"}': 1,
        'setpoint_fallbacks_total{endpoint="credit",reason="circuit_open"}': 2,
        'setpoint_fallbacks_total{endpoint="credit",reason="latency_budget"}': 1,
        'setpoint_shed_requests_total{endpoint="credit"}': 1,
        'setpoint_routed_requests_total{endpoint="credit",route="champion"}': 6,
        'setpoint_routed_requests_total{endpoint="credit",route="shadow"}': 2,
    }
    assert {series: value(text, series) for series in expected} == expected
    assert 'reason="model_error"' not in text


@pytest.mark.parametrize(
    ("record", "argument"),
    [("fallback", "timeout"), ("routed", "challenger")],
)
def test_an_unknown_reason_or_route_is_refused(
    client: TestClient, record: str, argument: str
) -> None:
    with pytest.raises(ValueError, match=argument):
        getattr(metrics_of(client), record)("credit", argument)
    assert argument not in client.get("/metrics").text


def test_batch_counts_are_sampled_once_however_often_it_is_scraped(
    client: TestClient, history: pd.DataFrame
) -> None:
    rows = {"records": requests_of(history.head(2))}
    for _ in range(3):
        assert client.post("/v1/endpoints/credit/predict", json=rows).status_code == 200
    for _ in range(3):
        text = client.get("/metrics").text
        assert value(text, 'setpoint_batched_requests_total{endpoint="credit"}') == 3
        assert value(text, 'setpoint_batches_total{endpoint="credit"}') == 3
        assert value(text, 'setpoint_queue_depth{endpoint="credit"}') == 0
        assert value(text, 'setpoint_last_batch_requests{endpoint="credit"}') == 1


def test_the_circuit_state_of_each_endpoint_is_reported(client: TestClient) -> None:
    series = 'setpoint_circuit_state{endpoint="credit",model="credit-risk"}'
    assert value(client.get("/metrics").text, series) == 0
    runtime = client.app.state.serving.runtimes["credit"]  # type: ignore[attr-defined]
    runtime.circuit_state = lambda: "open"  # stands in for a tripped breaker
    assert value(client.get("/metrics").text, series) == 2
    runtime.circuit_state = lambda: "half-open"
    assert value(client.get("/metrics").text, series) == 1


def test_a_runtime_without_a_circuit_reports_no_circuit_state() -> None:
    runtime = NS(
        batcher=NS(stats=NS(batches=0, items=0, last_batch_size=0), queue_depth=0),
        model=NS(version=NS(name="credit-risk", version=1)),
    )
    text = ServingMetrics(lambda: {"credit": runtime}).render().decode()  # type: ignore[dict-item]
    assert value(text, 'setpoint_served_version{endpoint="credit",model="credit-risk"}') == 1
    assert "setpoint_circuit_state{" not in text
    assert value(text, "setpoint_workers") == 1  # one process: one worker


class Circuit(enum.Enum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


class NumberedCircuit(enum.IntEnum):  # numbers unlike the gauge's: the name decides
    OPEN = 0
    HALF_OPEN = 1
    CLOSED = 2


@pytest.mark.parametrize(
    ("state", "code"),
    [
        ("closed", 0),
        ("HALF-OPEN", 1),
        ("half_open", 1),
        (Circuit.OPEN, 2),
        (NumberedCircuit.OPEN, 2),
        (NumberedCircuit.CLOSED, 0),
        (1, 1),
        (7, None),
        (True, None),
        ("tripped", None),
        (None, None),
    ],
)
def test_circuit_states_map_to_the_gauge(state: object, code: int | None) -> None:
    assert _circuit_code(state) == code


def test_log_lag_is_reported_only_by_a_log_that_can_tell_it(served: Workspace) -> None:
    for log, lag in ((MemoryLog(), None), (LaggingLog(1.5), 1.5), (LaggingLog(None), 0.0)):
        with client_for(served, log) as client:
            assert value(client.get("/metrics").text, "setpoint_log_lag_seconds") == lag


# Several workers: each a real process recording into one directory.

WORKER = """
import sys
from types import SimpleNamespace as NS
from setpoint.serving.metrics import ServingMetrics

requests, depth, close = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "close"
runtime = NS(
    batcher=NS(stats=NS(batches=requests, items=requests, last_batch_size=1), queue_depth=depth),
    model=NS(version=NS(name="credit-risk", version=1)),
)
metrics = ServingMetrics(lambda: {"credit": runtime})
assert metrics.multiprocess
for _ in range(requests):
    metrics.observe("credit", 1, "native", 200, 0.01)
    metrics.cache("credit", hit=True)
    metrics.routed("credit", "champion")
metrics.fallback("credit", "model_error")
metrics.shed("credit")
sys.stdout.write(metrics.render().decode())
if close:
    metrics.close()
"""


def worker(directory: Path, requests: int, depth: int, *, close: bool) -> str:
    """Run one worker process to its end; what its /metrics said before it ended."""
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(requests), str(depth), "close" if close else "-"],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_any_worker_reports_the_totals_of_all(tmp_path: Path) -> None:
    first = worker(tmp_path, 3, depth=5, close=True)
    assert value(first, 'setpoint_queue_depth{endpoint="credit"}') == 5
    worker(tmp_path, 4, depth=6, close=False)  # killed: never closed
    last = worker(tmp_path, 0, depth=2, close=False)
    requests = (
        'setpoint_requests_total{endpoint="credit",protocol="native",status="200",version="1"}'
    )
    assert value(last, requests) == 7
    assert value(last, 'setpoint_request_seconds_count{endpoint="credit",protocol="native"}') == 7
    assert value(last, 'setpoint_cache_requests_total{endpoint="credit",result="hit"}') == 7
    assert value(last, 'setpoint_routed_requests_total{endpoint="credit",route="champion"}') == 7
    assert value(last, 'setpoint_fallbacks_total{endpoint="credit",reason="model_error"}') == 3
    assert value(last, 'setpoint_shed_requests_total{endpoint="credit"}') == 3
    assert value(last, 'setpoint_batched_requests_total{endpoint="credit"}') == 7
    # Live gauges count live workers only: the closed and the killed one are gone.
    assert value(last, 'setpoint_queue_depth{endpoint="credit"}') == 2
    assert value(last, 'setpoint_served_version{endpoint="credit",model="credit-risk"}') == 1


@pytest.mark.slow
def test_every_scrape_of_several_workers_counts_every_request(
    tmp_path: Path, history: pd.DataFrame
) -> None:
    ws = Workspace.init(tmp_path / "ws", actor="tester")
    ws.add_dataset("loans", history)
    version = ws.train(SPEC)
    ws.promote(version.name, version.version)
    ws.deploy("credit", model="credit-risk")
    ws.close()
    temp = tmp_path / "tmp"  # where the server makes its metrics directory
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    rows = {"records": requests_of(history.head(1))}
    with setpoint_serve(ws.root, tmp_path / "server.log", env, ["--workers", "2"]) as served:

        def predict(_: int) -> int:  # a connection each, so that both workers get some
            return httpx.post(f"{served.url}/v1/endpoints/credit/predict", json=rows).status_code

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(predict, range(40))) == [200] * 40, served.output()
        assert len(list(temp.glob("setpoint-metrics-*"))) == 1
        for _ in range(10):
            text = httpx.get(f"{served.url}/metrics").text
            assert total(text, "setpoint_requests_total") == 40, text
            assert total(text, "setpoint_request_seconds_count") == 40, text
            assert value(text, "setpoint_workers") == 2, text
        # Batch counts are sampled once a second by each worker.
        deadline = time.monotonic() + 10
        while (
            total(httpx.get(f"{served.url}/metrics").text, "setpoint_batched_requests_total") < 40
        ):
            assert time.monotonic() < deadline, "the workers' batch counts did not add up to 40"
            time.sleep(0.1)
    assert list(temp.glob("setpoint-metrics-*")) == []
