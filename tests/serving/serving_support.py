"""Helpers the serving tests share (the fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from setpoint.demo import lending

SPEC = {
    "model": "credit-risk",
    "dataset": "loans@latest",
    "target": lending.TARGET,
    "exclude": [lending.TIME_COLUMN],
    "estimator": {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}},
    "seed": 1,
}


class MemoryLog:
    """Stands in for the prediction log where a test is about the app, not the log."""

    def __init__(self) -> None:
        self.records: list[Mapping[str, Any]] = []
        self.closed = False

    async def append_async(
        self, records: Sequence[Mapping[str, Any]], *, checked: bool = False
    ) -> None:
        self.records.extend(records)

    def close(self) -> None:
        self.closed = True


def requests_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a JSON client sends them: no target, no time column, NaN as null."""
    features = frame.drop(columns=[lending.TARGET, lending.TIME_COLUMN])
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        for row in features.to_dict(orient="records")
    ]


def csv_body(rows: list[dict[str, Any]]) -> bytes:
    """Rows as a CSV body with a header line, missing values as empty fields."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows([{k: "" if v is None else v for k, v in r.items()} for r in rows])
    return out.getvalue().encode()


def assert_error_shape(
    response: Any, status: int | None = None, code: str | None = None
) -> dict[str, Any]:
    """The one JSON error shape, with ``status`` (any 4xx when None) and ``code``."""
    if status is None:
        assert 400 <= response.status_code < 500, response.text
    else:
        assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    return dict(body["error"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    """A running ``setpoint serve`` child process."""

    url: str
    process: subprocess.Popen[bytes]
    stderr: Path

    def output(self) -> str:
        """What the server wrote to stderr so far (for assertion messages)."""
        return self.stderr.read_text(errors="replace")


@dataclass(frozen=True)
class TLS:
    """A server certificate and key, and the CA file a client trusts them with."""

    cert: Path
    key: Path
    ca: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


@contextlib.contextmanager
def setpoint_serve(
    root: Path,
    stderr: Path,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    tls: TLS | None = None,
    ready_within: float = 60.0,
) -> Iterator[Served]:
    """Run ``setpoint serve`` on a free loopback port for the workspace at ``root`` until
    /readyz answers 200; stop it with SIGINT (a graceful drain) on exit. ``env`` replaces
    the child's environment (pass ``{**os.environ, "SETPOINT_...": ...}`` to add to it).
    With ``tls`` it serves HTTPS, and ``Served.url`` says https."""
    port = free_port()
    if tls is not None:
        args = [*args, "--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
    verify: ssl.SSLContext | bool = tls.client_context() if tls is not None else True
    with stderr.open("wb") as errors:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from setpoint.cli import main; main()",
                "-w",
                str(root),
                "serve",
                "--port",
                str(port),
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=errors,
            env=None if env is None else dict(env),
        )
        try:
            scheme = "https" if tls is not None else "http"
            served = Served(f"{scheme}://127.0.0.1:{port}", process, stderr)
            deadline = time.monotonic() + ready_within
            while True:
                try:
                    ready = httpx.get(f"{served.url}/readyz", timeout=1, verify=verify)
                    if ready.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server did not become ready"
                # Waits on the server exiting, which would fail the next line; else polls.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=0.05)
                assert process.poll() is None, served.output()
            yield served
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=30)
                    raise AssertionError("the server did not stop within 30 s of SIGINT") from None


@dataclass
class RawResponse:
    """What an ASGI app sent back to ``raw_request``."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request(
    client: Any,
    method: str,
    path: str,
    body: bytes = b"",
    headers: Sequence[tuple[bytes, bytes]] = (),
    receive: Callable[[], Awaitable[dict[str, Any]]] | None = None,
) -> RawResponse:
    """Call the app of a started ``TestClient`` with exactly these header bytes (the
    TestClient re-encodes header values as UTF-8), on its event loop. ``receive``
    replaces the one that hands over ``body`` (e.g. one that never returns)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "state": {},
    }
    sent: list[dict[str, Any]] = []

    async def give_body() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def call() -> None:
        await client.app(scope, receive or give_body, send)

    client.portal.call(call)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return RawResponse(
        start["status"],
        {k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]},
        b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"),
    )
