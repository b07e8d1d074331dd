"""A webhook receiver for tests: a real HTTP server on loopback, in a thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class Receiver:
    """A webhook receiver: records each POST; ``mode`` is ok, fail (500) or hang."""

    def __init__(self, port: int = 0, mode: str = "ok") -> None:
        self.mode = mode
        self.bodies: list[Any] = []
        self.content_types: list[str] = []
        self.arrived = threading.Event()  # a request is in the handler
        self.release = threading.Event()  # lets a hanging handler answer
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.arrived.set()
                if receiver.mode == "hang":
                    receiver.release.wait(timeout=60)
                if receiver.mode == "fail":
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b"boom")
                    return
                receiver.bodies.append(json.loads(body))
                receiver.content_types.append(self.headers["Content-Type"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def start_webhook_receiver() -> Iterator[Callable[..., Receiver]]:
    """Starts receivers (``port``, ``mode``) and stops them after the test."""
    started: list[Receiver] = []

    def start(port: int = 0, mode: str = "ok") -> Receiver:
        started.append(Receiver(port, mode))
        return started[-1]

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def webhook_receiver(start_webhook_receiver: Callable[..., Receiver]) -> Receiver:
    return start_webhook_receiver()
