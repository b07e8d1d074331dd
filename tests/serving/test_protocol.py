"""The HTTP protocol of ``setpoint serve``: the prediction routes answered without ASGI.

Driven in-process through a transport that records what is written, as uvicorn's own
tests drive its protocols; ``test_serve_protocols.py`` and ``test_shutdown.py`` run the
same protocol on a real socket under ``setpoint serve``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httptools
import orjson
import pytest
from serving_support import MemoryLog, RawResponse, requests_of
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from setpoint.serving._protocol import HotProtocol, HotRequest
from setpoint.serving.app import create_app
from setpoint.workspace import Workspace

pytestmark = pytest.mark.one_database  # the protocol, not the stores

PREDICT = b"/v1/endpoints/credit/predict"
LIMIT = 4_000  # max_request_bytes
TIMEOUT = 0.2  # body_timeout_seconds: a body in parts is refused after this
WAIT = 30.0  # for an answer: the model's first batch, on a busy machine


class Transport(asyncio.Transport):
    """A connection's socket: records what the protocol writes, and whether it closed."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.changed = asyncio.Event()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data
        self.changed.set()

    def close(self) -> None:
        self.closed = True
        self.changed.set()

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def responses(data: bytes) -> list[RawResponse]:
    """The whole responses in ``data``, in order."""
    found: list[RawResponse] = []

    class Reader:
        def on_message_begin(self) -> None:
            self.headers: dict[str, str] = {}
            self.body = b""

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers[name.decode().lower()] = value.decode()

        def on_body(self, body: bytes) -> None:
            self.body += body

        def on_message_complete(self) -> None:
            found.append(RawResponse(parser.get_status_code(), self.headers, self.body))

    parser = httptools.HttpResponseParser(Reader())
    if data:
        parser.feed_data(bytes(data))
    return found


def post(
    body: bytes, *, path: bytes = PREDICT, extra: bytes = b"", version: bytes = b"1.1"
) -> bytes:
    return (
        b"POST " + path + b" HTTP/" + version + b"\r\nhost: test\r\n"
        b"content-type: application/json\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n"
        + extra
        + b"\r\n"
        + body
    )


class Connection:
    """One client connection to the protocol under test."""

    def __init__(self, protocol: HttpToolsProtocol) -> None:
        self.protocol = protocol
        self.transport = Transport()
        protocol.connection_made(self.transport)

    def send(self, data: bytes) -> None:
        self.protocol.data_received(data)

    async def answers(self, count: int) -> list[RawResponse]:
        """Wait until ``count`` responses are written (or the connection closed)."""
        async with asyncio.timeout(WAIT):
            while len(found := responses(self.transport.written)) < count:
                if self.transport.closed:
                    break
                self.transport.changed.clear()
                await self.transport.changed.wait()
        return found


@dataclass
class Server:
    log: MemoryLog
    connect: Callable[..., Connection]
    rows: list[dict[str, Any]]

    def body(self, i: int = 0, **extra: Any) -> bytes:
        return orjson.dumps({"records": [self.rows[i]], **extra})


@asynccontextmanager
async def serving(workspace: Workspace, rows: list[dict[str, Any]]) -> AsyncIterator[Server]:
    log = MemoryLog()
    app = create_app(
        workspace, log, max_request_bytes=LIMIT, body_timeout_seconds=TIMEOUT, refresh_seconds=3600
    )
    config = Config(app=app, proxy_headers=False, server_header=False, log_level="warning")
    config.load()
    state = ServerState()
    state.default_headers = [(b"date", b"Sun, 06 Dec 2026 10:00:00 GMT")]
    loop = asyncio.get_running_loop()

    def connect(protocol: type[HttpToolsProtocol] = HotProtocol) -> Connection:
        return Connection(protocol(config=config, server_state=state, app_state={}, _loop=loop))

    async with app.router.lifespan_context(app):
        yield Server(log, connect, rows)
        if state.tasks:
            await asyncio.gather(*state.tasks)


@pytest.fixture
def rows(history: Any) -> list[dict[str, Any]]:
    return requests_of(history.tail(20))


def run(served: Workspace, rows: list[dict[str, Any]], test: Callable[[Server], Any]) -> None:
    async def main() -> None:
        async with serving(served, rows) as server:
            await test(server)

    asyncio.run(main())


def without_id(response: RawResponse) -> dict[str, Any]:
    answer = response.json()
    answer.pop("request_id")
    return dict(answer)


def test_a_prediction_is_answered_without_asgi_as_asgi_answers_it(
    served: Workspace, rows: list[dict[str, Any]]
) -> None:
    async def test(server: Server) -> None:
        hot, asgi = server.connect(), server.connect(HttpToolsProtocol)
        hot.send(post(server.body(3)))
        asgi.send(post(server.body(3)))
        (fast,), (slow,) = await hot.answers(1), await asgi.answers(1)
        assert isinstance(hot.protocol.cycle, HotRequest)  # answered here, not by ASGI
        assert not isinstance(asgi.protocol.cycle, HotRequest)
        assert (fast.status, slow.status) == (200, 200)
        assert without_id(fast) == without_id(slow)
        assert fast.headers == {**slow.headers, "content-length": fast.headers["content-length"]}
        assert fast.headers["content-type"] == "application/json"
        assert fast.headers["date"] == "Sun, 06 Dec 2026 10:00:00 GMT"
        logged = {r["request_id"] for r in server.log.records}
        assert logged == {fast.json()["request_id"], slow.json()["request_id"]}

    run(served, rows, test)


def test_a_connection_is_kept_alive_and_pipelined_requests_keep_their_order(
    served: Workspace, rows: list[dict[str, Any]]
) -> None:
    async def test(server: Server) -> None:
        connection = server.connect()
        connection.send(post(server.body(0, request_id="first")))
        (first,) = await connection.answers(1)
        # Three in one packet: the second and third wait behind the first, in order.
        connection.send(b"".join(post(server.body(i, request_id=f"r{i}")) for i in (1, 2, 3)))
        answers = await connection.answers(4)
        assert [a.status for a in answers] == [200] * 4
        assert [a.json()["request_id"] for a in answers] == ["first", "r1", "r2", "r3"]
        assert not connection.transport.closed
        assert "connection" not in first.headers

    run(served, rows, test)


@pytest.mark.parametrize(("version", "extra"), [(b"1.0", b""), (b"1.1", b"connection: close\r\n")])
def test_a_client_that_does_not_keep_the_connection_has_it_closed_after_its_answer(
    served: Workspace, rows: list[dict[str, Any]], version: bytes, extra: bytes
) -> None:
    async def test(server: Server) -> None:
        connection = server.connect()
        connection.send(post(server.body(), version=version, extra=extra))
        (answer,) = await connection.answers(1)
        assert answer.status == 200
        assert answer.headers["connection"] == "close"
        assert connection.transport.closed

    run(served, rows, test)


def test_a_body_declared_over_the_limit_is_refused_before_it_is_sent(
    served: Workspace, rows: list[dict[str, Any]]
) -> None:
    async def test(server: Server) -> None:
        connection = server.connect()
        connection.send(
            b"POST /v1/endpoints/credit/predict HTTP/1.1\r\nhost: t\r\ncontent-length: 4001\r\n\r\n"
        )
        (answer,) = await connection.answers(1)
        assert answer.status == 413
        assert answer.json()["error"]["code"] == "payload_too_large"
        assert "max_request_bytes" in answer.json()["error"]["message"]
        assert connection.transport.closed
        assert server.log.records == []

    run(served, rows, test)


def test_a_chunked_body_over_the_limit_is_refused_when_it_passes_it(
    served: Workspace, rows: list[dict[str, Any]]
) -> None:
    async def test(server: Server) -> None:
        connection = server.connect()
        connection.send(
            b"POST /v1/endpoints/credit/predict HTTP/1.1\r\nhost: t\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * 3000
        connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        assert responses(connection.transport.written) == []  # under the limit so far
        connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        (answer,) = await connection.answers(1)
        assert answer.status == 413
        assert connection.transport.closed

    run(served, rows, test)


def test_a_body_sent_in_parts_is_read_whole_and_a_late_one_is_refused(
    served: Workspace, rows: list[dict[str, Any]]
) -> None:
    async def test(server: Server) -> None:
        whole = post(server.body(5, request_id="in-parts"))
        prompt = server.connect()
        prompt.send(whole[:60])
        prompt.send(whole[60:])
        (answer,) = await prompt.answers(1)
        assert (answer.status, answer.json()["request_id"]) == (200, "in-parts")

        late = server.connect()
        late.send(whole[:-10])  # the rest never comes: refused after TIMEOUT
        (refused,) = await late.answers(1)
        assert refused.status == 408
        assert "body_timeout_seconds" in refused.json()["error"]["message"]
        assert late.transport.closed
        assert [r["request_id"] for r in server.log.records] == ["in-parts"]

    run(served, rows, test)


def test_a_missing_key_is_refused_with_the_error_shape(
    served: Workspace, rows: list[dict[str, Any]]
) -> None:
    served.keys.create("predict", endpoint="credit")

    async def test(server: Server) -> None:
        connection = server.connect()
        connection.send(post(server.body()))
        (answer,) = await connection.answers(1)
        assert answer.status == 401
        assert answer.headers["www-authenticate"] == 'Bearer realm="setpoint"'
        assert answer.json()["error"]["code"] == "unauthorized"
        assert not connection.transport.closed  # a refusal keeps the connection
        assert server.log.records == []

    run(served, rows, test)


def test_shutdown_finishes_the_answer_in_flight_then_closes(
    served: Workspace, rows: list[dict[str, Any]]
) -> None:
    async def test(server: Server) -> None:
        connection = server.connect()
        connection.send(post(server.body()))
        connection.protocol.shutdown()  # uvicorn's graceful stop, the answer not ready
        assert not connection.transport.closed
        (answer,) = await connection.answers(1)
        assert answer.status == 200
        assert answer.headers["connection"] == "close"
        assert connection.transport.closed

    run(served, rows, test)


def test_a_client_gone_before_its_answer_gets_nothing_written_and_its_row_is_logged(
    served: Workspace, rows: list[dict[str, Any]]
) -> None:
    async def test(server: Server) -> None:
        connection = server.connect()
        connection.send(post(server.body(request_id="gone")))
        connection.protocol.connection_lost(None)
        await asyncio.gather(*connection.protocol.tasks)
        assert [r["request_id"] for r in server.log.records] == ["gone"]
        assert responses(connection.transport.written) == []

    run(served, rows, test)


@pytest.mark.parametrize(
    ("path", "extra", "statuses"),
    [
        (PREDICT + b"?explain=false", b"", [200]),  # a query: the Starlette route reads it
        (PREDICT, b"expect: 100-continue\r\n", [100, 200]),  # uvicorn says 100 first
    ],
)
def test_what_the_hot_way_does_not_take_goes_through_asgi(
    served: Workspace, rows: list[dict[str, Any]], path: bytes, extra: bytes, statuses: list[int]
) -> None:
    async def test(server: Server) -> None:
        connection = server.connect()
        connection.send(post(server.body(), path=path, extra=extra))
        answers = await connection.answers(len(statuses))
        assert [a.status for a in answers] == statuses
        assert not isinstance(connection.protocol.cycle, HotRequest)

    run(served, rows, test)
