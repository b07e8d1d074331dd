"""uvicorn's HTTP/1.1 protocol, with the prediction routes answered without ASGI.

``setpoint serve`` runs uvicorn with :class:`HotProtocol`, its httptools protocol with
one change: a request for one of the hot routes (``ServingApp.hot``: the native
predict and explain routes, OIP v2 infer, MLflow invocations) is answered from the
parser's callbacks, without the ASGI cycle. uvicorn gives every request a
``RequestResponseCycle``, an ``asyncio.Event``, ``receive`` and ``send`` messages and
the checks of each header it writes. A prototype answering ``bench/serving.py``'s
constant body both ways measured that cycle and Starlette at 54 of the 76 µs of CPU
a request cost, the parsing and the socket at 22; ``bench/serving.py --asgi``
measures this protocol against the same app through ASGI (0.74-0.93x the CPU a
request in three runs). The route's answer is the same function either way
(``HotPath.respond``): same key check, errors, metrics and log.

Everything else is uvicorn's, unchanged: other requests, connections, keep-alive and
its timeout, flow control, graceful shutdown (an answer in flight is finished and the
connection closed after it), TLS. A hot request takes the ASGI way when it cannot be
answered here as it would be there: a request behind another on the same connection
(pipelined; answers must keep their order), ``Expect: 100-continue``, an upgrade, or
uvicorn's ``limit_concurrency`` (its 503s) in force. Its body is held to
``max_request_bytes`` (413, declared or sent) and must arrive within
``body_timeout_seconds`` (408), as ``read_body`` holds it on the ASGI way.

This subclasses uvicorn's protocol and uses its parser callbacks and per-connection
state; ``constraints.txt`` pins uvicorn, and ``tests/serving/test_protocol.py`` runs
both ways on a real socket.
"""

from __future__ import annotations

import asyncio
import logging
import re
import urllib.parse
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from setpoint.errors import PayloadTooLargeError, RequestTimeoutError, SetpointError
from setpoint.serving._hotpath import (
    HotPath,
    HotRoute,
    Reply,
    ServingApp,
    error_reply,
    parse_length,
    too_large,
)

logger = logging.getLogger("setpoint.serving")

_JSON = b"content-type: application/json\r\n"


class _Unset:
    """What uvicorn's ``connection_lost`` and ``shutdown`` touch on a request's cycle."""

    def set(self) -> None:  # the cycle's message_event: nobody waits on it here
        pass


_NO_EVENT = _Unset()


class HotRequest:
    """A hot route's request on a connection: read from the parser's callbacks, then
    answered. Stands as the connection's ``cycle`` meanwhile, so that uvicorn queues
    a request pipelined behind it and closes the connection after it on shutdown."""

    __slots__ = (
        "body",
        "complete",
        "disconnected",
        "keep_alive",
        "match",
        "response_complete",
        "route",
        "scope",
        "size",
        "timer",
    )

    message_event = _NO_EVENT

    def __init__(
        self, route: HotRoute, match: re.Match[str], scope: dict[str, Any], keep_alive: bool
    ) -> None:
        self.route = route
        self.match = match
        self.scope = scope
        self.keep_alive = keep_alive
        self.body: list[bytes] = []
        self.size = 0
        self.complete = False  # the whole body is here
        self.response_complete = False
        self.disconnected = False
        self.timer: asyncio.TimerHandle | None = None


class HotProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; the hot routes' requests answered without ASGI."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        app = self.app
        self._hot: HotPath | None = app.hot if isinstance(app, ServingApp) else None

    def _current(self) -> HotRequest | None:
        """The connection's request, when it is a hot one."""
        cycle: object = self.cycle
        return cycle if isinstance(cycle, HotRequest) else None

    # -- reading ----------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        request = self._hot_request()
        if request is None:
            super().on_headers_complete()
            return
        self.cycle = request  # type: ignore[assignment]
        hot = self._hot
        assert hot is not None
        for name, value in self.headers:  # refuse a large body before it is sent
            if name == b"content-length":
                declared = parse_length(value)
                if declared is not None and declared > hot.limit():
                    self._refuse(request, PayloadTooLargeError(too_large(hot.limit())))
                break

    def _hot_request(self) -> HotRequest | None:
        """A request for a hot route that can be answered here, or None."""
        hot = self._hot
        if (
            hot is None
            or self.parser.get_method() != b"POST"
            or not (self.cycle is None or self.cycle.response_complete)  # pipelined
            or self.expect_100_continue
            or self.parser.should_upgrade()
            or self.limit_concurrency is not None
        ):
            return None
        url = httptools.parse_url(self.url)
        if url.query:  # ?explain=true, ?top=K: the Starlette routes read them
            return None
        raw_path = url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        full_path = self.root_path + path
        found = hot.find(full_path)
        if found is None:
            return None
        http_version = self.parser.get_http_version()
        scope = self.scope
        scope["method"] = "POST"
        scope["path"] = full_path
        scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        scope["query_string"] = b""
        if http_version != "1.1":
            scope["http_version"] = http_version
        keep_alive = http_version != "1.0" and self.parser.should_keep_alive()
        return HotRequest(*found, scope, keep_alive)  # type: ignore[arg-type]

    def on_body(self, body: bytes) -> None:
        request = self._current()
        if request is None:
            super().on_body(body)
            return
        if request.response_complete:  # refused already: the rest is not read
            return
        request.size += len(body)
        hot = self._hot
        assert hot is not None
        if request.size > hot.limit():
            self._refuse(request, PayloadTooLargeError(too_large(hot.limit())))
            return
        request.body.append(body)

    def on_message_complete(self) -> None:
        request = self._current()
        if request is None:
            super().on_message_complete()
            return
        if request.response_complete:
            return
        request.complete = True
        if request.timer is not None:
            request.timer.cancel()
            request.timer = None
        task = self.loop.create_task(self._answer(request))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        request = self._current()
        if (
            request is not None
            and not request.complete
            and not request.response_complete
            and request.timer is None
        ):  # the body is coming in parts: it has body_timeout_seconds to be all here
            hot = self._hot
            assert hot is not None
            timeout = hot.timeout()
            if timeout > 0:
                request.timer = self.loop.call_later(timeout, self._late, request, timeout)

    def _late(self, request: HotRequest, timeout: float) -> None:
        request.timer = None
        if not request.complete and not request.response_complete:
            self._refuse(
                request,
                RequestTimeoutError(
                    f"the request body did not arrive within {timeout:g} seconds "
                    "(body_timeout_seconds); send it at once"
                ),
            )

    def connection_lost(self, exc: Exception | None) -> None:
        request = self._current()
        if request is not None and request.timer is not None:
            request.timer.cancel()
            request.timer = None
        super().connection_lost(exc)

    # -- answering --------------------------------------------------------------------

    async def _answer(self, request: HotRequest) -> None:
        hot = self._hot
        assert hot is not None
        body = request.body[0] if len(request.body) == 1 else b"".join(request.body)
        reply = await hot.respond(request.route, request.match, request.scope, body)
        if self.flow.write_paused and not request.disconnected:
            await self.flow.drain()  # the client reads slowly: wait, as uvicorn does
        self._write(request, reply)

    def _refuse(self, request: HotRequest, error: SetpointError) -> None:
        """Answer ``error`` before the body is all read, and close the connection: what
        is still on its way is not read."""
        request.keep_alive = False
        self._write(request, error_reply(error))

    def _write(self, request: HotRequest, reply: Reply) -> None:
        request.response_complete = True
        if request.disconnected or self.transport.is_closing():
            return
        status, payload, headers = reply
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content += [name, b": ", value, b"\r\n"]
        if not any(name == b"content-type" for name, _ in headers):
            content.append(_JSON)
        content += [b"content-length: ", str(len(payload)).encode(), b"\r\n"]
        for name, value in headers:
            content += [name, b": ", value, b"\r\n"]
        if not request.keep_alive:
            content.append(b"connection: close\r\n")
        content += [b"\r\n", payload]
        self.transport.write(b"".join(content))
        if not request.keep_alive:
            self.transport.close()
        self.on_response_complete()
