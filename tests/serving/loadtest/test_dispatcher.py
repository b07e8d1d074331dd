"""The dispatcher (serving/loadtest/_client.py): requests offered at their intended
times wait for a free connection, and their latency counts from the intended time."""

from __future__ import annotations

import pytest

from setpoint.serving.loadtest._client import TRANSPORT_ERROR, Dispatcher


class Conn:
    def __init__(self) -> None:
        self.intended: float | None = None
        self.sent = 0.0
        self.log: list[tuple[float, float]] = []  # (intended, sent)

    def send(self, intended: float, now: float) -> None:
        self.intended, self.sent = intended, now
        self.log.append((intended, now))


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_request_waits_for_a_busy_connection_and_is_timed_from_its_intended_time() -> None:
    clock, outcomes = Clock(), []
    dispatcher = Dispatcher(clock, lambda i, lat, st: outcomes.append((i, lat, st)))
    conn = Conn()
    dispatcher.ready(conn)
    dispatcher.offer(0.0)
    clock.t = 0.1
    dispatcher.offer(0.1)  # the one connection is busy: it waits
    assert conn.log == [(0.0, 0.0)]
    assert list(dispatcher.backlog) == [0.1]
    clock.t = 0.5
    dispatcher.answered(conn, 200)  # the first answer frees it: the second goes out
    assert conn.log == [(0.0, 0.0), (0.1, 0.5)]
    clock.t = 0.6
    dispatcher.answered(conn, 200)
    assert outcomes == [(0.0, 0.5, 200), (0.1, pytest.approx(0.5), 200)]
    # 0.5 s from when it was due, not the 0.1 s the server took once it was sent
    assert dispatcher.in_flight == 0
    assert list(dispatcher.idle) == [conn]


def test_a_lost_connection_is_a_transport_error_for_its_request() -> None:
    clock, outcomes = Clock(), []
    dispatcher = Dispatcher(clock, lambda i, lat, st: outcomes.append((i, lat, st)))
    busy, idle = Conn(), Conn()
    dispatcher.ready(busy)
    dispatcher.offer(1.0)
    dispatcher.ready(idle)
    clock.t = 3.0
    dispatcher.lost(busy)
    dispatcher.lost(idle)
    assert outcomes == [(1.0, 2.0, TRANSPORT_ERROR)]
    assert dispatcher.in_flight == 0
    assert not dispatcher.idle


def test_a_step_given_up_drops_what_was_not_sent() -> None:
    dispatcher = Dispatcher(Clock(), lambda i, lat, st: None)
    for t in (0.0, 0.1, 0.2):
        dispatcher.offer(t)
    assert dispatcher.drop_backlog() == 3
    assert not dispatcher.backlog
