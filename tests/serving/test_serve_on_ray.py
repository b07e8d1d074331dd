"""``setpoint serve --engine ray`` on a local Ray cluster of two nodes, with the
workspace's metadata on PostgreSQL and its artifacts, datasets and prediction log on
the S3 API on loopback: two replicas answer all three protocols, a promotion under load fails no
request, a killed replica is restarted by Ray losing at most what was in flight on
it, and every acknowledged prediction is in the log."""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from serving_support import SPEC, free_port, requests_of, setpoint_serve

from ray_support import ray_cluster  # noqa: F401
from s3_support import s3_bucket, s3_endpoint  # noqa: F401
from setpoint import _ray
from setpoint.errors import ConfigError, UsageError
from setpoint.serving import ray_engine
from setpoint.serving.log import read_log
from setpoint.workspace import Workspace

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    # Ray's own deprecation notices, raised in its threads, are not ours to fix.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

CLIENTS = 6
DEADLINE = 120.0  # for each phase; a healthy run takes seconds
OTHER_ESTIMATOR = {
    "class": "sklearn.linear_model.LogisticRegression",
    "params": {"max_iter": 500, "C": 0.01},
}
PROTOCOLS = ("native", "oip", "mlflow")


@dataclass(frozen=True)
class Sample:
    protocol: str
    income: float  # unique per request: how its record is found in the log
    status: int  # 0: no HTTP answer (body holds the transport error)
    version: int | None
    body: Any
    received: float  # time.monotonic()


class Load:
    """``CLIENTS`` threads posting one-row predictions back to back, each request in
    the next protocol, until stopped."""

    def __init__(self, url: str, rows: list[dict[str, Any]]) -> None:
        self.url, self.rows = url, rows
        self.samples: list[Sample] = []
        self.changed = threading.Condition()
        self.stop = threading.Event()
        self.numbers = itertools.count()
        self.threads = [threading.Thread(target=self._client, args=(n,)) for n in range(CLIENTS)]

    def _client(self, n: int) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as http:
            for i in itertools.count(n):
                if self.stop.is_set():
                    return
                k = next(self.numbers)
                row = {**self.rows[k % len(self.rows)], "income": 20_000.0 + k}
                protocol = PROTOCOLS[i % len(PROTOCOLS)]
                try:
                    status, version, body = _send(http, protocol, row, f"r{k}")
                except Exception as exc:  # recorded as a failure, not a dead thread
                    status, version, body = 0, None, repr(exc)
                with self.changed:
                    sample = Sample(
                        protocol, row["income"], status, version, body, time.monotonic()
                    )
                    self.samples.append(sample)
                    self.changed.notify_all()

    def wait_until(self, what: str, done: Callable[[], bool]) -> None:
        """Until ``done()`` holds, checked after each answer (no sleeping)."""
        deadline = time.monotonic() + DEADLINE
        with self.changed:
            while not done():
                left = deadline - time.monotonic()
                assert left > 0, f"waited {DEADLINE:.0f} s for {what}: {self.summary()}"
                self.changed.wait(timeout=min(left, 1.0))

    def answered_by(self, version: int) -> int:
        return sum(1 for s in self.samples if s.status == 200 and s.version == version)

    def failed(self) -> list[Sample]:
        return [s for s in self.samples if s.status != 200]

    def summary(self) -> str:
        by = Counter((s.protocol, s.status, s.version) for s in self.samples)
        failed = self.failed()
        seconds = self.samples[-1].received - self.samples[0].received if self.samples else 0
        return (
            f"{dict(by)} in {seconds:.1f} s; first failures: {[f.body for f in failed[:3]]!r:.600}"
        )

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)
        assert not any(t.is_alive() for t in self.threads), "a client did not stop"


_OIP_TYPES = {str: "BYTES", int: "INT64", float: "FP64"}


def _send(http: httpx.Client, protocol: str, row: dict[str, Any], rid: str) -> tuple[int, Any, Any]:
    if protocol == "native":
        r = http.post("/v1/endpoints/credit/predict", json={"records": [row], "request_id": rid})
        body = r.json() if r.status_code == 200 else r.text
        return r.status_code, body["version"] if r.status_code == 200 else None, body
    if protocol == "oip":
        inputs = [
            {
                "name": name,
                "shape": [1],
                "datatype": _OIP_TYPES[type(value)],
                "data": [value],
            }
            for name, value in row.items()
        ]
        r = http.post("/v2/models/credit/infer", json={"id": rid, "inputs": inputs})
        body = r.json() if r.status_code == 200 else r.text
        return r.status_code, int(body["model_version"]) if r.status_code == 200 else None, body
    r = http.post("/invocations", json={"dataframe_records": [row]})
    # MLflow's answer names no version: the log says which one answered.
    return r.status_code, 0 if r.status_code == 200 else None, r.json() if r.is_success else r.text


@dataclass
class Cluster:
    workspace: Workspace
    url: str
    rows: list[dict[str, Any]]


@pytest.fixture
def served(
    ray_cluster: Any,  # noqa: F811
    postgres_url: str,
    s3_bucket: str,  # noqa: F811
    tmp_path: Path,
    history: pd.DataFrame,
) -> Iterator[Cluster]:
    """Endpoint ``credit`` served by two replicas, the workspace on PostgreSQL + S3."""
    ws = Workspace.init(
        tmp_path / "ws",
        actor="tester",
        database_url=postgres_url,
        artifacts_uri=f"{s3_bucket}/artifacts",
        data_uri=f"{s3_bucket}/data",
        # the log as it is across machines: each replica ships its segments
        log_uri=f"{s3_bucket}/logs",
        log_seal_seconds=1.0,
    )
    ws.add_dataset("loans", history)
    version = ws.train(SPEC)
    ws.promote(version.name, version.version)
    ws.deploy("credit", model="credit-risk")
    url = ray_engine.deploy(
        ws,
        overrides={"refresh_seconds": 0.5},
        port=free_port(),
        replicas=ray_engine.Replicas(fixed=2),
        # Ray Serve prefers the replica on the proxy's node while it has room: two
        # ongoing requests each make six clients reach the other node's replica too.
        replica=ray_engine.ReplicaSettings(cpus=0.5, max_ongoing=2, health_check_seconds=1.0),
    )
    try:
        # Rows without nulls: the OIP bodies here type each value by its Python type.
        rows = [r for r in requests_of(history.head(300)) if None not in r.values()]
        yield Cluster(ws, url, rows)
    finally:
        from ray import serve

        serve.shutdown()
        ws.close()


def _logged(ws: Workspace) -> dict[float, int]:
    """Each logged prediction's income (unique per request) → its version."""
    table = read_log(ws.logs).select(["version", "inputs"]).to_pylist()
    out = {}
    for record in table:
        inputs = record["inputs"]
        inputs = json.loads(inputs) if isinstance(inputs, str) else inputs
        out[float(inputs["income"])] = record["version"]
    return out


def _assert_every_acknowledged_prediction_is_logged(load: Load, ws: Workspace) -> None:
    logged = _logged(ws)
    acknowledged = [s for s in load.samples if s.status == 200]
    assert {s.protocol for s in acknowledged} == set(PROTOCOLS)
    missing = [s for s in acknowledged if s.income not in logged]
    assert not missing, f"{len(missing)} of {len(acknowledged)} answered predictions not logged"
    for s in acknowledged:
        if s.version:  # MLflow's answer does not name it
            assert logged[s.income] == s.version


def _replica_pids() -> dict[str, int]:
    """The live replicas of the setpoint deployment: actor id → process id. From the
    GCS's actor table (Ray's public state API needs the dashboard, which the test
    cluster runs without)."""
    from ray._private import state

    return {
        actor_id: actor["Pid"]
        for actor_id, actor in state.actors().items()
        if actor["State"] == "ALIVE"
        and actor["ActorClassName"].startswith("ServeReplica:")
        and actor["ActorClassName"].endswith(":setpoint")
    }


def test_two_replicas_serve_every_protocol_and_a_promotion_fails_nothing(
    served: Cluster,
) -> None:
    ws = served.workspace
    assert len(_replica_pids()) == 2
    with Load(served.url, served.rows) as load:
        load.wait_until(
            "30 answers by version 1 over each protocol",
            lambda: all(
                sum(1 for s in load.samples if s.protocol == p and s.status == 200) >= 30
                for p in PROTOCOLS
            ),
        )
        new = ws.train({**SPEC, "estimator": OTHER_ESTIMATOR})
        ws.promote(new.name, new.version)
        load.wait_until("100 answers by version 2", lambda: load.answered_by(new.version) >= 100)
    assert not load.failed(), load.summary()
    assert {s.protocol for s in load.samples if s.version == new.version} >= {"native", "oip"}
    _assert_every_acknowledged_prediction_is_logged(load, ws)
    # Both replicas answered: each writes segments of its own, and ships them (sealed
    # after a second) to the store.
    assert ws.logs.remote is not None
    shipped = list(ws.logs.remote.segments("predictions"))
    here = [p.stem for p in (ws.root / "logs" / "predictions" / "segments").iterdir()]
    writers = {name.split("-")[1] for name in [*shipped, *here]}
    assert len(writers) >= 2, sorted(writers)
    assert {name.split("-")[1] for name in shipped} == writers


def test_a_killed_replica_is_restarted_and_loses_only_what_was_in_flight_on_it(
    served: Cluster,
) -> None:
    ws = served.workspace
    before = _replica_pids()
    assert len(before) == 2
    with Load(served.url, served.rows) as load:
        load.wait_until("100 answers", lambda: load.answered_by(1) >= 100)
        victim = next(iter(before.values()))
        os.kill(victim, signal.SIGKILL)
        killed_at = len(load.samples)
        load.wait_until(
            "Ray to restart the killed replica",
            lambda: (lambda now: len(now) == 2 and victim not in now.values())(_replica_pids()),
        )
        load.wait_until(
            "100 answers after the restart", lambda: len(load.samples) >= killed_at + 200
        )
    failed = load.failed()
    assert len(failed) <= CLIENTS, load.summary()  # at most one in flight per client
    _assert_every_acknowledged_prediction_is_logged(load, ws)


def test_a_cluster_on_several_machines_is_refused_on_a_local_workspace(
    ray_cluster: Any,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_ray, "machines", lambda _ray_module: 2)  # as if spread out
    with (
        Workspace.init(tmp_path / "ws", actor="tester") as ws,
        pytest.raises(ConfigError, match="spans 2 machines") as refused,
    ):
        ray_engine.deploy(ws, overrides={}, port=free_port())
    assert "--engine local" in str(refused.value)


def test_a_serve_already_running_elsewhere_is_named_not_silently_used(
    ray_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    from ray import serve

    running = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": running, "location": "HeadOnly"})
    try:
        with (
            Workspace.init(tmp_path / "ws", actor="tester") as ws,
            pytest.raises(UsageError, match=f"proxy on 127.0.0.1:{running}, not") as refused,
        ):
            ray_engine.deploy(ws, overrides={}, port=free_port())
        assert f"--port {running}" in str(refused.value)
    finally:
        serve.shutdown()


def test_setpoint_serve_engine_ray_starts_ray_serves_and_stops_on_ctrl_c(
    tmp_path: Path, history: pd.DataFrame
) -> None:
    """As a user runs it: no cluster given, so it starts Ray on this machine, serves
    until SIGINT, then removes the app and stops the Ray it started."""
    with Workspace.init(tmp_path / "ws", actor="tester") as ws:
        ws.add_dataset("loans", history)
        version = ws.train(SPEC)
        ws.promote(version.name, version.version)
        ws.deploy("credit", model="credit-risk")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    rows = requests_of(history.head(5))
    with setpoint_serve(
        tmp_path / "ws",
        tmp_path / "serve.log",
        env=env,
        args=["--engine", "ray", "--replica-cpus", "0.5"],
        ready_within=DEADLINE,
    ) as served:
        answer = httpx.post(
            f"{served.url}/v1/endpoints/credit/predict", json={"records": rows}, timeout=60
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["version"] == 1
    assert served.process.returncode == 0, served.output()
    assert "Serving credit on http://127.0.0.1:" in served.output()
    assert "1 replica on Ray" in served.output()
