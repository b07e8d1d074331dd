"""A client application, as the demo plays it: applications go to the server over HTTP
as they arrive, and their outcomes are sent back as feedback when they are known."""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import orjson
import pandas as pd

from setpoint.demo import lending
from setpoint.demo.server import Clock
from setpoint.errors import SetpointError

BATCH_ROWS = 50  # applications per request (a client batching what came in together)


@dataclass
class Answered:
    """What the server answered for one slice of the stream, row for row."""

    request_ids: list[str]
    rows: list[int]
    labels: list[int]  # the outcomes, known only later


class Client:
    def __init__(self, url: str, endpoint: str) -> None:
        parts = urlsplit(url)
        self._conn = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=60
        )
        self._endpoint = endpoint

    def close(self) -> None:
        self._conn.close()

    def predict(self, frame: pd.DataFrame, clock: Clock) -> Answered:
        """Send ``frame`` in batches, each when its first application arrives."""
        features = frame.drop(columns=[lending.TARGET, lending.TIME_COLUMN])
        times = frame[lending.TIME_COLUMN].to_list()
        labels = frame[lending.TARGET].astype(int).to_list()
        answered = Answered([], [], [])
        records = _records(features)
        for start in range(0, len(records), BATCH_ROWS):
            clock.now = _aware(times[start])
            chunk = records[start : start + BATCH_ROWS]
            body = self._post(f"/v1/endpoints/{self._endpoint}/predict", {"records": chunk})
            answered.request_ids += [body["request_id"]] * len(chunk)
            answered.rows += list(range(len(chunk)))
            answered.labels += labels[start : start + len(chunk)]
        return answered

    def feedback(self, answered: Answered, clock: Clock, at: datetime) -> int:
        """Send the outcomes of ``answered``, as known at ``at``."""
        clock.now = at
        items = [
            {"request_id": r, "row": i, "label": y}
            for r, i, y in zip(answered.request_ids, answered.rows, answered.labels, strict=True)
        ]
        for start in range(0, len(items), 5_000):
            self._post(
                f"/v1/endpoints/{self._endpoint}/feedback",
                {"feedback": items[start : start + 5_000]},
            )
        return len(items)

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            return self._send(path, payload)
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server closed the idle keep-alive connection while the loop worked
            # (nothing was processed): connect again and send it once more.
            self._conn.close()
            return self._send(path, payload)

    def _send(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        self._conn.request(
            "POST", path, orjson.dumps(payload), {"Content-Type": "application/json"}
        )
        response = self._conn.getresponse()
        body = response.read()
        if response.status >= 400:
            raise SetpointError(f"the server answered {response.status} to {path}: {body[:500]!r}")
        data: dict[str, Any] = orjson.loads(body)
        return data


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready records; a value the form lacks is null."""
    return [
        {str(k): None if _missing(v) else _plain(v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _aware(value: Any) -> datetime:
    stamp = pd.Timestamp(value).floor("us")
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).to_pydatetime()
