"""The hot path's body reading: limits, declared lengths, and what a client sends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from setpoint.errors import PayloadTooLargeError
from setpoint.serving._hotpath import parse_length, read_body


def _receive(*chunks: bytes) -> Any:
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    return receive


@pytest.mark.parametrize("declared", [b"9" * 5000, b"\xb2", b"-3", b"1_0", b""])
def test_a_content_length_that_is_not_a_count_is_ignored(declared: bytes) -> None:
    # The body's real size is what the limit is checked against; a junk header is no 500.
    scope = {"headers": [(b"content-length", declared)]}
    body = asyncio.run(read_body(scope, _receive(b"ab", b"cd"), 100))
    assert body == b"abcd"


def test_a_declared_length_over_the_limit_is_refused_before_the_body() -> None:
    scope = {"headers": [(b"content-length", b"101")]}
    with pytest.raises(PayloadTooLargeError):
        asyncio.run(read_body(scope, _receive(b"ab", b"cd"), 100))


def test_lengths_are_ascii_digits_only() -> None:
    assert parse_length("12") == 12
    assert parse_length(b"0") == 0
    arabic_indic_one = "\u0661"
    for bad in ("²", "1²", " 1", "+1", "1_0", "", "9" * 19, arabic_indic_one):
        assert parse_length(bad) is None, bad
