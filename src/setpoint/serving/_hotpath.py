"""The prediction routes of every protocol, answered before the web framework.

Measured on one core (``bench/serving.py``), Starlette's per-request layers (the
exception middlewares, the route table scan, the Request and Response objects) cost
about as much as everything setpoint does for a single-row prediction once batching
has spread the model call, the validation and the fsync over many requests. So the
routes that carry the traffic are answered by ``ServingApp`` before Starlette's
middleware stack: ``POST /v1/endpoints/{endpoint}/predict`` (and ``.../explain``,
whose answer is the prediction's plus the explanation's work, for trees a fraction
of it), the Open Inference Protocol's ``POST /v2/models/{name}[/versions/{v}]/infer``
and MLflow's ``POST /invocations`` and ``/endpoints/{endpoint}/invocations``. Each is
a ``HotRoute`` whose answer the protocol's module shares with its Starlette route;
``HotPath`` checks the API key (as the auth middleware would), reads the body,
answers, and turns any error into the one error shape. Every other request,
including a GET on those paths (405) and one with a query string (``?explain=true``,
``?top=K``), goes through Starlette.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
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
    from setpoint.serving.keys import ApiKey

logger = logging.getLogger("setpoint.serving")

PREDICT = re.compile(r"^/v1/endpoints/([^/]+)/(predict|explain)$")
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

# (status, body, extra headers); a body other than JSON names its content-type there
Reply = tuple[int, bytes, list[tuple[bytes, bytes]]]


@dataclass(frozen=True)
class HotRoute:
    """A POST route answered before Starlette's stack: ``answer(match, scope, body,
    key)`` with ``match`` the path's, and ``endpoint(match)`` the endpoint the API key
    must be allowed to predict on (None: a route that names none)."""

    pattern: re.Pattern[str]
    answer: Callable[[re.Match[str], Scope, bytes, ApiKey | None], Awaitable[Reply]]
    endpoint: Callable[[re.Match[str]], str | None]


class _Unchecked:
    """The API key of a request not checked yet."""


UNCHECKED = _Unchecked()


class ClientGone(Exception):
    """The client disconnected before its body arrived: nobody to answer."""


class HotPath:
    """Answers the prediction routes of every protocol: the API key, the body, the
    answer, errors."""

    def __init__(
        self,
        routes: Sequence[HotRoute],
        guard: Guard,
        max_request_bytes: Callable[[], int],
        body_timeout: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self._routes = tuple(routes)
        self._guard = guard
        self.limit = max_request_bytes  # a body's most bytes, now
        self.timeout = body_timeout  # seconds a body has to arrive, now (0: no limit)

    def find(self, path: str) -> tuple[HotRoute, re.Match[str]] | None:
        for route in self._routes:
            match = route.pattern.match(path)
            if match is not None:
                return route, match
        return None

    async def __call__(
        self,
        route: HotRoute,
        match: re.Match[str],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Answer on the ASGI way: the key is checked before the body is read."""
        try:
            key = self._guard.authorize(scope, ("predict",), route.endpoint(match))
            body = await read_body(scope, receive, self.limit(), self.timeout())
        except ClientGone:
            return
        except SetpointError as error:
            status, payload, headers = error_reply(error)
        except Exception:  # what Starlette's ServerErrorMiddleware does for the other routes
            logger.exception("unexpected error on %s", scope["path"])
            status, payload, headers = 500, INTERNAL_ERROR, []
        else:
            status, payload, headers = await self.respond(route, match, scope, body, key)
        await reply(send, status, payload, headers)

    async def respond(
        self,
        route: HotRoute,
        match: re.Match[str],
        scope: Scope,
        body: bytes,
        key: ApiKey | _Unchecked | None = UNCHECKED,
    ) -> Reply:
        """The answer to a request whose body is read: ``route``'s, or the error's
        (``key``: the API key when checked already)."""
        try:
            if isinstance(key, _Unchecked):
                key = self._guard.authorize(scope, ("predict",), route.endpoint(match))
            return await route.answer(match, scope, body, key)
        except SetpointError as error:
            return error_reply(error)
        except Exception:  # what Starlette's ServerErrorMiddleware does for the other routes
            logger.exception("unexpected error on %s", scope["path"])
            return 500, INTERNAL_ERROR, []


class ServingApp(Starlette):
    """Starlette, with the prediction routes (``hot``) answered before its stack."""

    hot: HotPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.hot is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and not scope.get("query_string")  # ?explain=true: the Starlette route reads it
        ):
            found = self.hot.find(scope["path"])
            if found is not None:
                scope["app"] = self
                await self.hot(*found, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def header(scope: Scope, name: bytes) -> str | None:
    """The value of request header ``name`` (lower case), as text; None when absent."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def reply(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """Send a response: JSON unless ``headers`` name another content-type."""
    typed = any(name == b"content-type" for name, _ in headers)
    content = [*([] if typed else _JSON), (b"content-length", str(len(body)).encode()), *headers]
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
    task = asyncio.current_task()
    assert task is not None
    deadlines = _deadlines(task.get_loop())
    deadlines.add(task, timeout)
    try:
        return await _read_body(scope, receive, limit)
    except asyncio.CancelledError:
        if task not in deadlines.late:
            raise
        task.uncancel()
        raise RequestTimeoutError(
            f"the request body did not arrive within {timeout:g} seconds "
            "(body_timeout_seconds); send it at once"
        ) from None
    finally:
        deadlines.remove(task)


class _Deadlines:
    """The body reads in flight on one event loop and when each must be over.

    One timer, set for the earliest deadline, cancels the reads that are late when it
    fires. ``asyncio.timeout`` around every read (a timer scheduled and cancelled per
    request) cost about a tenth of the event loop's time per prediction; a small body
    arrives with its headers, so a read is in this table for a few microseconds and
    the timer rarely finds anything to do."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: dict[asyncio.Task[object], float] = {}
        self.late: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, task: asyncio.Task[object], seconds: float) -> None:
        due = self._due[task] = self._loop.time() + seconds
        if self._timer is None:
            self._timer = self._loop.call_at(due, self._sweep)

    def remove(self, task: asyncio.Task[object]) -> None:
        self._due.pop(task, None)
        self.late.discard(task)

    def _sweep(self) -> None:
        self._timer = None
        now = self._loop.time()
        for task, due in list(self._due.items()):
            if due <= now and task not in self.late:
                self.late.add(task)
                task.cancel()
        waiting = [due for task, due in self._due.items() if task not in self.late]
        if waiting:
            self._timer = self._loop.call_at(min(waiting), self._sweep)


_LOOPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines] = (
    weakref.WeakKeyDictionary()
)


def _deadlines(loop: asyncio.AbstractEventLoop) -> _Deadlines:
    found = _LOOPS.get(loop)
    if found is None:
        found = _LOOPS[loop] = _Deadlines(loop)
    return found


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
