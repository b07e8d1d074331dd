"""``setpoint ui``: what it refuses before it listens (the pages are tests/ui's)."""

from __future__ import annotations

import socket

import pytest
from cli_support import Cli

# The command line, not the stores (their own tests run on both databases): the
# workspace on SQLite only (conftest.py).
pytestmark = pytest.mark.one_database


def test_beyond_loopback_the_dashboard_needs_a_key_to_start(cli: Cli) -> None:
    cli.fails(
        "ui",
        "--host",
        "0.0.0.0",
        code=2,
        message="without API keys; create one (setpoint keys create --scope read)",
    )


def test_a_port_in_use_is_named_with_the_fix(cli: Cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cli.fails(
            "ui", "--port", str(port), code=2, message=f"port {port} on 127.0.0.1 is already in use"
        )
