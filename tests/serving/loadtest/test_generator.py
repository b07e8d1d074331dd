"""The requests the generator writes (serving/loadtest/generator.py): whole HTTP/1.1
requests, one row each, NaN as null, the key as a bearer token."""

from __future__ import annotations

import httptools
import numpy as np
import orjson


class Parsed:
    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.body = b""
        self.url = b""
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


def parse(request: bytes) -> Parsed:
    parsed = Parsed()
    parser = httptools.HttpRequestParser(parsed)
    parser.feed_data(request)
    assert parsed.complete
    assert parser.get_method() == b"POST"
    return parsed


def test_each_row_is_one_request_with_missing_values_as_null() -> None:
    from setpoint.serving.loadtest.generator import http_requests

    rows = [{"age": 41, "income": float("nan"), "grade": "C"}, {"age": np.int64(7), "x": None}]
    requests = http_requests("127.0.0.1", 8123, "/v1/endpoints/credit/predict", rows, "sp_k")
    assert len(requests) == 2
    first, second = (parse(r) for r in requests)
    assert first.url == b"/v1/endpoints/credit/predict"
    assert orjson.loads(first.body) == {"records": [{"age": 41, "income": None, "grade": "C"}]}
    assert orjson.loads(second.body) == {"records": [{"age": 7, "x": None}]}
    assert first.headers[b"content-length"] == str(len(first.body)).encode()
    assert first.headers[b"authorization"] == b"Bearer sp_k"
    assert first.headers[b"host"] == b"127.0.0.1:8123"


def test_without_a_key_no_authorization_is_sent() -> None:
    from setpoint.serving.loadtest.generator import http_requests

    [request] = http_requests("localhost", 80, "/p", [{"a": 1}], None)
    assert b"authorization" not in parse(request).headers
