"""Where a load test aims (serving/loadtest/target.py): loopback unless allowed, and a
server that does not answer said plainly."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator

import pytest
from serving_support import free_port

from setpoint.errors import ServerUnavailableError, UsageError
from setpoint.serving.loadtest.target import Address, address, served_version, served_workers


@pytest.mark.parametrize("url", ["http://10.1.2.3:8000", "http://192.0.2.7", "203.0.113.9:80"])
def test_a_remote_address_is_refused_unless_allowed(url: str) -> None:
    with pytest.raises(UsageError, match="--allow-remote"):
        address(url)
    assert address(url, allow_remote=True).host in url


def test_loopback_is_loaded_without_asking() -> None:
    where = address("http://127.0.0.1:8123/")
    assert (where.host, where.port, where.url) == ("127.0.0.1", 8123, "http://127.0.0.1:8123")
    assert address("localhost:9000").port == 9000


def test_https_is_refused() -> None:
    with pytest.raises(UsageError, match="plain HTTP"):
        address("https://127.0.0.1:8443")


def test_a_server_that_does_not_answer_is_named_with_the_fix() -> None:
    where = address(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(ServerUnavailableError) as caught:
        served_version(where, "credit", None, timeout=2)
    assert where.url in caught.value.message
    assert "setpoint serve" in caught.value.message


@contextlib.contextmanager
def metrics_server(text: bytes, status: int = 200) -> Iterator[Address]:
    """A real HTTP server on loopback answering ``GET /metrics`` with ``text``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield address(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_worker_count_is_read_from_the_servers_metrics() -> None:
    exposition = b"# HELP setpoint_workers Worker processes\nsetpoint_workers 3.0\n"
    with metrics_server(exposition) as where:
        assert served_workers(where) == 3
    with metrics_server(b"up 1\n") as where:
        assert served_workers(where) is None  # a server that does not say
    with metrics_server(b"", status=404) as where:
        assert served_workers(where) is None
