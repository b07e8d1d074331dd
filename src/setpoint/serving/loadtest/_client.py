"""The load generator's HTTP/1.1 client: a pool of keep-alive connections, each an
``asyncio.Protocol`` with httptools' C parser (the one uvicorn[standard] brings), one
request in flight per connection, no pipelining.

Why not httpx or aiohttp: one client core must offer more than one server process
answers. Measured on the 2-core machine (2026-12-06, ``bench/loadtest.py --clients``,
docs/benchmarks.md), closed loop on 64 connections, client pinned to one core, a
constant endpoint on the other: httpx spent ~1.3 ms of CPU a request (~750 req/s a
core with one connection; under 100 req/s with 64 in flight), aiohttp 124 us (3,200
req/s, the client's core full: under what one setpoint worker answers), this client
20 us (6,900 req/s, the server's limit: wrk got 7,300; ~50,000 req/s a client core).

The :class:`Dispatcher` is the part that matters for coordinated omission: a request
is *offered* at its intended time; it goes out at once on an idle connection or waits
in the backlog for the next one to free up, and its latency is counted from the
intended time either way. A slow server therefore shows as latency, never as fewer
requests sent. It is plain code over a ``now`` function and objects with ``send``, so
the tests drive it with a fake clock.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol, cast

import httptools

TRANSPORT_ERROR = 0  # the status recorded for a request that got no HTTP answer


class Sender(Protocol):
    """A connection as the dispatcher sees it."""

    intended: float | None  # the intended time of the request in flight, if any
    sent: float  # when that request went out

    def send(self, intended: float, now: float) -> None: ...


Outcome = Callable[[float, float, int], None]  # (intended, latency seconds, status)


class Dispatcher:
    """Offered requests to idle connections, or to a backlog that frees connections
    take from, oldest first; each answer reported with its latency from the intended
    time (``TRANSPORT_ERROR`` as the status when there was no answer)."""

    def __init__(self, now: Callable[[], float], outcome: Outcome) -> None:
        self.now = now
        self.outcome = outcome
        self.idle: deque[Sender] = deque()
        self.backlog: deque[float] = deque()
        self.in_flight = 0

    def offer(self, intended: float) -> None:
        if self.idle:
            self.in_flight += 1
            self.idle.pop().send(intended, self.now())
        else:
            self.backlog.append(intended)

    def ready(self, conn: Sender) -> None:
        """``conn`` is connected, or answered its request: give it the next one."""
        if self.backlog:
            self.in_flight += 1
            conn.send(self.backlog.popleft(), self.now())
        else:
            self.idle.append(conn)

    def answered(self, conn: Sender, status: int) -> None:
        intended = conn.intended
        if intended is None:  # an answer nobody asked for: the server misbehaves
            return
        conn.intended = None
        self.in_flight -= 1
        self.outcome(intended, self.now() - intended, status)
        self.ready(conn)

    def lost(self, conn: Sender) -> None:
        """``conn`` closed or failed: its request in flight, if any, had no answer."""
        if conn in self.idle:
            self.idle.remove(conn)
        if conn.intended is not None:
            intended, conn.intended = conn.intended, None
            self.in_flight -= 1
            self.outcome(intended, self.now() - intended, TRANSPORT_ERROR)

    def drop_backlog(self) -> int:
        """Forget the requests not yet sent (a step given up early); how many."""
        n = len(self.backlog)
        self.backlog.clear()
        return n


class _Connection(asyncio.Protocol):
    """One keep-alive connection: writes a prepared request, parses the answer."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.intended: float | None = None
        self.sent = 0.0

    def send(self, intended: float, now: float) -> None:
        assert self.transport is not None
        self.intended, self.sent = intended, now
        self.transport.write(self.pool.next_request())

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.pool.dispatcher.ready(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.pool.lost(self)

    # httptools callbacks
    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        keep = self.parser.should_keep_alive()
        if keep:
            self.pool.dispatcher.answered(self, status)
            return
        # The server closes after this answer: count it, then connect again.
        conn_intended, self.intended = self.intended, None
        if conn_intended is not None:
            self.pool.dispatcher.in_flight -= 1
            self.pool.dispatcher.outcome(conn_intended, self.pool.now() - conn_intended, status)
        self.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class Pool:
    """``size`` connections to ``host:port`` sending ``requests`` (whole HTTP/1.1
    requests as bytes) in turn; lost connections are replaced."""

    def __init__(
        self,
        host: str,
        port: int,
        requests: Sequence[bytes],
        *,
        size: int,
        now: Callable[[], float],
        outcome: Outcome,
        timeout: float,
    ) -> None:
        self.host, self.port = host, port
        self.requests = requests
        self.size = size
        self.now = now
        self.timeout = timeout
        self.dispatcher = Dispatcher(now, outcome)
        self._next = 0
        self._connections: set[_Connection] = set()
        self._closing = False
        self._reconnects: set[asyncio.Task[None]] = set()
        self.connect_errors = 0

    def next_request(self) -> bytes:
        request = self.requests[self._next]
        self._next = (self._next + 1) % len(self.requests)
        return request

    async def open(self) -> None:
        """Open every connection; an error if none can be made (the server is down)."""
        results = await asyncio.gather(
            *(self._connect() for _ in range(self.size)), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if len(failures) == self.size:
            raise failures[0]

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: _Connection(self), self.host, self.port)
        self._connections.add(conn)

    def lost(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        self.dispatcher.lost(conn)
        if not self._closing:
            task = asyncio.get_running_loop().create_task(self._reconnect())
            self._reconnects.add(task)
            task.add_done_callback(self._reconnects.discard)

    async def _reconnect(self) -> None:
        while not self._closing:
            try:
                await self._connect()
                return
            except OSError:
                self.connect_errors += 1
                await asyncio.sleep(0.05)  # a refused connection is tried again, not spun on

    def expire(self) -> int:
        """Abort connections whose request has waited longer than ``timeout`` for its
        answer (each counts as a transport error); how many."""
        now, n = self.now(), 0
        for conn in list(self._connections):
            if conn.intended is not None and now - conn.sent > self.timeout:
                conn.abort()
                n += 1
        return n

    @property
    def busy(self) -> bool:
        return self.dispatcher.in_flight > 0 or bool(self.dispatcher.backlog)

    def close(self) -> None:
        self._closing = True
        for task in self._reconnects:
            task.cancel()
        for conn in list(self._connections):
            conn.abort()
