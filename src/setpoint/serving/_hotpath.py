"""The native predict route, answered before the web framework.

Measured on one core (``bench/serving.py``), Starlette's per-request layers (the
exception middlewares, the route table scan, the Request and Response objects) cost
about as much as everything setpoint does for a single-row prediction once batching
has spread the model call, the validation and the fsync over many requests. So the
one route that carries the traffic, ``POST /v1/endpoints/{endpoint}/predict``, is
answered by ``ServingApp`` before Starlette's middleware stack (and ``.../explain``,
whose answer is the prediction's plus the explanation's work, for trees a fraction
of it), with the same
functions the Starlette route uses (``answer_native``): ``HotPath`` checks the API
key, reads the body, answers, and turns any error into the one error shape. Every
other request, including a GET on that path (405) and one with a query string
(``?explain=true``, ``?top=K``), goes through Starlette.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import orjson
from starlette.applications import Starlette
from starlette.types import Message, Receive, Scope, Send

from setpoint.errors import (
    PayloadTooLargeError,
    RequestTimeoutError,
    SetpointError,
    UnauthorizedError,
)

if TYPE_CHECKING:
    from setpoint.serving.auth import Guard

logger = logging.getLogger("setpoint.serving")

_PREDICT = re.compile(r"^/v1/endpoints/([^/]+)/(predict|explain)$")
_JSON = [(b"content-type", b"application/json")]
INTERNAL_ERROR = orjson.dumps(
    {
        "error": {
            "code": "internal",
            "message": "the server failed on this request; it is logged, please report it",
            "details": None,
        }
    }
)

# endpoint, body, explain -> (status, body, extra headers)
Handler = Callable[[str, bytes, bool], Awaitable[tuple[int, bytes, list[tuple[bytes, bytes]]]]]


class ClientGone(Exception):
    """The client disconnected before its body arrived: nobody to answer."""


class HotPath:
    """Answers the native predict route: the API key, the body, the answer, errors."""

    def __init__(
        self,
        handler: Handler,
        guard: Guard,
        max_request_bytes: Callable[[], int],
        body_timeout: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self._handler = handler
        self._guard = guard
        self._limit = max_request_bytes
        self._timeout = body_timeout

    async def __call__(
        self, endpoint: str, scope: Scope, receive: Receive, send: Send, explain: bool = False
    ) -> None:
        try:
            self._guard.authorize(scope, ("predict",), endpoint)
            body = await read_body(scope, receive, self._limit(), self._timeout())
            status, payload, headers = await self._handler(endpoint, body, explain)
        except ClientGone:
            return
        except SetpointError as error:
            status, payload, headers = error_reply(error)
        except Exception:  # what Starlette's ServerErrorMiddleware does for the other routes
            logger.exception("unexpected error on %s", scope["path"])
            status, payload, headers = 500, INTERNAL_ERROR, []
        await reply(send, status, payload, headers)


class ServingApp(Starlette):
    """Starlette, with the native predict route (``hot``) answered before its stack."""

    hot: HotPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.hot is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and not scope.get("query_string")  # ?explain=true: the Starlette route reads it
        ):
            match = _PREDICT.match(scope["path"])
            if match is not None:
                scope["app"] = self
                await self.hot(match.group(1), scope, receive, send, match.group(2) == "explain")
                return
        await super().__call__(scope, receive, send)


async def reply(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """Send a JSON response."""
    content = [*_JSON, (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": content})
    await send({"type": "http.response.body", "body": body})


def error_reply(error: SetpointError) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """Status, body (the one error shape) and headers that answer ``error``."""
    headers = []
    if error.retry_after is not None:
        headers.append((b"retry-after", str(error.retry_after).encode()))
    if isinstance(error, UnauthorizedError):
        headers.append((b"www-authenticate", b'Bearer realm="setpoint"'))
    return error.http_status, orjson.dumps(error.to_dict()), headers


async def read_body(scope: Scope, receive: Receive, limit: int, timeout: float = 0.0) -> bytes:
    """The request body, refusing more than ``limit`` bytes (declared or sent), and a
    body not all there within ``timeout`` seconds (408; 0: no limit). The server has no
    timeout of its own between a request's headers and the end of its body, so without
    this a client that stops sending holds its connection (and the memory of what it
    sent) for ever."""
    if timeout <= 0:
        return await _read_body(scope, receive, limit)
    try:
        async with asyncio.timeout(timeout):
            return await _read_body(scope, receive, limit)
    except TimeoutError:
        raise RequestTimeoutError(
            f"the request body did not arrive within {timeout:g} seconds "
            "(body_timeout_seconds); send it at once"
        ) from None


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    message: Message = await receive()
    if message["type"] != "http.request":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):  # the usual small body, in one message
        if len(body) > limit:
            raise PayloadTooLargeError(too_large(limit))
        return body
    for name, value in scope["headers"]:  # refuse a large body before it is sent
        if name == b"content-length":
            declared = parse_length(value)
            if declared is not None and declared > limit:
                raise PayloadTooLargeError(too_large(limit))
            break
    chunks, size = [body], len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(too_large(limit))
        chunks.append(chunk)
    return b"".join(chunks)


def parse_length(value: str | bytes) -> int | None:
    """A byte count sent in a header, or None when it is not one.

    Only ASCII digits: ``str.isdigit`` also takes "²" (latin-1 byte 0xb2), which ``int``
    refuses, and ``int`` takes "1_0" and " 12". At most 18 digits, so ``int`` never
    meets its 4,300-digit limit and the count fits the sizes it is compared with.
    """
    if not 0 < len(value) <= 18 or not value.isascii() or not value.isdigit():
        return None
    return int(value)


def too_large(limit: int) -> str:
    return f"the body is over {limit:,} bytes; send fewer rows per request (max_request_bytes)"
