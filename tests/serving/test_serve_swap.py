"""Moving the champion alias under sustained load: the real server (`setpoint serve` on a
socket) fails no request, switches to the new version within 5 s and never goes back."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from serving_support import SPEC, requests_of, setpoint_serve

from setpoint.serving.log import read_log
from setpoint.workspace import Workspace

pytestmark = pytest.mark.slow

CLIENTS = 8
REFRESH_SECONDS = 0.5  # via SETPOINT_REFRESH_SECONDS, as an operator would set it
SWITCH_WITHIN = 5.0
BEFORE = 300  # answers by the old version before the promotion
AFTER = 300  # answers by the new version after the switch
DEADLINE = 60.0  # for each phase; the whole test takes a few seconds when healthy
OTHER_ESTIMATOR = {  # the second version: the same model, regularized into other answers
    "class": "sklearn.linear_model.LogisticRegression",
    "params": {"max_iter": 500, "C": 0.01},
}


@dataclass(frozen=True)
class Sample:
    """One request of the load, as its client saw it (times are time.monotonic())."""

    client: int
    row: int
    sent: float
    received: float
    status: int  # 0: no HTTP answer at all (the body holds the transport error)
    body: Any  # the JSON answer, or the text of a failure


class Load:
    """``CLIENTS`` threads posting one-row native predictions back to back."""

    def __init__(self, url: str, rows: list[dict[str, Any]]) -> None:
        self.url, self.rows = url, rows
        self.samples: list[Sample] = []
        self.by_version: Counter[int] = Counter()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.changed = threading.Condition(self.lock)
        self.threads = [threading.Thread(target=self._client, args=(n,)) for n in range(CLIENTS)]

    def _client(self, n: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            i = n * 25
            while not self.stop.is_set():
                row = i % len(self.rows)
                i += 1
                sent = time.monotonic()
                body: Any
                try:
                    response = http.post(
                        "/v1/endpoints/credit/predict", json={"records": [self.rows[row]]}
                    )
                    status = response.status_code
                    body = response.json() if status == 200 else response.text
                except httpx.HTTPError as exc:
                    status, body = 0, repr(exc)
                sample = Sample(n, row, sent, time.monotonic(), status, body)
                with self.changed:
                    self.samples.append(sample)
                    if status == 200:
                        self.by_version[body["version"]] += 1
                    self.changed.notify_all()

    def wait_for(self, version: int, count: int) -> None:
        """Until ``count`` answers came from ``version`` (failing after DEADLINE)."""
        with self.changed:
            done = self.changed.wait_for(
                lambda: self.by_version[version] >= count, timeout=DEADLINE
            )
            answered = dict(self.by_version)
            failed = [s for s in self.samples if s.status != 200]
        assert done, (
            f"waited for {count} answers by version {version}: {answered}; "
            f"{len(failed)} failed, the first: {failed[0] if failed else None}"
        )

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in self.threads), "a client did not stop"


def test_promoting_under_load_fails_nothing_and_switches_within_5s(
    tmp_path: Path, history: pd.DataFrame
) -> None:
    with Workspace.init(tmp_path / "ws", actor="tester") as ws:
        ws.add_dataset("loans", history)
        old = ws.train(SPEC)
        ws.promote(old.name, old.version)
        ws.deploy("credit", model="credit-risk")
        rows = requests_of(history.head(200))
        env = {**os.environ, "SETPOINT_REFRESH_SECONDS": str(REFRESH_SECONDS)}
        with (
            setpoint_serve(ws.root, tmp_path / "server.log", env=env) as served,
            Load(served.url, rows) as load,
        ):
            load.wait_for(old.version, BEFORE)
            # A second version that answers differently, trained while the load runs.
            new = ws.train({**SPEC, "estimator": OTHER_ESTIMATOR})
            promoting = time.monotonic()
            ws.promote(new.name, new.version)
            load.wait_for(new.version, AFTER)
            load.stop.set()
            for thread in load.threads:
                thread.join(timeout=60)
            # The server still runs: "durable" means on disk before the caller is answered.
            logged = read_log(ws.root).select(["request_id", "version"]).to_pylist()
            server_output = served.output()

        samples = sorted(load.samples, key=lambda s: s.received)

        failed = [s for s in samples if s.status != 200]
        assert not failed, (
            f"{len(failed)} of {len(samples)} requests failed, by status "
            f"{dict(Counter(s.status for s in failed))}; first ones: "
            + "; ".join(
                f"status {s.status} at {s.received - promoting:+.3f} s from the promotion: "
                f"{s.body!r:.500}"
                for s in failed[:5]
            )
            + f"\nserver stderr:\n{server_output}"
        )

        # Every answer is what its version's model says in-process.
        frame = pd.DataFrame(rows)
        expected = {v.version: ws.load_model(v.ref).predict_proba(frame) for v in (old, new)}
        assert not np.allclose(expected[old.version], expected[new.version], atol=1e-3)
        for s in samples:
            assert s.body["model"] == "credit-risk"
            np.testing.assert_allclose(
                s.body["probabilities"], expected[s.body["version"]][[s.row]], rtol=0, atol=1e-6
            )

        versions = [s.body["version"] for s in samples]
        assert set(versions) == {old.version, new.version}
        assert sum(s.received < promoting for s in samples) >= BEFORE
        first_new = next(s for s in samples if s.body["version"] == new.version)
        assert first_new.received > promoting
        switch = first_new.received - promoting
        assert switch <= SWITCH_WITHIN, (
            f"the first answer by the new version came {switch:.2f} s after the promotion"
        )
        # Monotonic: once one caller got the new version, nobody gets the old one again.
        stale = [
            s for s in samples if s.sent > first_new.received and s.body["version"] == old.version
        ]
        assert not stale, f"{len(stale)} requests sent after the switch got the old version"
        for client in range(CLIENTS):
            mine = [s.body["version"] for s in samples if s.client == client]
            assert mine == sorted(mine), f"client {client} went back to the old version"
        assert sum(v == new.version for v in versions) >= AFTER

        # Every acknowledged prediction is in the log, under the version that answered it.
        answered = {s.body["request_id"]: s.body["version"] for s in samples}
        in_log = {r["request_id"]: r["version"] for r in logged}
        missing = answered.keys() - in_log.keys()
        assert not missing, f"{len(missing)} of {len(answered)} answered predictions are not logged"
        assert {k: in_log[k] for k in answered} == answered
