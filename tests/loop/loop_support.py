"""Helpers for the closed loop's tests against the real server (see conftest.py)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pandas as pd

from setpoint.demo import lending
from setpoint.demo.server import Clock, Running
from setpoint.loop.controller import Loop
from setpoint.loop.policy import Policy
from setpoint.loop.rollouts import Rollout
from setpoint.serving._logtables import read_log
from setpoint.workspace import Workspace

ENDPOINT = "credit"
MODEL = "credit-risk"
SPEC: dict[str, Any] = {
    "model": MODEL,
    "dataset": "loans@latest",
    "target": lending.TARGET,
    "exclude": [lending.TIME_COLUMN],
    "estimator": {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}},
    "split": {"method": "time", "time_column": lending.TIME_COLUMN, "test_size": 0.2},
    "seed": 1,
}
T0 = datetime(2026, 6, 1, tzinfo=UTC)  # a Monday, 00:00 UTC: where the tests' time starts
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass
class Sent:
    """What the server answered to a series of requests, request by request."""

    statuses: list[int] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)  # what the labels would be

    @property
    def failed(self) -> int:
        return sum(status != 200 for status in self.statuses)

    def __iadd__(self, other: Sent) -> Sent:
        self.statuses += other.statuses
        self.bodies += other.bodies
        self.feedback += other.feedback
        return self


class Client:
    """A client application over real HTTP; a failed request is counted, not raised."""

    def __init__(self, url: str) -> None:
        self._http = httpx.Client(base_url=url, timeout=60)

    def close(self) -> None:
        self._http.close()

    def predict(
        self, frame: pd.DataFrame, *, per_request: int = 4, clock: Clock | None = None
    ) -> Sent:
        """``frame``'s applications, ``per_request`` rows per request, one after another;
        with ``clock``, each request is sent (and logged) when its first row applied."""
        sent = Sent()
        features = frame.drop(columns=[lending.TARGET, lending.TIME_COLUMN])
        records = records_of(features)
        labels = frame[lending.TARGET].astype(int).to_list()
        times = frame[lending.TIME_COLUMN].to_list()
        for start in range(0, len(records), per_request):
            chunk = records[start : start + per_request]
            if clock is not None:
                clock.now = pd.Timestamp(times[start]).floor("us").to_pydatetime()
            response = self._http.post(f"/v1/endpoints/{ENDPOINT}/predict", json={"records": chunk})
            sent.statuses.append(response.status_code)
            if response.status_code != 200:
                sent.bodies.append({"error": response.text})
                continue
            body = response.json()
            sent.bodies.append(body)
            sent.feedback += [
                {"request_id": body["request_id"], "row": i, "label": labels[start + i]}
                for i in range(len(chunk))
            ]
        return sent

    def feedback(self, items: list[dict[str, Any]]) -> None:
        for start in range(0, len(items), 2000):
            response = self._http.post(
                f"/v1/endpoints/{ENDPOINT}/feedback", json={"feedback": items[start : start + 2000]}
            )
            assert response.status_code < 300, response.text


@dataclass
class Served:
    """The running server of the ``served`` workspace, its clock and a client."""

    ws: Workspace
    running: Running
    clock: Clock
    client: Client

    def traffic_while(self, frame: pd.DataFrame, *, at_least: int = 20) -> Background:
        """Requests from another thread, one after another, from before the block's body
        until after it: traffic that is in flight while the test acts."""
        return Background(self.running.url, frame, at_least)


class Background:
    """A client in a thread of its own that keeps sending rows of ``frame``: the block
    starts once it has ``at_least`` answers, and ends once it has ``at_least`` more sent
    after the block's body is done (so requests come both before and after)."""

    def __init__(self, url: str, frame: pd.DataFrame, at_least: int) -> None:
        self.sent = Sent()
        self._client = Client(url)
        self._frame = frame
        self._at_least = at_least
        self._warm = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="background-client", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            i = after = 0
            while after < self._at_least:
                stopping = self._stop.is_set()
                start = (i * 4) % (len(self._frame) - 4)
                self.sent += self._client.predict(self._frame.iloc[start : start + 4])
                i += 1
                after += stopping
                if i >= self._at_least:
                    self._warm.set()
        except BaseException as error:  # a transport error is a failed request too
            self._error = error
            self._warm.set()

    def __enter__(self) -> Background:
        self._thread.start()
        assert self._warm.wait(60), "the background client sent nothing"
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        self._client.close()
        assert not self._thread.is_alive(), "the background client did not stop"
        assert self._error is None, f"the background client failed: {self._error!r}"


def records_of(features: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a JSON client sends them, NaN as null."""
    return [
        {str(k): (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        for row in features.to_dict(orient="records")
    ]


def logged(ws: Workspace, since: datetime, until: datetime | None = None) -> list[dict[str, Any]]:
    """The prediction records of ``credit`` in [since, until)."""
    table = read_log(ws.root, kind="predictions", endpoint=ENDPOINT, since=since, until=until)
    rows: list[dict[str, Any]] = table.select(
        ["request_id", "ts", "route", "fallback", "model", "version"]
    ).to_pylist()
    return rows


def into_canary(loop: Loop, policy: Policy, candidate: str, now: datetime) -> Rollout:
    """A rollout whose candidate passed its gates, put on live traffic as the loop does
    after a retraining: ``Decisions.after_gates`` deploys it with the policy's share."""
    champion = loop.ws.model(f"{MODEL}@champion")
    rollout, created = loop.rollouts.open(
        ENDPOINT,
        f"test:{candidate}",
        trigger={"test": "put into canary by the test", "message": "the test"},
        champion=champion.ref,
        mode=policy.mode,
        data_since=now - DAY,
        now=now,
    )
    assert created
    rollout = loop.rollouts.move(
        rollout.id,
        "retraining",
        expect=("waiting",),
        now=now,
        candidate=candidate,
        gates={"passed": True, "checks": []},
    )
    return loop.decisions.after_gates(rollout, policy, now=now)
