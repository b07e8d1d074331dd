"""Graceful shutdown of the real server (`setpoint serve` on a socket): SIGTERM under
sustained load answers every request in flight, refuses the rest cleanly, exits 0, and
leaves every acknowledged prediction and label in the logs, once, in sealed segments."""

from __future__ import annotations

import json
import queue
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from serving_support import requests_of, setpoint_serve

from setpoint.serving._logfiles import OPEN_SUFFIX, SEALED_SUFFIX, segments_dir
from setpoint.serving.log import compact, read_log
from setpoint.workspace import Workspace

pytestmark = pytest.mark.slow

PREDICTORS = 6  # threads posting native predictions, single- and multi-row
LABELLERS = 2  # threads posting feedback, single labels and batches
ROWS_PER_REQUEST = (1, 4, 1, 9)  # each predictor cycles through these request sizes
WARM_PREDICTIONS = 200  # answered before SIGTERM, so the load is steady when it comes
WARM_LABELS = 40
WARM_DEADLINE = 60.0
EXIT_DEADLINE = 15.0  # from SIGTERM to the process gone (a drain takes well under 1 s)
CLIENT_TIMEOUT = 10.0  # a request hanging this long is a failure, not a refusal


@dataclass
class Load:
    """Clients posting back to back until the server refuses connections.

    Every request ends as exactly one of: acknowledged (200 with a valid body), refused
    (a transport error after shutdown began: counted), or a failure (anything else).
    """

    url: str
    rows: list[dict[str, Any]]
    lock: threading.Lock = field(default_factory=threading.Lock)
    shutting_down: threading.Event = field(default_factory=threading.Event)
    give_up: threading.Event = field(default_factory=threading.Event)
    predictions: list[tuple[str, int]] = field(default_factory=list)  # (request id, rows)
    labels: list[tuple[str, int]] = field(default_factory=list)  # (request id, row)
    answered_after_signal: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # error class -> count
    failures: list[str] = field(default_factory=list)
    to_label: queue.SimpleQueue[tuple[str, int]] = field(default_factory=queue.SimpleQueue)

    def __post_init__(self) -> None:
        self.progress = threading.Condition(self.lock)
        self.threads = [
            threading.Thread(target=self._predictor, args=(n,), name=f"predictor-{n}")
            for n in range(PREDICTORS)
        ] + [
            threading.Thread(target=self._labeller, args=(n,), name=f"labeller-{n}")
            for n in range(LABELLERS)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self, deadline: float) -> None:
        for thread in self.threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self.give_up.set()
        for thread in self.threads:
            thread.join(timeout=CLIENT_TIMEOUT + 5)
        alive = [t.name for t in self.threads if t.is_alive()]
        assert not alive, f"clients still running: {alive}"

    def warmed_up(self) -> bool:
        return len(self.predictions) >= WARM_PREDICTIONS and len(self.labels) >= WARM_LABELS

    def _post(self, http: httpx.Client, path: str, body: Any, what: str) -> Any | None:
        """The JSON body of a 200 answer; None (recorded) otherwise. Raises _Refused when
        the connection was refused, which ends the client."""
        during = self.shutting_down.is_set()
        try:
            response = http.post(path, json=body)
        except httpx.TimeoutException as exc:
            self._fail(f"{what}: no answer within {CLIENT_TIMEOUT} s: {exc!r}")
            return None
        except httpx.TransportError as exc:
            if not self.shutting_down.is_set():
                self._fail(f"{what}: {exc!r} before shutdown began")
                raise _Refused from exc
            with self.lock:
                self.refused[type(exc).__name__] += 1
            if isinstance(exc, httpx.ConnectError):
                raise _Refused from exc
            return None  # reset or closed: the next request opens a new connection
        if response.status_code != 200:
            self._fail(f"{what}: HTTP {response.status_code}: {response.text[:500]}")
            return None
        try:
            data = response.json()
        except json.JSONDecodeError:
            self._fail(f"{what}: HTTP 200 with a body that is not JSON: {response.text[:500]!r}")
            return None
        if not during and self.shutting_down.is_set():
            with self.lock:
                self.answered_after_signal += 1
        return data

    def _fail(self, message: str) -> None:
        with self.lock:
            self.failures.append(message)

    def _predictor(self, n: int) -> None:
        with httpx.Client(base_url=self.url, timeout=CLIENT_TIMEOUT) as http:
            i = 0
            while not self.give_up.is_set():
                size = ROWS_PER_REQUEST[i % len(ROWS_PER_REQUEST)]
                start = (n * 31 + i * 7) % len(self.rows)
                records = [self.rows[(start + k) % len(self.rows)] for k in range(size)]
                i += 1
                try:
                    data = self._post(
                        http,
                        "/v1/endpoints/credit/predict",
                        {"records": records},
                        f"predict ({size} rows)",
                    )
                except _Refused:
                    return
                if data is None:
                    continue
                request_id = data.get("request_id")
                if not isinstance(request_id, str) or len(data.get("predictions", ())) != size:
                    self._fail(f"predict ({size} rows): an incomplete answer: {data!r}")
                    continue
                self.to_label.put((request_id, size))
                with self.progress:
                    self.predictions.append((request_id, size))
                    self.progress.notify_all()

    def _labeller(self, n: int) -> None:
        with httpx.Client(base_url=self.url, timeout=CLIENT_TIMEOUT) as http:
            i = 0
            while not self.give_up.is_set():
                i += 1
                try:  # a prediction answered earlier
                    request_id, size = self.to_label.get(timeout=0.05)
                except queue.Empty:
                    if not self.shutting_down.is_set():
                        continue
                    # none comes any more: label an unseen id (labels need no lookup)
                    # until the server refuses the connection
                    request_id, size = f"unseen-{n}-{i}", 2
                pairs = [(request_id, row) for row in range(size)]
                body: Any = (
                    {"request_id": request_id, "label": 1}
                    if size == 1
                    else {"feedback": [{"request_id": r, "row": k, "label": 0} for r, k in pairs]}
                )
                try:
                    data = self._post(
                        http, "/v1/endpoints/credit/feedback", body, f"feedback ({size} labels)"
                    )
                except _Refused:
                    return
                if data is None:
                    continue
                if data != {"endpoint": "credit", "accepted": size}:
                    self._fail(f"feedback ({size} labels): an unexpected answer: {data!r}")
                    continue
                with self.progress:
                    self.labels.extend(pairs)
                    self.progress.notify_all()


class _Refused(Exception):
    """The server refused a connection: this client is done."""


def logged(root: Path, kind: str) -> Counter[tuple[str, int]]:
    table = read_log(root, kind=kind)
    assert set(table.column("endpoint").to_pylist()) <= {"credit"}
    return Counter(
        zip(table.column("request_id").to_pylist(), table.column("row").to_pylist(), strict=True)
    )


@pytest.mark.parametrize("log_mode", ["durable", "async"])
def test_sigterm_under_load_drains_in_flight_requests_and_flushes_the_logs(
    served: Workspace, history: pd.DataFrame, tmp_path: Path, log_mode: str
) -> None:
    """With ``log: async`` predictions are acknowledged before they are written: the
    graceful shutdown must still flush that queue, so the same assertions hold."""
    root = served.root
    if log_mode == "async":
        served.deploy("credit", model="credit-risk", log="async")
    (deployment,) = served.deployments.current()
    assert deployment.config.log == log_mode
    with setpoint_serve(root, tmp_path / "server.log") as server:
        # The server runs the revision with this log mode (which log a record went to
        # is not observable from outside: both write the same segments).
        described = httpx.get(f"{server.url}/v1/endpoints/credit", timeout=CLIENT_TIMEOUT)
        assert described.json()["revision"] == deployment.revision, described.text
        load = Load(server.url, requests_of(history.head(300)))
        load.start()
        try:
            with load.progress:
                warmed = load.progress.wait_for(load.warmed_up, timeout=WARM_DEADLINE)
            assert warmed, (
                f"only {len(load.predictions)} predictions and {len(load.labels)} labels "
                f"answered in {WARM_DEADLINE} s: {load.failures[:5]}\n{server.output()}"
            )
            load.shutting_down.set()  # before the signal: anything after it may be refused
            server.process.send_signal(signal.SIGTERM)
            try:
                code = server.process.wait(timeout=EXIT_DEADLINE)
            except Exception:
                raise AssertionError(
                    f"the server did not exit within {EXIT_DEADLINE} s of SIGTERM\n"
                    + server.output()
                ) from None
        finally:
            load.join(time.monotonic() + EXIT_DEADLINE + CLIENT_TIMEOUT)
        output = server.output()

    assert not load.failures, f"{len(load.failures)} failed requests:\n" + "\n".join(
        load.failures[:20]
    )
    assert load.answered_after_signal > 0, "no request was in flight when SIGTERM came"
    assert code == 0, f"exit status {code} after SIGTERM\n{output}"
    assert "Traceback" not in output, output
    assert "ERROR" not in output, output

    # Every acknowledged prediction is in the log, each (request id, row) once.
    predictions = logged(root, "predictions")
    twice = sorted(k for k, n in predictions.items() if n > 1)
    assert not twice, f"{len(twice)} prediction records logged more than once: {twice[:5]}"
    answered = Counter(request_id for request_id, _ in load.predictions)
    assert max(answered.values()) == 1, "the server reused a request id"
    lost = [(r, row) for r, size in load.predictions for row in range(size)]
    lost = [k for k in lost if k not in predictions]
    assert not lost, (
        f"{len(lost)} of {sum(s for _, s in load.predictions)} acknowledged prediction rows "
        f"are not in the log: {lost[:5]}"
    )

    # Every acknowledged label is in the feedback log, once.
    labels = logged(root, "feedback")
    acked = Counter(load.labels)
    assert max(acked.values()) == 1  # each label was sent once
    twice = sorted(k for k, n in labels.items() if n > 1)
    assert not twice, f"{len(twice)} labels logged more than once: {twice[:5]}"
    lost = [k for k in acked if k not in labels]
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged labels were lost: {lost[:5]}"

    # The writers sealed their segments: none is left open, compaction takes them all
    # (no live writer holds one), and reading afterwards finds the same records.
    for kind, before in (("predictions", predictions), ("feedback", labels)):
        folder = segments_dir(root, kind)
        left_open = sorted(p.name for p in folder.iterdir() if p.suffix == OPEN_SUFFIX)
        assert not left_open, f"{kind} segments left unsealed: {left_open}"
        assert any(p.suffix == SEALED_SUFFIX for p in folder.iterdir())
        result = compact(root, kind=kind)
        assert result.live == 0, result
        assert result.records == sum(before.values()), result
        assert not [p for p in folder.iterdir() if p.suffix in (OPEN_SUFFIX, SEALED_SUFFIX)]
        assert logged(root, kind) == before
